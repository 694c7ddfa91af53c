package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Export writes the image as a tar: metadata.json first (with the name), then its files.
func (s *Store) Export(nameOrID string, w io.Writer) error {
	im, err := s.Get(nameOrID)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	js, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: metadataFile, Mode: 0o644, Size: int64(len(js)), ModTime: now}); err != nil {
		return err
	}
	if _, err := tw.Write(js); err != nil {
		return err
	}
	for _, name := range im.fileNames() {
		if err := addTarFile(tw, filepath.Join(im.dir, name), name); err != nil {
			return fmt.Errorf("export %s: %w", im.Name, err)
		}
	}
	return tw.Close()
}

func (im *Image) fileNames() []string {
	n := []string{vmlinuxFile}
	if im.Initrd != nil {
		n = append(n, initrdFile)
	}
	if im.Disk != nil {
		n = append(n, diskFile)
	}
	return n
}

func addTarFile(tw *tar.Writer, p, name string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// maxImportMetadata bounds metadata.json so a hostile archive cannot exhaust memory.
const maxImportMetadata = 4 << 20

// Import reads an archive written by Export. Every file is checked against the sizes and
// hashes in the metadata and the id is recomputed; a truncated, corrupt or unexpected archive
// is rejected and leaves nothing in the store.
func (s *Store) Import(r io.Reader) (*Image, error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "import-")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("import: not an image archive: %v", err)
	}
	if hdr.Name != metadataFile || hdr.Size > maxImportMetadata {
		return nil, fmt.Errorf("import: archive must start with %s (got %q, %d bytes)", metadataFile, hdr.Name, hdr.Size)
	}
	var im Image
	js, err := io.ReadAll(tr)
	if err != nil {
		return nil, fmt.Errorf("import: reading metadata: %v", err)
	}
	if err := json.Unmarshal(js, &im); err != nil {
		return nil, fmt.Errorf("import: metadata.json: %v", err)
	}
	if err := ValidateName(im.Name); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	want := map[string]*FileInfo{vmlinuxFile: &im.Vmlinux}
	switch im.Kind {
	case KindAppliance:
		if im.Initrd == nil {
			return nil, errors.New("import: appliance metadata lacks the initrd entry")
		}
		want[initrdFile] = im.Initrd
	case KindFull:
		if im.Disk == nil {
			return nil, errors.New("import: full image metadata lacks the disk entry")
		}
		want[diskFile] = im.Disk
		if im.Initrd != nil {
			want[initrdFile] = im.Initrd
		}
	default:
		return nil, fmt.Errorf("import: unknown image kind %q", im.Kind)
	}
	if id := computeID(im.Kind, &im.Vmlinux, im.Initrd, im.Disk); id != im.ID {
		return nil, fmt.Errorf("import: metadata id %.16s does not match its file hashes (%.16s): archive was altered", im.ID, id)
	}
	got := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("import: archive is truncated or corrupt: %v", err)
		}
		fi, ok := want[hdr.Name]
		if !ok || got[hdr.Name] {
			return nil, fmt.Errorf("import: unexpected archive member %q", hdr.Name)
		}
		got[hdr.Name] = true
		if hdr.Size != fi.Size {
			return nil, fmt.Errorf("import: %s is %d bytes, metadata says %d", hdr.Name, hdr.Size, fi.Size)
		}
		if err := receiveFile(filepath.Join(tmp, hdr.Name), tr, fi); err != nil {
			return nil, fmt.Errorf("import: %s: %w", hdr.Name, err)
		}
	}
	for n := range want {
		if !got[n] {
			return nil, fmt.Errorf("import: archive lacks %s (truncated?)", n)
		}
	}
	im.BuildSeconds = 0
	if im.Created.IsZero() {
		im.Created = time.Now().UTC()
	}
	committed = true
	return s.commit(tmp, &im)
}

func receiveFile(p string, r io.Reader, want *FileInfo) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("archive is truncated or corrupt: %v", err)
	}
	if n != want.Size {
		return fmt.Errorf("got %d bytes, want %d (truncated)", n, want.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != want.SHA256 {
		return fmt.Errorf("sha256 %.16s does not match metadata %.16s (corrupt)", sum, want.SHA256)
	}
	return nil
}
