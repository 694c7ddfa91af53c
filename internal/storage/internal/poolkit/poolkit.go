// Package poolkit holds what the btrfs and dir pools do alike: loading the master key,
// wrapping and unwrapping per-volume keys, asking the in-use hook, opening a volume with
// qemu-img, resizing an image and writing an export. Object names in errors ("volume %q")
// are passed in by the callers, which format them their own way.
package poolkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/keys"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// Master loads (or creates) the master key in path; "" means storage.DefaultMasterKeyFile.
func Master(path string) (*keys.Master, error) {
	if path == "" {
		path = storage.DefaultMasterKeyFile
	}
	m, err := keys.LoadOrCreate(path)
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, "master key "+path, err, "check PoolConfig.MasterKeyFile", "cannot be loaded")
	}
	return m, nil
}

// KeyAAD binds a wrapped volume key to the volume's identity.
func KeyAAD(id string) string { return "finvirt-volume:" + id }

// WrapKey wraps key for the volume with identity id under the master key in masterFile; obj
// names the volume in errors.
func WrapKey(masterFile, obj, id string, key []byte) (string, error) {
	mk, err := Master(masterFile)
	if err != nil {
		return "", err
	}
	w, err := mk.Wrap(key, KeyAAD(id))
	if err != nil {
		return "", storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot wrap its key")
	}
	return w, nil
}

// NewKey makes a fresh volume key and wraps it as WrapKey does.
func NewKey(masterFile, obj, id string) (key []byte, wrapped string, err error) {
	mk, err := Master(masterFile)
	if err != nil {
		return nil, "", err
	}
	key = keys.NewVolumeKey()
	if wrapped, err = mk.Wrap(key, KeyAAD(id)); err != nil {
		return nil, "", storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot wrap its key")
	}
	return key, wrapped, nil
}

// UnwrapKey unwraps the key of the encrypted volume name (identity id).
func UnwrapKey(masterFile, name, id, wrapped string) ([]byte, error) {
	mk, err := Master(masterFile)
	if err != nil {
		return nil, err
	}
	k, err := mk.Unwrap(wrapped, KeyAAD(id))
	if err != nil {
		fix := "restore the volume metadata from backup"
		if errors.Is(err, keys.ErrWrongMasterKey) {
			fix = "configure the master key file this volume was created with"
		}
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, fix, "cannot unwrap its encryption key")
	}
	return k, nil
}

// InUse asks the daemon's hook (PoolConfig.InUse, may be nil) whether something holds the
// volume; op is what is refused ("delete it").
func InUse(hook func(string) string, name, op string) error {
	if hook == nil {
		return nil
	}
	if h := hook(name); h != "" {
		return &storage.Error{Kind: storage.ErrInUse, Object: fmt.Sprintf("volume %q", name), Msg: "cannot " + op + " while it is attached", Dependents: []string{h}, Fix: "detach it first (or stop the instance)"}
	}
	return nil
}

// ToolImage is how qemu-img opens a volume: the explicit json: spec with the page cache (tools
// need no O_DIRECT) and the secret.
func ToolImage(a storage.Access) qemuimg.Image {
	a.Cache = storage.CacheWriteback
	img := qemuimg.Image{Path: "json:" + a.BlockdevJSON("")}
	if a.Key != nil {
		img.Objects = []string{a.SecretObjectArg()}
	}
	return img
}

// Resize resizes img from old to size bytes, refusing to shrink past data, then calls save
// (which records the new size); if save fails the image goes back to old, best effort.
func Resize(ctx context.Context, obj string, img qemuimg.Image, old, size uint64, save func() error) error {
	shrink := size < old
	if shrink {
		ext, err := qemuimg.Map(ctx, img)
		if err != nil {
			return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot read its allocation map")
		}
		if end := qemuimg.DataEnd(ext); end > size {
			return storage.Errorf(storage.ErrInvalid, obj,
				"shrink the filesystem inside first (and trim), or choose a size of at least the used end",
				"holds data up to byte %d, beyond the requested size %d", end, size)
		}
	}
	if err := qemuimg.Resize(ctx, img, size, shrink); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "resize failed")
	}
	if err := save(); err != nil {
		qemuimg.Resize(ctx, img, old, !shrink) // best effort back to the recorded size
		return err
	}
	return nil
}

// ExportFile converts src to a standalone image of format at path, through a temporary name
// beside it, flushed before it is renamed into place.
func ExportFile(ctx context.Context, obj string, src qemuimg.Image, format storage.Format, path string, progress storage.ProgressFunc) error {
	tmp := fsutil.TempName(filepath.Dir(path), "export")
	if err := qemuimg.Convert(ctx, qemuimg.ConvertOpts{Src: src, Dst: tmp, DstFormat: string(format), Progress: progress}); err != nil {
		os.Remove(tmp)
		return storage.Wrap(storage.ErrInvalid, obj, err, "check free space at "+filepath.Dir(path), "export failed")
	}
	if err := fsutil.SyncFile(tmp); err != nil {
		os.Remove(tmp)
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot flush export")
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot place export at %s", path)
	}
	return nil
}

// ExportStream has exportFile write the export to a temporary file in dir, then streams it to w.
func ExportStream(obj, dir string, format storage.Format, w io.Writer, exportFile func(path string) error) error {
	tmp := fsutil.TempName(dir, "export") + "." + string(format)
	defer os.Remove(tmp)
	if err := exportFile(tmp); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot read export")
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot write export")
	}
	return nil
}
