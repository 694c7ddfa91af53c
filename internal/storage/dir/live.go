package dir

import (
	"context"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
)

// BeginLiveSnapshot prepares a snapshot of an attached volume: it creates the overlay QEMU will
// switch to, without touching the metadata; Commit records it. Between the two the overlay file
// is unreferenced, so Recover (which runs at Open) must not run concurrently.
func (p *Pool) BeginLiveSnapshot(ctx context.Context, volume, snapshot string) (*storage.LiveSnapshot, error) {
	if err := storage.ValidateName("snapshot", snapshot); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m, err := p.load(volume)
	if err != nil {
		return nil, err
	}
	if _, s := m.snapshot(snapshot); s != nil {
		return nil, storage.Exists("snapshot", volume+"@"+snapshot)
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return nil, err
	}
	id, err := p.newLayer(ctx, m, key, m.Active, m.Size)
	if err != nil {
		return nil, err
	}
	old := m.Active
	ov := storage.Access{Pool: p.cfg.Name, Volume: volume, Size: m.Size, Cache: m.Cache, Key: key,
		Chain: []storage.Layer{{Path: p.layerPath(id), Format: storage.FormatQcow2, Encrypted: m.Encrypted}}}
	abort := func() { os.Remove(p.layerPath(id)) }
	commit := func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		// QEMU already writes to the overlay: never delete it here, whatever happens.
		m, err := p.load(volume)
		if err != nil {
			return err
		}
		if m.Active != old {
			return storage.Errorf(storage.ErrInUse, objName("volume", volume), "take the snapshot again",
				"changed while the live snapshot was being taken")
		}
		if _, s := m.snapshot(snapshot); s != nil {
			return storage.Exists("snapshot", volume+"@"+snapshot)
		}
		m.Layers[id] = layerMeta{Parent: old}
		m.Snapshots = append(m.Snapshots, snapMeta{Name: snapshot, Layer: old, Size: m.Size, CreatedAt: time.Now().UTC()})
		m.Active = id
		return p.save(m)
	}
	return &storage.LiveSnapshot{Overlay: ov, Commit: commit, Abort: abort}, nil
}

var _ storage.LiveSnapshotter = (*Pool)(nil)
