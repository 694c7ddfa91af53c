package storage

import (
	"fmt"
	"math"
	"strings"
)

// MaxNameLen keeps names well under NAME_MAX even after the drivers add suffixes.
const MaxNameLen = 63

// MaxVolumeSize is the largest volume accepted: 64 TiB, below qcow2's and btrfs's limits and far
// below int64 overflow, so size arithmetic in the drivers can never wrap.
const MaxVolumeSize uint64 = 64 << 40

// MinVolumeSize: qemu-img rounds to 512-byte sectors; anything smaller is a mistake.
const MinVolumeSize uint64 = 1 << 20

// ValidateName checks a pool, volume or snapshot name: 1-63 characters of [A-Za-z0-9_.-], not
// starting with '.' or '-' (hidden/temporary files and command-line flags), no '@' (snapshot
// separator), no path separators.
func ValidateName(kind, name string) error {
	obj := fmt.Sprintf("%s name %q", kind, name)
	fix := "use 1-63 characters from A-Z a-z 0-9 _ . - not starting with '.' or '-'"
	if name == "" {
		return Errorf(ErrInvalid, obj, fix, "is empty")
	}
	if len(name) > MaxNameLen {
		return Errorf(ErrInvalid, obj, fix, "is %d characters long, more than %d", len(name), MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return Errorf(ErrInvalid, obj, fix, "starts with %q", name[0])
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
		case r == '/' || r == '\\':
			return Errorf(ErrInvalid, obj, fix, "contains a path separator")
		default:
			return Errorf(ErrInvalid, obj, fix, "contains the character %q", r)
		}
	}
	return nil
}

// ValidateSize checks a volume size in bytes.
func ValidateSize(volume string, size uint64) error {
	obj := fmt.Sprintf("volume %q", volume)
	switch {
	case size == 0:
		return Errorf(ErrInvalid, obj, "give a size such as 10GiB", "size is zero")
	case size < MinVolumeSize:
		return Errorf(ErrInvalid, obj, "give at least 1 MiB", "size %d bytes is below the 1 MiB minimum", size)
	case size > MaxVolumeSize || size > math.MaxInt64:
		return Errorf(ErrInvalid, obj, "give at most 64 TiB", "size %d bytes is above the 64 TiB maximum", size)
	case size%512 != 0:
		return Errorf(ErrInvalid, obj, "round the size to a multiple of 512 bytes", "size %d bytes is not a multiple of 512", size)
	}
	return nil
}

// ParseSnapshotRef splits "vol@snap" into its parts; snap is empty for a plain volume name.
func ParseSnapshotRef(ref string) (vol, snap string, err error) {
	vol, snap, found := strings.Cut(ref, "@")
	if err := ValidateName("volume", vol); err != nil {
		return "", "", err
	}
	if found {
		if err := ValidateName("snapshot", snap); err != nil {
			return "", "", err
		}
	}
	return vol, snap, nil
}
