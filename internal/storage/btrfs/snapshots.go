package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
)

// CreateSnapshot takes a read-only btrfs snapshot of the volume's subvolume. btrfs snapshots
// are atomic, so this is crash-consistent even while a guest writes the volume.
func (p *Pool) CreateSnapshot(ctx context.Context, volume, snapshot string) (storage.Snapshot, error) {
	if err := storage.ValidateName("snapshot", snapshot); err != nil {
		return storage.Snapshot{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.load(volume); err != nil {
		return storage.Snapshot{}, err
	}
	if _, err := os.Lstat(p.snapPath(volume, snapshot)); err == nil {
		return storage.Snapshot{}, storage.Exists("snapshot", volume+"@"+snapshot)
	}
	obj := fmt.Sprintf("snapshot %q", volume+"@"+snapshot)
	if err := os.MkdirAll(p.snapDir(volume), 0o700); err != nil {
		return storage.Snapshot{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot create snapshot directory")
	}
	r := revert.New()
	defer r.Fail()
	tmp := fsutil.TempName(p.snapDir(volume), "snap")
	// Writable first, to stamp its metadata, then read-only, then renamed into place.
	if err := subvolSnapshot(ctx, p.volPath(volume), tmp, false); err != nil {
		return storage.Snapshot{}, storage.Wrap(storage.ErrInvalid, obj, err, "check free space", "btrfs snapshot failed")
	}
	r.Add(func() { subvolDelete(context.Background(), tmp) })
	m, err := readMeta(tmp)
	if err != nil {
		return storage.Snapshot{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "metadata is unreadable")
	}
	m.SnapshotAt = time.Now().UTC()
	if err := writeMeta(tmp, m); err != nil {
		return storage.Snapshot{}, err
	}
	if err := setReadOnly(ctx, tmp, true); err != nil {
		return storage.Snapshot{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot make the snapshot read-only")
	}
	if err := os.Rename(tmp, p.snapPath(volume, snapshot)); err != nil {
		return storage.Snapshot{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot place snapshot")
	}
	r.Success()
	return storage.Snapshot{Volume: volume, Name: snapshot, Size: m.Size, CreatedAt: m.SnapshotAt}, nil
}

// ListSnapshots lists snapshots oldest first.
func (p *Pool) ListSnapshots(ctx context.Context, volume string) ([]storage.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.load(volume); err != nil {
		return nil, err
	}
	ents, _ := os.ReadDir(p.snapDir(volume))
	out := []storage.Snapshot{}
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			continue
		}
		m, err := readMeta(filepath.Join(p.snapDir(volume), e.Name()))
		if err != nil {
			continue
		}
		out = append(out, storage.Snapshot{Volume: volume, Name: e.Name(), Size: m.Size, CreatedAt: m.SnapshotAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// RestoreSnapshot builds a writable snapshot of the snapshot under a temporary name and swaps
// it with the volume in one renameat2(RENAME_EXCHANGE): at every instant the volume name
// points at either the old or the restored data.
func (p *Pool) RestoreSnapshot(ctx context.Context, volume, snapshot string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.loadSnap(volume, snapshot); err != nil {
		return err
	}
	if err := p.inUse(volume, "restore it"); err != nil {
		return err
	}
	obj := fmt.Sprintf("volume %q", volume)
	r := revert.New()
	defer r.Fail()
	tmp := fsutil.TempName(filepath.Join(p.cfg.Path, "volumes"), "restore")
	if err := subvolSnapshot(ctx, p.snapPath(volume, snapshot), tmp, false); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "check free space", "btrfs snapshot failed")
	}
	r.Add(func() { subvolDelete(context.Background(), tmp) })
	m, err := readMeta(tmp)
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "snapshot metadata is unreadable")
	}
	m.SnapshotAt = time.Time{}
	if err := writeMeta(tmp, m); err != nil {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, p.volPath(volume), unix.RENAME_EXCHANGE); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot swap in the restored subvolume")
	}
	// tmp now holds the old data; the reverter deletes it.
	return nil
}

// DeleteSnapshot deletes a snapshot subvolume. Clones made from it keep their data.
func (p *Pool) DeleteSnapshot(ctx context.Context, volume, snapshot string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.loadSnap(volume, snapshot); err != nil {
		return err
	}
	if err := subvolDelete(ctx, p.snapPath(volume, snapshot)); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("snapshot %q", volume+"@"+snapshot), err, "", "cannot delete")
	}
	return nil
}

// CloneVolume makes dst a writable btrfs snapshot of src (a volume or a snapshot): O(1), and
// independent of src afterwards. An encrypted clone shares the source's LUKS header (the file
// is the same), so its key is the source's key, wrapped again for the clone's identity.
func (p *Pool) CloneVolume(ctx context.Context, src, dst string) (storage.Volume, error) {
	sv, ss, err := storage.ParseSnapshotRef(src)
	if err != nil {
		return storage.Volume{}, err
	}
	if err := storage.ValidateName("volume", dst); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkFree(dst); err != nil {
		return storage.Volume{}, err
	}
	var sm *volMeta
	srcDir := p.volPath(sv)
	if ss != "" {
		sm, err = p.loadSnap(sv, ss)
		srcDir = p.snapPath(sv, ss)
	} else {
		sm, err = p.load(sv)
	}
	if err != nil {
		return storage.Volume{}, err
	}
	key, err := p.volumeKey(sm)
	if err != nil {
		return storage.Volume{}, err
	}
	r := revert.New()
	defer r.Fail()
	tmp := fsutil.TempName(filepath.Join(p.cfg.Path, "volumes"), "clone")
	if err := subvolSnapshot(ctx, srcDir, tmp, false); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", dst), err, "check free space", "btrfs snapshot failed")
	}
	r.Add(func() { subvolDelete(context.Background(), tmp) })
	dm := *sm
	dm.ID, dm.Name, dm.Origin, dm.CreatedAt, dm.SnapshotAt = fsutil.RandomID(16), dst, src, time.Now().UTC(), time.Time{}
	if sm.Encrypted {
		if dm.WrappedKey, err = poolkit.WrapKey(p.cfg.MasterKeyFile, fmt.Sprintf("volume %q", dst), dm.ID, key); err != nil {
			return storage.Volume{}, err
		}
	}
	if err := writeMeta(tmp, &dm); err != nil {
		return storage.Volume{}, err
	}
	if err := p.place(tmp, dst); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	// Allocated is reported 0 right after cloning: every extent is shared with the source.
	return describe(&dm, 0, 0), nil
}
