package btrfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// checkOpts settles cache and format: raw by default (no qcow2 layer between guest and btrfs),
// qcow2 when encrypted (LUKS lives in the qcow2 header here).
func checkOpts(name string, opts *storage.VolumeOpts) error {
	c, err := storage.ParseCachePolicy(string(opts.Cache))
	if err != nil {
		return err
	}
	opts.Cache = c
	switch {
	case opts.Format == "" && opts.Encrypted:
		opts.Format = storage.FormatQcow2
	case opts.Format == "":
		opts.Format = storage.FormatRaw
	case opts.Format == storage.FormatRaw && opts.Encrypted:
		return storage.Errorf(storage.ErrUnsupported, fmt.Sprintf("volume %q", name), "omit the format: encrypted volumes are qcow2", "raw volumes cannot be encrypted")
	}
	_, err = storage.ParseFormat(string(opts.Format))
	return err
}

func (p *Pool) newMeta(name string, size uint64, opts storage.VolumeOpts) (*volMeta, []byte, error) {
	m := &volMeta{ID: fsutil.RandomID(16), Name: name, Size: size, Format: opts.Format, Encrypted: opts.Encrypted,
		Cache: opts.Cache, CreatedAt: time.Now().UTC()}
	if !opts.Encrypted {
		return m, nil, nil
	}
	key, wrapped, err := poolkit.NewKey(p.cfg.MasterKeyFile, fmt.Sprintf("volume %q", name), m.ID)
	if err != nil {
		return nil, nil, err
	}
	m.WrappedKey = wrapped
	return m, key, nil
}

func (p *Pool) checkFree(name string) error {
	if _, err := os.Lstat(p.volPath(name)); err == nil {
		return storage.Exists("volume", name)
	}
	return nil
}

// tempSubvol creates an empty temporary subvolume and registers its deletion.
func (p *Pool) tempSubvol(ctx context.Context, r *revert.Reverter, op string) (string, error) {
	tmp := fsutil.TempName(filepath.Join(p.cfg.Path, "volumes"), op)
	if err := subvolCreate(ctx, tmp); err != nil {
		return "", storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot create subvolume")
	}
	r.Add(func() { subvolDelete(context.Background(), tmp) })
	return tmp, nil
}

// CreateVolume creates a subvolume with a sparse image file (thin).
func (p *Pool) CreateVolume(ctx context.Context, name string, size uint64, opts storage.VolumeOpts) (storage.Volume, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return storage.Volume{}, err
	}
	if err := storage.ValidateSize(name, size); err != nil {
		return storage.Volume{}, err
	}
	if err := checkOpts(name, &opts); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkFree(name); err != nil {
		return storage.Volume{}, err
	}
	m, key, err := p.newMeta(name, size, opts)
	if err != nil {
		return storage.Volume{}, err
	}
	r := revert.New()
	defer r.Fail()
	tmp, err := p.tempSubvol(ctx, r, "create")
	if err != nil {
		return storage.Volume{}, err
	}
	co := qemuimg.CreateOpts{Path: filepath.Join(tmp, diskName(m.Format)), Format: string(m.Format), Size: size, IterTimeMs: p.cfg.LUKSIterTimeMs}
	if m.Encrypted {
		a := storage.Access{Pool: p.cfg.Name, Volume: name, Key: key}
		co.Secret, co.SecretID = a.SecretObjectArg(), a.SecretID()
	}
	if err := qemuimg.Create(ctx, co); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "check free space", "cannot create image")
	}
	if err := writeMeta(tmp, m); err != nil {
		return storage.Volume{}, err
	}
	if err := p.place(tmp, name); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return describe(m, fsutil.DirAllocated(p.volPath(name)), 0), nil
}

// place renames a finished temporary subvolume to its volume name.
func (p *Pool) place(tmp, name string) error {
	if err := os.Rename(tmp, p.volPath(name)); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "", "cannot place subvolume")
	}
	fsutil.SyncDir(filepath.Dir(tmp))
	return nil
}

// ListVolumes lists volumes sorted by name.
func (p *Pool) ListVolumes(ctx context.Context) ([]storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ents, err := os.ReadDir(filepath.Join(p.cfg.Path, "volumes"))
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "open the pool again", "cannot read volumes")
	}
	var out []storage.Volume
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			continue
		}
		m, err := p.load(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, describe(m, fsutil.DirAllocated(p.volPath(m.Name)), p.countSnaps(m.Name)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetVolume returns a volume. Allocated counts the extents of its image file, including
// extents it shares with snapshots and clones (btrfs reference-counts them).
func (p *Pool) GetVolume(ctx context.Context, name string) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(name)
	if err != nil {
		return storage.Volume{}, err
	}
	return describe(m, fsutil.DirAllocated(p.volPath(name)), p.countSnaps(name)), nil
}

// DeleteVolume deletes the volume and its snapshots. Clones never block it: they hold their
// own references to the shared extents.
func (p *Pool) DeleteVolume(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.load(name); err != nil {
		return err
	}
	if err := p.inUse(name, "delete it"); err != nil {
		return err
	}
	// Rename first: the volume disappears atomically; the rest is cleanup Recover can redo.
	tmp := fsutil.TempName(filepath.Join(p.cfg.Path, "volumes"), "delete")
	if err := os.Rename(p.volPath(name), tmp); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "", "cannot delete")
	}
	ents, _ := os.ReadDir(p.snapDir(name))
	for _, e := range ents {
		subvolDelete(ctx, filepath.Join(p.snapDir(name), e.Name()))
	}
	os.Remove(p.snapDir(name))
	if err := subvolDelete(ctx, tmp); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "Recover will retry", "subvolume deletion failed")
	}
	return nil
}

// ResizeVolume grows, or shrinks when no data lies beyond the new size (raw and qcow2 both
// can shrink).
func (p *Pool) ResizeVolume(ctx context.Context, name string, size uint64) error {
	if err := storage.ValidateSize(name, size); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(name)
	if err != nil {
		return err
	}
	if size == m.Size {
		return nil
	}
	shrink := size < m.Size
	if shrink {
		if err := p.inUse(name, "shrink it"); err != nil {
			return err
		}
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return err
	}
	img := poolkit.ToolImage(p.access(p.volPath(name), m, key))
	return poolkit.Resize(ctx, fmt.Sprintf("volume %q", name), img, m.Size, size, func() error {
		m.Size = size
		return writeMeta(p.volPath(name), m)
	})
}

// Access returns the open description of the volume for QEMU.
func (p *Pool) Access(ctx context.Context, name string) (storage.Access, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(name)
	if err != nil {
		return storage.Access{}, err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return storage.Access{}, err
	}
	return p.access(p.volPath(name), m, key), nil
}
