package api

import "time"

// StoragePoolsPost creates a storage pool (POST /1.0/storage-pools).
type StoragePoolsPost struct {
	Name   string `json:"name"`
	Driver string `json:"driver"` // dir | btrfs
	// Source is the block devices of a multi-device pool (btrfs), e.g. ["/dev/sdb","/dev/sdc"].
	Source []string `json:"source,omitempty"`
	// Path is the pool directory (dir) or mount point (btrfs); default <state-dir>/storage/<name>.
	Path string `json:"path,omitempty"`
	// Profile is the redundancy of a multi-device pool: single, raid1 or raid10.
	Profile string `json:"profile,omitempty"`
	// Force accepts devices that carry an old filesystem signature (never mounted ones).
	Force bool `json:"force,omitempty"`
}

// StoragePoolExtend adds a device to a multi-device pool.
type StoragePoolExtend struct {
	Device  string `json:"device"`
	Force   bool   `json:"force,omitempty"`
	Balance bool   `json:"balance,omitempty"`
}

// StorageDevice is one member device of a multi-device pool.
type StorageDevice struct {
	ID      int    `json:"id"`
	Path    string `json:"path"`
	Size    uint64 `json:"size"`
	Used    uint64 `json:"used"`
	Missing bool   `json:"missing"`
	Errors  uint64 `json:"errors"`
	Health  string `json:"health"` // ok, missing, errors
}

// StoragePool is a pool with its capacity picture.
type StoragePool struct {
	Name        string          `json:"name" yaml:"name"`
	Driver      string          `json:"driver" yaml:"driver"`
	Path        string          `json:"path" yaml:"path"`
	Source      []string        `json:"source,omitempty" yaml:"source,omitempty"`
	Profile     string          `json:"profile,omitempty" yaml:"profile,omitempty"`
	Capacity    uint64          `json:"capacity" yaml:"capacity"`
	Allocated   uint64          `json:"allocated" yaml:"allocated"`
	Provisioned uint64          `json:"provisioned" yaml:"provisioned"`
	Overcommit  float64         `json:"overcommit" yaml:"overcommit"`
	Volumes     int             `json:"volumes" yaml:"volumes"`
	Degraded    bool            `json:"degraded" yaml:"degraded"`
	Devices     []StorageDevice `json:"devices,omitempty" yaml:"devices,omitempty"`
	Status      string          `json:"status" yaml:"status"` // online, degraded, unavailable
	StatusError string          `json:"status_error,omitempty" yaml:"status_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at" yaml:"created_at"`
}

// VolumesPost creates a volume (POST /1.0/volumes?project=P).
type VolumesPost struct {
	Name      string `json:"name"`
	Pool      string `json:"pool"`
	Size      int64  `json:"size"` // bytes
	Encrypted bool   `json:"encrypted,omitempty"`
	Cache     string `json:"cache,omitempty"` // none (default), writethrough, writeback
}

// VolumeResize changes a volume's size.
type VolumeResize struct {
	Size int64 `json:"size"`
}

// VolumeSnapshotsPost takes a snapshot.
type VolumeSnapshotsPost struct {
	Name string `json:"name"`
}

// VolumeRestore restores a snapshot into its volume.
type VolumeRestore struct {
	Snapshot string `json:"snapshot"`
}

// VolumeClone clones a volume (or one of its snapshots: source "vol@snap") into a new one.
type VolumeClone struct {
	Name     string `json:"name"`
	Snapshot string `json:"snapshot,omitempty"`
}

// VolumeSnapshot is a point-in-time, read-only state of a volume.
type VolumeSnapshot struct {
	Name      string    `json:"name" yaml:"name"`
	Size      uint64    `json:"size" yaml:"size"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
}

// Volume is a thin volume of a project.
type Volume struct {
	Name       string    `json:"name" yaml:"name"`
	Project    string    `json:"project" yaml:"project"`
	Pool       string    `json:"pool" yaml:"pool"`
	Format     string    `json:"format" yaml:"format"`
	Size       uint64    `json:"size" yaml:"size"`           // provisioned bytes
	Allocated  uint64    `json:"allocated" yaml:"allocated"` // bytes actually used on the host
	Encrypted  bool      `json:"encrypted" yaml:"encrypted"`
	Cache      string    `json:"cache" yaml:"cache"`
	Origin     string    `json:"origin,omitempty" yaml:"origin,omitempty"` // clone source
	Snapshots  int       `json:"snapshots" yaml:"snapshots"`
	AttachedTo string    `json:"attached_to,omitempty" yaml:"attached_to,omitempty"`
	CreatedAt  time.Time `json:"created_at" yaml:"created_at"`
	Revision   int64     `json:"revision" yaml:"revision"`
}
