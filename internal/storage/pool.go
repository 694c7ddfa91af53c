package storage

import (
	"context"
	"io"
)

// Driver creates and opens pools of one kind. Drivers register themselves by name (Register)
// and the daemon looks them up by the name kept in PoolConfig.Driver (Load).
//
// Room for further drivers, same interface:
//   - "lvm": a thin pool (lvcreate --thin) per pool; volumes are thin LVs (raw block devices,
//     Access.Chain[0].Path = /dev/vg/lv, driver "host_device"); snapshots and clones are thin
//     snapshots (O(1)); Info from lvs data_percent/metadata_percent. Needs device-mapper, absent
//     on the development host, hence not implemented.
//   - "ceph": an RBD pool; volumes are RBD images (Access returns a "rbd" blockdev node with
//     pool/image/conf/user and a key-secret for cephx); snapshots are RBD snapshots, clones are
//     protected-snapshot clones (O(1)); Export/Import via rbd export/import or qemu-img.
type Driver interface {
	// Create makes a new pool (directory layout, filesystem over devices) and returns it open.
	Create(ctx context.Context, cfg PoolConfig) (Pool, error)
	// Open opens an existing pool (mounting it if needed) and runs Recover.
	Open(ctx context.Context, cfg PoolConfig) (Pool, error)
}

// Pool is an open pool. Every method validates its input and returns an *Error wrapping one of
// ErrNotFound, ErrExists, ErrInUse, ErrInvalid, ErrUnsupported. Multi-step methods leave nothing
// behind on failure.
type Pool interface {
	Name() string
	Driver() string
	Config() PoolConfig
	Info(ctx context.Context) (PoolInfo, error)
	// Delete destroys the pool; refused with ErrInUse while it has volumes.
	Delete(ctx context.Context) error
	// Close releases the pool (btrfs: unmounts). The pool can be opened again.
	Close() error
	// Recover removes leftovers of interrupted operations (temporary files, subvolumes, layers
	// no volume references). Open calls it; it is safe to call at any time no operation runs.
	Recover(ctx context.Context) (RecoverReport, error)

	CreateVolume(ctx context.Context, name string, size uint64, opts VolumeOpts) (Volume, error)
	ListVolumes(ctx context.Context) ([]Volume, error)
	GetVolume(ctx context.Context, name string) (Volume, error)
	// DeleteVolume deletes a volume and its snapshots; refused with ErrInUse when clones depend
	// on it (dir: backing chain) or when PoolConfig.InUse names a holder.
	DeleteVolume(ctx context.Context, name string) error
	// ResizeVolume grows a volume, or shrinks it when no data lies beyond the new size.
	ResizeVolume(ctx context.Context, name string, size uint64) error

	CreateSnapshot(ctx context.Context, volume, snapshot string) (Snapshot, error)
	ListSnapshots(ctx context.Context, volume string) ([]Snapshot, error)
	// RestoreSnapshot makes the volume's data exactly what it was at snapshot time. Later
	// snapshots are kept.
	RestoreSnapshot(ctx context.Context, volume, snapshot string) error
	DeleteSnapshot(ctx context.Context, volume, snapshot string) error

	// CloneVolume makes dst, a writable copy of src ("vol" or "vol@snap"), in O(1).
	CloneVolume(ctx context.Context, src, dst string) (Volume, error)

	// ExportVolume writes the volume's plaintext data in format to w.
	ExportVolume(ctx context.Context, name string, format Format, w io.Writer, progress ProgressFunc) error
	// ExportVolumeFile writes the export to path (built under a temporary name, then renamed).
	ExportVolumeFile(ctx context.Context, name string, format Format, path string, progress ProgressFunc) error
	// ImportVolume validates the image at path (diskimage.Probe) and converts it into a new
	// volume. OVA archives go through diskimage.ImportOVA.
	ImportVolume(ctx context.Context, path, name string, opts ImportOpts) (Volume, error)

	// Access returns what QEMU needs to open the volume (see Access.BlockdevNode).
	Access(ctx context.Context, name string) (Access, error)
}

// Extender is implemented by multi-device pools that can grow by a device (btrfs).
type Extender interface {
	Extend(ctx context.Context, device string, opts ExtendOpts) error
}

// Replacer is implemented by multi-device pools that can swap a failed or missing member for a
// new device (btrfs replace). old is the member's path or its numeric device id (as
// PoolInfo.Devices reports it; a missing device has only its id).
type Replacer interface {
	Replace(ctx context.Context, old, device string, opts ExtendOpts) error
}

// LiveSnapshotter is implemented by pools whose snapshots of an attached volume need QEMU's
// help (dir: the running QEMU must switch to a new overlay). btrfs snapshots are atomic at the
// filesystem level, so CreateSnapshot is already safe on an attached volume there.
//
// The daemon: ls := BeginLiveSnapshot(vol, snap); QMP blockdev-add ls.Overlay.BlockdevNode(node)
// (it has "backing": null, as blockdev-snapshot requires); QMP blockdev-snapshot
// {node: <volume's top node>, overlay: node}; then ls.Commit(), or ls.Abort() if QMP failed.
type LiveSnapshotter interface {
	BeginLiveSnapshot(ctx context.Context, volume, snapshot string) (*LiveSnapshot, error)
}

// LiveSnapshot is a snapshot in progress on an attached volume.
type LiveSnapshot struct {
	// Overlay describes the new, empty active layer only (one-element chain).
	Overlay Access
	// Commit records the snapshot once QEMU writes to the overlay. It fails if the volume
	// changed since BeginLiveSnapshot (the daemon must serialise operations per volume); it
	// never deletes the overlay, which QEMU is using by then.
	Commit func() error
	// Abort deletes the overlay when QEMU did not take it.
	Abort func()
}

// KeyRotator is implemented by pools that can re-wrap every volume key (volumes, snapshots,
// clones) under a new master key without touching the encrypted data: the point of the
// two-level key hierarchy. It is idempotent: after a crash, run it again with the same files.
// On success the pool uses the new master key (Config().MasterKeyFile); the daemon persists it
// and may then retire the old key file.
type KeyRotator interface {
	RotateMasterKey(ctx context.Context, newMasterKeyFile string) (rewrapped int, err error)
}
