package instances

import (
	"context"
	"errors"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/daemon/pools"
	"github.com/finvirt/finvirt/internal/store"
)

// The storage subsystem asks this one whether a volume's holder runs and, for pools whose
// snapshots need the hypervisor (dir), to switch a running holder's disk to a new overlay.
// Storage never reads instance records or speaks QMP itself.

func (s *Subsystem) storageHooks() pools.InstanceHooks {
	return pools.InstanceHooks{Running: s.holderRunning, SnapshotDisk: s.snapshotDisk}
}

// holderRunning: any state but stopped or error may have the volume open; a missing record
// is a stale attachment (not running).
func (s *Subsystem) holderRunning(ctx context.Context, project, name string) bool {
	e, err := s.d.Store().Get(ctx, recordKey(project, name))
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		return true // unknown: assume open, which refuses what would be unsafe
	}
	in, err := decode(e)
	if err != nil {
		return true
	}
	return in.Status != api.InstanceStopped && in.Status != api.InstanceError
}

func (s *Subsystem) snapshotDisk(ctx context.Context, project, name, diskID string, overlay compute.DiskSpec) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	in, err := s.getRecord(ctx, project, name)
	if err != nil {
		return err
	}
	// No lifecycle operation (stop, restart, delete) may run while the disk switches layers.
	key := recordKey(project, name)
	if !s.acquire(key, "live snapshot") {
		return busyErr(in, s.busyWith(key))
	}
	defer s.release(key)
	ls, ok := s.drv.(compute.DiskSnapshotter)
	if !ok {
		return daemon.Conflict("instance %s: the %s driver cannot snapshot a running disk: stop the instance first", name, s.drv.Name())
	}
	if err := ls.SnapshotDisk(ctx, in.ID, diskID, overlay); err != nil {
		if errors.Is(err, compute.ErrState) {
			return daemon.Conflict("%v", err)
		}
		return err
	}
	return nil
}
