package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/keys"
)

// RotateMasterKey re-wraps the key in the metadata of every volume and every snapshot (read-only
// subvolumes are made writable for the rewrite and read-only again; Recover restores the flag
// should a crash come in between) under the master key in newMasterKeyFile.
func (p *Pool) RotateMasterKey(ctx context.Context, newMasterKeyFile string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.master()
	if err != nil {
		return 0, err
	}
	nm, err := keys.LoadOrCreate(newMasterKeyFile)
	if err != nil {
		return 0, storage.Wrap(storage.ErrInvalid, "master key "+newMasterKeyFile, err, "check the path", "cannot be loaded")
	}
	var dirs []string
	vols, _ := os.ReadDir(filepath.Join(p.cfg.Path, "volumes"))
	for _, v := range vols {
		if fsutil.IsTemp(v.Name()) {
			continue
		}
		dirs = append(dirs, p.volPath(v.Name()))
		snaps, _ := os.ReadDir(p.snapDir(v.Name()))
		for _, s := range snaps {
			if !fsutil.IsTemp(s.Name()) {
				dirs = append(dirs, p.snapPath(v.Name(), s.Name()))
			}
		}
	}
	n := 0
	for _, dir := range dirs {
		m, err := readMeta(dir)
		if err != nil {
			return n, storage.Wrap(storage.ErrInvalid, dir, err, "", "metadata is unreadable")
		}
		if !m.Encrypted {
			continue
		}
		w, changed, err := keys.Rewrap(old, nm, m.WrappedKey, poolkit.KeyAAD(m.ID))
		if err != nil {
			return n, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q (%s)", m.Name, dir), err, "run the rotation again with the original master key configured", "cannot re-wrap its key")
		}
		if !changed {
			continue
		}
		m.WrappedKey = w
		snapshot := !m.SnapshotAt.IsZero()
		if snapshot {
			if err := setReadOnly(ctx, dir, false); err != nil {
				return n, storage.Wrap(storage.ErrInvalid, dir, err, "", "cannot make the snapshot writable")
			}
		}
		err = writeMeta(dir, m)
		if snapshot {
			if rerr := setReadOnly(ctx, dir, true); err == nil && rerr != nil {
				err = storage.Wrap(storage.ErrInvalid, dir, rerr, "", "cannot make the snapshot read-only again")
			}
		}
		if err != nil {
			return n, err
		}
		n++
	}
	p.cfg.MasterKeyFile = newMasterKeyFile
	return n, nil
}

var _ storage.KeyRotator = (*Pool)(nil)
