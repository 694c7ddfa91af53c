package dir

import (
	"context"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
)

// CreateSnapshot freezes the active layer as the snapshot and puts a new empty overlay on top.
// The volume must not be attached: a running QEMU would keep writing the frozen file (the
// daemon takes live snapshots with QMP blockdev-snapshot-sync onto a layer from this pool).
func (p *Pool) CreateSnapshot(ctx context.Context, volume, snapshot string) (storage.Snapshot, error) {
	if err := storage.ValidateName("snapshot", snapshot); err != nil {
		return storage.Snapshot{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(volume)
	if err != nil {
		return storage.Snapshot{}, err
	}
	if _, s := m.snapshot(snapshot); s != nil {
		return storage.Snapshot{}, storage.Exists("snapshot", volume+"@"+snapshot)
	}
	if err := p.inUse(volume, "snapshot it offline"); err != nil {
		return storage.Snapshot{}, err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return storage.Snapshot{}, err
	}
	r := revert.New()
	defer r.Fail()
	id, err := p.newLayer(ctx, m, key, m.Active, m.Size)
	if err != nil {
		return storage.Snapshot{}, err
	}
	r.Add(func() { os.Remove(p.layerPath(id)) })
	s := snapMeta{Name: snapshot, Layer: m.Active, Size: m.Size, CreatedAt: time.Now().UTC()}
	m.Layers[id] = layerMeta{Parent: m.Active}
	m.Snapshots = append(m.Snapshots, s)
	m.Active = id
	if err := p.save(m); err != nil {
		return storage.Snapshot{}, err
	}
	r.Success()
	return storage.Snapshot{Volume: volume, Name: snapshot, Size: s.Size, CreatedAt: s.CreatedAt}, nil
}

// ListSnapshots lists snapshots oldest first.
func (p *Pool) ListSnapshots(ctx context.Context, volume string) ([]storage.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(volume)
	if err != nil {
		return nil, err
	}
	out := make([]storage.Snapshot, 0, len(m.Snapshots))
	for _, s := range m.Snapshots {
		out = append(out, storage.Snapshot{Volume: volume, Name: s.Name, Size: s.Size, CreatedAt: s.CreatedAt})
	}
	return out, nil
}

func (p *Pool) findSnapshot(volume, snapshot string) (*volMeta, *snapMeta, int, error) {
	if err := storage.ValidateName("snapshot", snapshot); err != nil {
		return nil, nil, 0, err
	}
	m, err := p.load(volume)
	if err != nil {
		return nil, nil, 0, err
	}
	i, s := m.snapshot(snapshot)
	if s == nil {
		return nil, nil, 0, storage.NotFound("snapshot", volume+"@"+snapshot)
	}
	return m, s, i, nil
}

// RestoreSnapshot discards the active layer and starts a new empty overlay on the snapshot:
// the volume reads exactly as at snapshot time. Other snapshots stay.
func (p *Pool) RestoreSnapshot(ctx context.Context, volume, snapshot string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, s, _, err := p.findSnapshot(volume, snapshot)
	if err != nil {
		return err
	}
	if err := p.inUse(volume, "restore it"); err != nil {
		return err
	}
	vols, err := p.loadAll()
	if err != nil {
		return err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return err
	}
	id, err := p.newLayer(ctx, m, key, s.Layer, s.Size)
	if err != nil {
		return err
	}
	m.Layers[id] = layerMeta{Parent: s.Layer}
	m.Active = id
	m.Size = s.Size
	files := p.gc(m, vols)
	if err := p.save(m); err != nil {
		os.Remove(p.layerPath(id))
		return err
	}
	removeFiles(files)
	return nil
}

// DeleteSnapshot forgets a snapshot and frees the layers only it needed. Refused while a clone
// was made from it.
func (p *Pool) DeleteSnapshot(ctx context.Context, volume, snapshot string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, s, i, err := p.findSnapshot(volume, snapshot)
	if err != nil {
		return err
	}
	vols, err := p.loadAll()
	if err != nil {
		return err
	}
	if deps := buildIndex(vols).foreignDependents(volume, s.Layer); len(deps) > 0 {
		return &storage.Error{Kind: storage.ErrInUse, Object: objName("snapshot", volume+"@"+snapshot), Msg: "clones were made from it",
			Dependents: deps, Fix: "delete the dependent clones first"}
	}
	m.Snapshots = append(m.Snapshots[:i], m.Snapshots[i+1:]...)
	files := p.gc(m, vols)
	files = append(files, p.compact(ctx, m, vols)...)
	if err := p.save(m); err != nil {
		return err
	}
	removeFiles(files)
	return nil
}

// CloneVolume creates dst as an overlay on src's frozen layer: O(1) whatever the size. Cloning
// a volume (not a snapshot) freezes its active layer first, as a snapshot would, so src must
// not be attached; cloning a snapshot has no such restriction. Encrypted sources give
// encrypted clones that share the passphrase (each layer still has its own LUKS data key).
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
	sm, err := p.load(sv)
	if err != nil {
		return storage.Volume{}, err
	}
	key, err := p.volumeKey(sm)
	if err != nil {
		return storage.Volume{}, err
	}
	r := revert.New()
	defer r.Fail()
	var base string
	size := sm.Size
	srcSaved := false
	if ss != "" {
		_, s := sm.snapshot(ss)
		if s == nil {
			return storage.Volume{}, storage.NotFound("snapshot", src)
		}
		base, size = s.Layer, s.Size
	} else {
		if err := p.inUse(sv, "clone it while attached (clone a snapshot of it instead)"); err != nil {
			return storage.Volume{}, err
		}
		// Freeze src's active layer: src continues on a new overlay.
		base = sm.Active
		id, err := p.newLayer(ctx, sm, key, base, sm.Size)
		if err != nil {
			return storage.Volume{}, err
		}
		r.Add(func() {
			if !srcSaved {
				os.Remove(p.layerPath(id))
			}
		})
		sm.Layers[id] = layerMeta{Parent: base}
		sm.Active = id
	}
	dm, _, err := p.newMeta(dst, size, storage.VolumeOpts{Cache: sm.Cache})
	if err != nil {
		return storage.Volume{}, err
	}
	dm.Origin = src
	if sm.Encrypted {
		dm.Encrypted = true
		if dm.WrappedKey, err = poolkit.WrapKey(p.cfg.MasterKeyFile, objName("volume", dst), dm.ID, key); err != nil {
			return storage.Volume{}, err
		}
	}
	if dm.Encrypted {
		p.copyTemplate(sm, dm)
		r.Add(func() { os.Remove(p.templatePath(dm.ID)) })
	}
	id, err := p.newLayer(ctx, dm, key, base, size)
	if err != nil {
		return storage.Volume{}, err
	}
	r.Add(func() { os.Remove(p.layerPath(id)) })
	dm.Layers[id] = layerMeta{Parent: base}
	dm.Active = id
	// Source first: if the clone's metadata then fails, src simply has one more (empty) layer.
	if ss == "" {
		if err := p.save(sm); err != nil {
			return storage.Volume{}, err
		}
		srcSaved = true
	}
	if err := p.save(dm); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return describe(dm, p.allocated(dm)), nil
}
