package diskimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// Image is a validated disk image, ready to be converted.
type Image struct {
	Path        string
	Format      string // qemu-img driver name
	Subformat   string // vmdk create-type
	VirtualSize uint64
	FileSize    uint64
}

// Source is the qemu-img view of the image.
func (i *Image) Source() qemuimg.Image { return qemuimg.Image{Path: i.Path, Format: i.Format} }

// checked lists formats qemu-img can check for consistency; for the others (raw, vpc) the
// structural checks here are all there is.
var checked = map[string]bool{Qcow2: true, VMDK: true, VHDX: true, VDI: true, QED: true}

// Probe identifies and validates the image at path without writing anything. claimed is a
// format the caller asserts ("" for none). It refuses, with storage.ErrInvalid or
// storage.ErrUnsupported naming the file and the fix: content that disagrees with its name or
// the claim, images with backing files or external extents (they would read other host files),
// compressed or encrypted containers, truncated or corrupt images.
func Probe(ctx context.Context, path, claimed string) (*Image, error) {
	obj := fmt.Sprintf("image %q", path)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, storage.Errorf(storage.ErrNotFound, obj, "check the path", "does not exist")
		}
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "check the path and permissions", "cannot be opened")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot be read")
	}
	if !st.Mode().IsRegular() {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "give a regular image file", "is not a regular file")
	}
	size := uint64(st.Size())
	if size == 0 {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "give a non-empty image", "is empty")
	}
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	var tail []byte
	if size >= 512 {
		tail = make([]byte, 512)
		if _, err := f.ReadAt(tail, int64(size-512)); err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot be read")
		}
	}
	format := DetectFormat(head, tail)
	switch format {
	case Gzip, XZ, Zip:
		return nil, storage.Errorf(storage.ErrUnsupported, obj, "decompress it first", "is a %s archive, not a disk image", format)
	case LUKS:
		return nil, storage.Errorf(storage.ErrUnsupported, obj, "decrypt it with its own tooling first", "is a LUKS container")
	case VMDKDescr:
		return nil, storage.Errorf(storage.ErrUnsupported, obj,
			"convert it to a monolithicSparse or streamOptimized VMDK (or export an OVA) first",
			"is a VMDK descriptor that refers to separate extent files")
	case OVA:
		return nil, storage.Errorf(storage.ErrInvalid, obj, "import it with diskimage.ImportOVA", "is an OVA (tar) archive")
	}
	if named := FormatForName(filepath.Base(path)); named != "" && named != format {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "rename it or check where it came from",
			"is named like a %s image but its content is %s", named, format)
	}
	if claimed != "" && claimed != format {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "check the source format given",
			"was declared %s but its content is %s", claimed, format)
	}
	if format == Raw && size%512 != 0 {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "a raw disk is a whole number of 512-byte sectors; the file is truncated or not a disk",
			"raw image size %d is not a multiple of 512", size)
	}
	if format == Qcow2 {
		h, _ := parseQcow2Header(head)
		if h.BackingFileOffset != 0 {
			return nil, storage.Errorf(storage.ErrUnsupported, obj, "flatten it first: qemu-img convert -O qcow2 in out", "is a qcow2 overlay with a backing file")
		}
		if qcow2Truncated(h, size) {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "copy the image again", "qcow2 header points past the end of the %d-byte file: truncated or corrupt", size)
		}
	}
	if format == VPC && (len(tail) < 512 || string(tail[:8]) != "conectix") {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "copy the image again", "VHD footer missing at the end of the file: truncated")
	}

	img := qemuimg.Image{Path: path, Format: format}
	info, err := qemuimg.GetInfo(ctx, img)
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "the file is corrupt or truncated; copy it again", "is not a valid %s image", format)
	}
	if info.BackingFilename != "" {
		return nil, storage.Errorf(storage.ErrUnsupported, obj, "flatten it first", "refers to a backing file %q", info.BackingFilename)
	}
	if info.Encrypted {
		return nil, storage.Errorf(storage.ErrUnsupported, obj, "decrypt it first", "is encrypted")
	}
	out := &Image{Path: path, Format: format, VirtualSize: info.VirtualSize, FileSize: size}
	if fs := info.FormatSpecific; fs != nil {
		if fs.Data.Corrupt {
			return nil, storage.Errorf(storage.ErrInvalid, obj, "repair it with qemu-img check -r all on a copy", "is marked corrupt")
		}
		out.Subformat = fs.Data.CreateType
	}
	if format == VMDK && out.Subformat != "monolithicSparse" && out.Subformat != "streamOptimized" {
		return nil, storage.Errorf(storage.ErrUnsupported, obj, "convert it to monolithicSparse or streamOptimized first",
			"VMDK subformat %q is not supported", out.Subformat)
	}
	if out.VirtualSize == 0 || out.VirtualSize > storage.MaxVolumeSize {
		return nil, storage.Errorf(storage.ErrInvalid, obj, "", "virtual size %d is out of range (1 byte to 64 TiB)", out.VirtualSize)
	}
	if checked[format] {
		if _, err := qemuimg.Check(ctx, img); err != nil && !errors.Is(err, qemuimg.ErrCheckUnsupported) {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "the file is corrupt or truncated; copy it again", "fails the %s consistency check", format)
		}
	}
	return out, nil
}
