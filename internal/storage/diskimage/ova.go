package diskimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
)

// OVAResult describes an imported OVA.
type OVAResult struct {
	OVF     *OVF
	Volumes []storage.Volume // in OVF disk order
}

// ImportOVA imports every disk of an OVA into pool, as volumes <base>-disk0, <base>-disk1, ...
// in the order the OVF attaches them. The archive is read twice (descriptor and manifest, then
// the disks); disks are extracted to tmpDir ("" = os.TempDir()), checked against the manifest
// digests (.mf) and the OVF sizes, validated (Probe) all before the first volume is created,
// and any failure deletes the volumes already imported.
func ImportOVA(ctx context.Context, pool storage.Pool, path, base, tmpDir string, opts storage.ImportOpts) (*OVAResult, error) {
	obj := fmt.Sprintf("OVA %q", path)
	if err := storage.ValidateName("volume", base); err != nil {
		return nil, err
	}
	ovf, manifest, err := readDescriptor(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ovf.Disks))
	for i := range ovf.Disks {
		names[i] = fmt.Sprintf("%s-disk%d", base, i)
		if err := storage.ValidateName("volume", names[i]); err != nil {
			return nil, err
		}
		if _, err := pool.GetVolume(ctx, names[i]); err == nil {
			return nil, storage.Exists("volume", names[i])
		}
	}
	dir, err := os.MkdirTemp(tmpDir, ".tmp-ova-")
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "give a writable temporary directory", "cannot create extraction directory")
	}
	defer os.RemoveAll(dir)
	paths, err := extractDisks(ctx, path, dir, ovf, manifest)
	if err != nil {
		return nil, err
	}
	for i, d := range ovf.Disks {
		img, err := Probe(ctx, paths[i], "")
		if err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "the OVA is damaged; export it again", "disk %q (%s) is not valid", d.DiskID, d.Href)
		}
		if d.Capacity != 0 && img.VirtualSize != d.Capacity {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "the OVA is inconsistent; export it again",
				"disk %q: the OVF says %d bytes but %s holds %d", d.DiskID, d.Capacity, d.Href, img.VirtualSize)
		}
	}
	r := revert.New()
	defer r.Fail()
	res := &OVAResult{OVF: ovf}
	n := float64(len(ovf.Disks))
	for i := range ovf.Disks {
		o := opts
		if opts.Progress != nil {
			i := i
			o.Progress = func(p float64) { opts.Progress((float64(i) + p/100) / n * 100) }
		}
		v, err := pool.ImportVolume(ctx, paths[i], names[i], o)
		if err != nil {
			return nil, err
		}
		name := names[i]
		r.Add(func() { pool.DeleteVolume(context.Background(), name) })
		res.Volumes = append(res.Volumes, v)
	}
	r.Success()
	return res, nil
}

// readDescriptor reads the .ovf and optional .mf entries of the archive.
func readDescriptor(path string) (*OVF, map[string]digest, error) {
	obj := fmt.Sprintf("OVA %q", path)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, storage.Errorf(storage.ErrNotFound, obj, "check the path", "does not exist")
		}
		return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot be opened")
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var ovf *OVF
	var ovfRaw []byte
	var manifest map[string]digest
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "the archive is damaged or truncated", "is not a valid tar archive")
		}
		name := h.Name
		if err := safeHref(name); err != nil {
			return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "has an unsafe entry name")
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".ovf":
			if ovf != nil {
				return nil, nil, storage.Errorf(storage.ErrInvalid, obj, "", "holds more than one .ovf descriptor")
			}
			ovfRaw, err = io.ReadAll(io.LimitReader(tr, maxOVFSize+1))
			if err != nil || len(ovfRaw) > maxOVFSize {
				return nil, nil, storage.Errorf(storage.ErrInvalid, obj, "", "OVF descriptor is unreadable or larger than 4 MiB")
			}
			if ovf, err = ParseOVF(bytes.NewReader(ovfRaw)); err != nil {
				return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "the OVA is damaged; export it again", "has an invalid descriptor")
			}
		case ".mf":
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "manifest is unreadable")
			}
			if manifest, err = parseManifest(b); err != nil {
				return nil, nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "manifest is invalid")
			}
		}
	}
	if ovf == nil {
		return nil, nil, storage.Errorf(storage.ErrInvalid, obj, "an OVA must contain an .ovf descriptor", "holds no .ovf descriptor")
	}
	if manifest != nil {
		for name, d := range manifest {
			if strings.HasSuffix(strings.ToLower(name), ".ovf") && !d.matches(ovfRaw) {
				return nil, nil, storage.Errorf(storage.ErrInvalid, obj, "the OVA was altered or damaged; export it again", "descriptor %s does not match its manifest digest", name)
			}
		}
	}
	return ovf, manifest, nil
}

