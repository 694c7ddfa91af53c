package dir

import (
	"context"
	"os"
	"sort"
	"time"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
)

func (p *Pool) checkOpts(name string, opts *storage.VolumeOpts) error {
	c, err := storage.ParseCachePolicy(string(opts.Cache))
	if err != nil {
		return err
	}
	opts.Cache = c
	if opts.Format != "" && opts.Format != storage.FormatQcow2 {
		return storage.Errorf(storage.ErrUnsupported, objName("volume", name), "omit the format or use a btrfs pool for raw volumes",
			"dir pools store qcow2 volumes only (snapshots and clones are qcow2 backing chains), not %s", opts.Format)
	}
	return nil
}

// newMeta prepares metadata (and key) of a volume about to be created.
func (p *Pool) newMeta(name string, size uint64, opts storage.VolumeOpts) (*volMeta, []byte, error) {
	m := &volMeta{ID: fsutil.RandomID(16), Name: name, Size: size, Encrypted: opts.Encrypted, Cache: opts.Cache,
		Layers: map[string]layerMeta{}, Snapshots: []snapMeta{}, CreatedAt: time.Now().UTC()}
	if !opts.Encrypted {
		return m, nil, nil
	}
	key, wrapped, err := poolkit.NewKey(p.cfg.MasterKeyFile, objName("volume", name), m.ID)
	if err != nil {
		return nil, nil, err
	}
	m.WrappedKey = wrapped
	return m, key, nil
}

func (p *Pool) checkFree(name string) error {
	if _, err := os.Stat(p.metaPath(name)); err == nil {
		return storage.Exists("volume", name)
	}
	return nil
}

// CreateVolume creates a thin qcow2 volume (no preallocation: allocated starts at a few KiB).
func (p *Pool) CreateVolume(ctx context.Context, name string, size uint64, opts storage.VolumeOpts) (storage.Volume, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return storage.Volume{}, err
	}
	if err := storage.ValidateSize(name, size); err != nil {
		return storage.Volume{}, err
	}
	if err := p.checkOpts(name, &opts); err != nil {
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
	r.Add(func() { os.Remove(p.templatePath(m.ID)) })
	id, err := p.newLayer(ctx, m, key, "", size)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Add(func() { os.Remove(p.layerPath(id)) })
	m.Active = id
	m.Layers[id] = layerMeta{}
	if err := p.save(m); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return describe(m, p.allocated(m)), nil
}

// ListVolumes lists volumes sorted by name.
func (p *Pool) ListVolumes(ctx context.Context) ([]storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	vols, err := p.loadAll()
	if err != nil {
		return nil, err
	}
	out := make([]storage.Volume, 0, len(vols))
	for _, m := range vols {
		out = append(out, describe(m, p.allocated(m)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetVolume returns one volume with its allocated bytes (its own layers only: data shared
// with a clone source is counted once, at the source).
func (p *Pool) GetVolume(ctx context.Context, name string) (storage.Volume, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(name)
	if err != nil {
		return storage.Volume{}, err
	}
	return describe(m, p.allocated(m)), nil
}

// DeleteVolume deletes the volume and all its snapshots. Refused while clones are built on
// any of its layers.
func (p *Pool) DeleteVolume(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(name)
	if err != nil {
		return err
	}
	if err := p.inUse(name, "delete it"); err != nil {
		return err
	}
	vols, err := p.loadAll()
	if err != nil {
		return err
	}
	ix := buildIndex(vols)
	ids := make([]string, 0, len(m.Layers))
	for id := range m.Layers {
		ids = append(ids, id)
	}
	if deps := ix.foreignDependents(name, ids...); len(deps) > 0 {
		return &storage.Error{Kind: storage.ErrInUse, Object: objName("volume", name), Msg: "clones depend on it or on its snapshots",
			Dependents: deps, Fix: "delete the dependent clones first"}
	}
	// Metadata first: once it is gone the volume is gone; leftover files are Recover's.
	if err := os.Remove(p.metaPath(name)); err != nil {
		return storage.Wrap(storage.ErrInvalid, objName("volume", name), err, "", "cannot remove metadata")
	}
	fsutil.SyncDir(p.volDir())
	for _, id := range ids {
		os.Remove(p.layerPath(id))
	}
	os.Remove(p.templatePath(m.ID))
	// The source this volume was cloned from may now have a hidden layer only it uses.
	delete(vols, name)
	owners := map[string]bool{}
	for _, id := range ids {
		if o := ix.owner[m.Layers[id].Parent]; o != "" && o != name {
			owners[o] = true
		}
	}
	for o := range owners {
		om := vols[o]
		if files := p.compact(ctx, om, vols); len(files) > 0 && p.save(om) == nil {
			removeFiles(files)
		}
	}
	return nil
}

// ResizeVolume grows the volume or shrinks it when no data lies past the new end. qcow2 can
// shrink, so shrinking is supported here; data beyond the new size refuses it.
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
	vols, err := p.loadAll()
	if err != nil {
		return err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return err
	}
	a := p.access(m, buildIndex(vols), m.Active, key)
	img := poolkit.ToolImage(a)
	return poolkit.Resize(ctx, objName("volume", name), img, m.Size, size, func() error {
		m.Size = size
		return p.save(m)
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
	vols, err := p.loadAll()
	if err != nil {
		return storage.Access{}, err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return storage.Access{}, err
	}
	return p.access(m, buildIndex(vols), m.Active, key), nil
}
