package pools

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/store"
)

// The Go API other subsystems (instances) use to attach volumes. A volume record's
// AttachedTo names the instance that holds it; while the holder runs the volume cannot be
// snapshotted, restored or resized, and it can never be deleted while attached.

var (
	regMu    sync.Mutex
	registry = map[*daemon.Daemon]*subsystem{}
)

func lookup(d *daemon.Daemon) (*subsystem, error) {
	regMu.Lock()
	defer regMu.Unlock()
	s, ok := registry[d]
	if !ok {
		return nil, errors.New("pools: the storage subsystem is not part of this daemon (import internal/daemon/pools)")
	}
	return s, nil
}

// Serial is the guest-visible virtio-blk serial of a volume (<= 20 bytes): the volume name,
// or for long names its first 11 characters, '-' and 8 hex digits of a hash of the name.
func Serial(volume string) string { return shorten(volume, 20) }

// DiskID is the hypervisor device id of a volume's disk ("v-" + a <= 18 character form of
// the name), distinct from the root disk "root".
func DiskID(volume string) string { return "v-" + shorten(volume, 18) }

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	h := sha256.Sum256([]byte(s))
	return s[:n-9] + "-" + hex.EncodeToString(h[:4])
}

// Attach records that instance holds the volume (refused with 409 naming the holder when
// another instance holds it) and returns the disk the hypervisor opens. Attaching again to
// the same instance only returns the disk.
func Attach(ctx context.Context, d *daemon.Daemon, project, volume, instance string) (compute.DiskSpec, error) {
	s, err := lookup(d)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	rec, _, err := s.volumeRecord(ctx, project, volume)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	if rec.AttachedTo != "" && rec.AttachedTo != instance {
		return compute.DiskSpec{}, daemon.Conflict("volume %s in project %s is attached to instance %s: detach it there first ('finvirt storage volume detach %s %s --project %s')", volume, project, rec.AttachedTo, volume, rec.AttachedTo, project)
	}
	spec, err := s.diskSpec(ctx, rec)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	err = d.Store().Update(ctx, func(tx store.Tx) error {
		e, err := tx.Get(volumeKey(project, volume))
		if errors.Is(err, store.ErrNotFound) {
			return daemon.NotFound("volume %s not found in project %s", volume, project)
		}
		if err != nil {
			return err
		}
		var cur volumeRecord
		if err := json.Unmarshal(e.Value, &cur); err != nil {
			return err
		}
		if cur.AttachedTo != "" && cur.AttachedTo != instance {
			return daemon.Conflict("volume %s in project %s is attached to instance %s: detach it there first", volume, project, cur.AttachedTo)
		}
		cur.AttachedTo = instance
		b, _ := json.Marshal(cur)
		return tx.CompareAndSwap(e.Key, b, e.ModRev)
	})
	if err != nil {
		return compute.DiskSpec{}, err
	}
	return spec, nil
}

// DiskSpec is the current disk of a volume attached to instance (its active layer moves on
// snapshot and restore, so the instances subsystem asks again before every boot).
func DiskSpec(ctx context.Context, d *daemon.Daemon, project, volume, instance string) (compute.DiskSpec, error) {
	s, err := lookup(d)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	rec, _, err := s.volumeRecord(ctx, project, volume)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	if rec.AttachedTo != instance {
		return compute.DiskSpec{}, daemon.Conflict("volume %s in project %s is not attached to instance %s (attached to %q)", volume, project, instance, rec.AttachedTo)
	}
	return s.diskSpec(ctx, rec)
}

// Detach clears the attachment of volume to instance. A volume that is gone or not attached
// to instance is not an error (instance deletion calls it unconditionally); one attached to
// another instance is left alone.
func Detach(ctx context.Context, d *daemon.Daemon, project, volume, instance string) error {
	s, err := lookup(d)
	if err != nil {
		return err
	}
	return s.d.Store().Update(ctx, func(tx store.Tx) error {
		e, err := tx.Get(volumeKey(project, volume))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var cur volumeRecord
		if err := json.Unmarshal(e.Value, &cur); err != nil {
			return err
		}
		if cur.AttachedTo != instance {
			return nil
		}
		cur.AttachedTo = ""
		b, _ := json.Marshal(cur)
		return tx.CompareAndSwap(e.Key, b, e.ModRev)
	})
}

// diskSpec builds the hypervisor's disk from the pool's Access: the active layer and its
// backing chain spelled out layer by layer, the cache policy and, for encrypted volumes, the
// LUKS passphrase as the secret QEMU receives (every encrypted layer names it).
func (s *subsystem) diskSpec(ctx context.Context, rec volumeRecord) (compute.DiskSpec, error) {
	p, err := s.pool(rec.Pool)
	if err != nil {
		return compute.DiskSpec{}, err
	}
	pv := poolVolumeName(rec.Project, rec.Name)
	a, err := p.Access(ctx, pv)
	if err != nil {
		return compute.DiskSpec{}, storageErr(err, pv, rec.Name)
	}
	return accessDisk(rec, a)
}

