package storage

import (
	"fmt"
	"time"
)

// Format is an on-disk image format of a volume or an export.
type Format string

const (
	FormatQcow2 Format = "qcow2"
	FormatRaw   Format = "raw"
)

// ParseFormat accepts the export/volume formats a pool can produce.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatQcow2, FormatRaw:
		return Format(s), nil
	}
	return "", Errorf(ErrInvalid, fmt.Sprintf("format %q", s), "use qcow2 or raw", "is not a supported volume format")
}

// PoolConfig is everything a driver needs to create or open a pool. The daemon keeps it in its
// state database and passes it back on every Open; drivers also keep a copy in the pool.
type PoolConfig struct {
	Name   string // pool name (ValidateName)
	Driver string // registry name: "dir", "btrfs" (later "lvm", "ceph")
	// Path is the pool directory (dir) or the mount point (btrfs).
	Path string
	// Devices are the block devices of a multi-device pool (btrfs: every member).
	Devices []string
	// Profile is the redundancy: "single", "raid1", "raid10" (btrfs data and metadata alike).
	Profile string
	// Force lets Create take devices that carry an existing filesystem signature. It never
	// overrides a device that is mounted, swapped on or held by another device.
	Force bool
	// MasterKeyFile is the host master key that wraps per-volume encryption keys. It is created
	// (0600) on first use. Empty means DefaultMasterKeyFile.
	MasterKeyFile string
	// LUKSIterTimeMs is the PBKDF time qemu-img spends per LUKS key slot. The per-volume key is
	// 256 random bits, so stretching adds no strength; a low value keeps opens fast. 0 = 10 ms.
	LUKSIterTimeMs int
	// InUse, when set, is asked before destructive operations (delete, restore, shrink,
	// snapshot deletion); returning a non-empty holder (e.g. "instance web1") refuses them with
	// ErrInUse. The daemon wires it to its attachment table.
	InUse func(volume string) (holder string)
}

// DefaultMasterKeyFile is where the master key lives when PoolConfig.MasterKeyFile is empty:
// outside the state database on purpose, so a copy of the database does not carry the key.
const DefaultMasterKeyFile = "/var/lib/finvirt/keys/master.key"

// PoolInfo is the capacity picture of a pool.
type PoolInfo struct {
	Name        string
	Driver      string
	Path        string
	Profile     string
	Capacity    uint64  // bytes the pool can hold
	Allocated   uint64  // bytes actually used on disk
	Provisioned uint64  // sum of volume sizes (thin: may exceed Capacity)
	Overcommit  float64 // Provisioned / Capacity
	Volumes     int
	Degraded    bool
	Devices     []DeviceInfo // multi-device pools only
}

// DeviceInfo describes one member device of a multi-device pool.
type DeviceInfo struct {
	ID      int
	Path    string
	Size    uint64
	Used    uint64
	Missing bool
	Errors  uint64 // sum of I/O, corruption and generation error counters
	Health  string // "ok", "missing", "errors"
}

// CachePolicy is how QEMU caches a volume's I/O on the host.
type CachePolicy string

const (
	// CacheNone: O_DIRECT, guest flushes reach the disk. Default: no host page cache double
	// buffering, and a guest fsync means data is on stable storage.
	CacheNone CachePolicy = "none"
	// CacheWritethrough: host page cache for reads, every write is flushed before completion.
	CacheWritethrough CachePolicy = "writethrough"
	// CacheWriteback: host page cache, writes complete in cache; guest flushes are honoured.
	CacheWriteback CachePolicy = "writeback"
)

// ParseCachePolicy validates a cache policy; "" means CacheNone.
func ParseCachePolicy(s string) (CachePolicy, error) {
	switch CachePolicy(s) {
	case "":
		return CacheNone, nil
	case CacheNone, CacheWritethrough, CacheWriteback:
		return CachePolicy(s), nil
	}
	return "", Errorf(ErrInvalid, fmt.Sprintf("cache policy %q", s), "use none, writethrough or writeback", "is unknown")
}

// VolumeOpts are the creation options of a volume.
type VolumeOpts struct {
	Encrypted bool
	Cache     CachePolicy // "" = none
	// Format is the on-disk format; "" lets the driver choose (dir: qcow2, btrfs: raw, or qcow2
	// when encrypted since LUKS lives in qcow2 here).
	Format Format
}

// Volume is a volume as listed.
type Volume struct {
	Name        string
	Format      Format
	Size        uint64 // provisioned (virtual) size
	Allocated   uint64 // bytes actually allocated on the host for this volume's own data
	Encrypted   bool
	Cache       CachePolicy
	Origin      string // "src" or "src@snap" for clones, "" otherwise
	Snapshots   int
	CreatedAt   time.Time
	Description string
}

// Snapshot is a point-in-time, read-only state of a volume.
type Snapshot struct {
	Volume    string
	Name      string
	Size      uint64 // volume size at snapshot time
	CreatedAt time.Time
}

// ProgressFunc receives a completion percentage (0-100) of a long operation.
type ProgressFunc func(percent float64)

// ImportOpts are the options of an import.
type ImportOpts struct {
	VolumeOpts
	Progress ProgressFunc
	// Format, when set, is the format the caller claims the file has; the import is refused
	// when the content says otherwise.
	SourceFormat string
}

// ExtendOpts are the options of adding a device to a pool.
type ExtendOpts struct {
	Force   bool // accept a device with an old filesystem signature
	Balance bool // rebalance existing data over the new device (slow; can run later)
}

// RecoverReport lists what Recover removed.
type RecoverReport struct {
	Removed []string
}