// extractDisks copies the OVF's disks out of the archive, checking sizes and digests.
func extractDisks(ctx context.Context, path, dir string, ovf *OVF, manifest map[string]digest) ([]string, error) {
	obj := fmt.Sprintf("OVA %q", path)
	want := map[string]int{}
	for i, d := range ovf.Disks {
		want[d.Href] = i
	}
	out := make([]string, len(ovf.Disks))
	f, err := os.Open(path)
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot be opened")
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "the archive is damaged or truncated", "cannot be read")
		}
		i, ok := want[h.Name]
		if !ok || out[i] != "" {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "", "disk entry %s is not a regular file", h.Name)
		}
		d := ovf.Disks[i]
		if d.FileSize != 0 && uint64(h.Size) != d.FileSize {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "the OVA is damaged; export it again",
				"disk file %s is %d bytes, the OVF says %d", h.Name, h.Size, d.FileSize)
		}
		dst := filepath.Join(dir, h.Name)
		w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot extract %s", h.Name)
		}
		var hs hash.Hash
		md, hasDigest := manifest[h.Name]
		if hasDigest {
			hs = md.newHash()
		}
		var dstW io.Writer = w
		if hs != nil {
			dstW = io.MultiWriter(w, hs)
		}
		n, err := io.Copy(dstW, tr)
		cerr := w.Close()
		if err != nil || cerr != nil || n != h.Size {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "the archive is truncated; copy it again", "disk file %s is cut short", h.Name)
		}
		if hs != nil && hex.EncodeToString(hs.Sum(nil)) != md.hex {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "the OVA was altered or damaged; export it again", "disk file %s does not match its manifest digest", h.Name)
		}
		out[i] = dst
	}
	for i, p := range out {
		if p == "" {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "the OVA is incomplete; export it again", "disk file %s named by the OVF is missing", ovf.Disks[i].Href)
		}
	}
	return out, nil
}

type digest struct {
	alg string
	hex string
}

func (d digest) newHash() hash.Hash {
	switch d.alg {
	case "SHA1":
		return sha1.New()
	case "SHA512":
		return sha512.New()
	}
	return sha256.New()
}

func (d digest) matches(b []byte) bool {
	h := d.newHash()
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)) == d.hex
}

// parseManifest reads "SHA256(disk1.vmdk)= <hex>" lines.
func parseManifest(b []byte) (map[string]digest, error) {
	m := map[string]digest{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		open, close := strings.Index(l, "("), strings.Index(l, ")=")
		if open <= 0 || close < open {
			return nil, fmt.Errorf("bad manifest line %q", l)
		}
		alg := strings.ToUpper(l[:open])
		if alg != "SHA1" && alg != "SHA256" && alg != "SHA512" {
			return nil, fmt.Errorf("manifest algorithm %q is not supported", alg)
		}
		hexs := strings.ToLower(strings.TrimSpace(l[close+2:]))
		if _, err := hex.DecodeString(hexs); err != nil {
			return nil, fmt.Errorf("bad digest in manifest line %q", l)
		}
		m[l[open+1:close]] = digest{alg: alg, hex: hexs}
	}
	return m, nil
}