func accessDisk(rec volumeRecord, a storage.Access) (compute.DiskSpec, error) {
	if len(a.Chain) == 0 {
		return compute.DiskSpec{}, daemon.Conflict("volume %s: the pool returned no image to open", rec.Name)
	}
	top := a.Chain[0]
	ds := compute.DiskSpec{ID: DiskID(rec.Name), Path: top.Path, Format: compute.FormatQcow2, Serial: Serial(rec.Name), ReadOnly: a.ReadOnly}
	if top.Format == storage.FormatRaw {
		ds.Format = compute.FormatRaw
	}
	// The whole chain goes to QEMU: an encrypted snapshot or clone has layers below the active
	// one that need the key too, and a qcow2 header's backing path is not trusted.
	for _, l := range a.Chain[1:] {
		f := compute.FormatQcow2
		if l.Format == storage.FormatRaw {
			f = compute.FormatRaw
		}
		ds.Backing = append(ds.Backing, compute.DiskLayer{Path: l.Path, Format: f, Encrypted: l.Encrypted})
	}
	switch a.Cache {
	case storage.CacheWritethrough:
		ds.Cache = compute.CacheWritethrough
	case storage.CacheWriteback:
		ds.Cache = compute.CacheWriteback
	default:
		ds.Cache = compute.CacheNone
	}
	if a.Key != nil {
		ds.Secret = &compute.Secret{ID: ds.ID, Key: []byte(storage.Passphrase(a.Key))}
	}
	return ds, nil
}

// InstanceHooks is what the instances subsystem lends the storage subsystem, so that storage
// never reads instance records or speaks to the hypervisor itself.
type InstanceHooks struct {
	// Running reports whether the holder may have the volume open: any state but stopped or
	// error. A missing instance is not running (a stale attachment).
	Running func(ctx context.Context, project, instance string) bool
	// SnapshotDisk switches the running holder's disk diskID to overlay, a new empty layer
	// whose backing is the disk's current top (the hypervisor's live external snapshot).
	SnapshotDisk func(ctx context.Context, project, instance, diskID string, overlay compute.DiskSpec) error
}

// SetInstanceHooks registers the instances subsystem's hooks with d's storage subsystem.
func SetInstanceHooks(d *daemon.Daemon, h InstanceHooks) error {
	s, err := lookup(d)
	if err != nil {
		return err
	}
	s.hooksMu.Lock()
	s.hooks = h
	s.hooksMu.Unlock()
	return nil
}

func (s *subsystem) instanceHooks() InstanceHooks {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	return s.hooks
}

// holderRunning says whether the instance holding a volume may have it open. Without the
// instances subsystem nobody can be running it... except that storage cannot know: assume it
// runs, which refuses what would be unsafe on an open volume.
func (s *subsystem) holderRunning(project, instance string) bool {
	h := s.instanceHooks()
	if h.Running == nil {
		return true
	}
	return h.Running(context.Background(), project, instance)
}

// liveSnapshot snapshots a volume that its running holder has open, on pools whose snapshots
// need the hypervisor (dir): the pool makes the overlay, the holder's QEMU switches to it
// (blockdev-add + blockdev-snapshot, which drains in-flight I/O: the snapshot is
// crash-consistent, like pulling the power at that instant), then the pool records it. If the
// hypervisor refuses, the overlay is deleted and nothing changed.
func (s *subsystem) liveSnapshot(ctx context.Context, p storage.Pool, ls storage.LiveSnapshotter, rec volumeRecord, snapshot string) (storage.Snapshot, error) {
	h := s.instanceHooks()
	if h.SnapshotDisk == nil {
		return storage.Snapshot{}, daemon.Conflict("volume %s is attached to running instance %s and this daemon cannot reach its hypervisor: stop the instance first", rec.Name, rec.AttachedTo)
	}
	pv := poolVolumeName(rec.Project, rec.Name)
	begun, err := ls.BeginLiveSnapshot(ctx, pv, snapshot)
	if err != nil {
		return storage.Snapshot{}, storageErr(err, pv, rec.Name)
	}
	ov, err := accessDisk(rec, begun.Overlay)
	if err != nil {
		begun.Abort()
		return storage.Snapshot{}, err
	}
	ov.ID = "ov" // the hypervisor names the overlay's nodes itself
	if err := h.SnapshotDisk(ctx, rec.Project, rec.AttachedTo, DiskID(rec.Name), ov); err != nil {
		begun.Abort()
		return storage.Snapshot{}, fmt.Errorf("live snapshot of volume %s on instance %s: %w", rec.Name, rec.AttachedTo, err)
	}
	if err := begun.Commit(); err != nil {
		// QEMU writes to the overlay already; the pool keeps it (Commit never deletes it).
		return storage.Snapshot{}, storageErr(err, pv, rec.Name)
	}
	snaps, err := p.ListSnapshots(ctx, pv)
	if err == nil {
		for _, sn := range snaps {
			if sn.Name == snapshot {
				return sn, nil
			}
		}
	}
	return storage.Snapshot{Name: snapshot, Size: begun.Overlay.Size}, nil
}
