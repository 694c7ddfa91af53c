package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CheckDevice refuses a block device that is not free for a new pool: missing, not a block
// device, mounted (or a partition of it mounted), used as swap, held by another device
// (holders/), or carrying a filesystem/RAID signature (blkid -p) unless force. force never
// overrides the first group: those mean data in active use.
func CheckDevice(ctx context.Context, dev string, force bool) error {
	obj := fmt.Sprintf("device %q", dev)
	real, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return Errorf(ErrNotFound, obj, "check the device path", "does not exist")
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return Wrap(ErrNotFound, obj, err, "check the device path", "cannot be examined")
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return Errorf(ErrInvalid, obj, "give a block device such as /dev/sdb (or a loop device over a file)", "is not a block device")
	}
	if where := mountedAt(real, st.Rdev); where != "" {
		return Errorf(ErrInUse, obj, "unmount it first; force does not override this", "is mounted at %s", where)
	}
	if isSwap(real, st.Rdev) {
		return Errorf(ErrInUse, obj, "swapoff it first; force does not override this", "is in use as swap")
	}
	base := filepath.Base(real)
	if holders, _ := os.ReadDir(filepath.Join("/sys/class/block", base, "holders")); len(holders) > 0 {
		return Errorf(ErrInUse, obj, "release it from "+holders[0].Name()+" first", "is held by %s", holders[0].Name())
	}
	if sig := Signature(ctx, real); sig != "" && !force {
		return Errorf(ErrInUse, obj, "wipe it (wipefs -a) or pass force to overwrite it",
			"carries an existing %s signature", sig)
	}
	return nil
}

// Signature returns the TYPE (or PTTYPE) blkid finds on dev, "" if none.
func Signature(ctx context.Context, dev string) string {
	out, err := exec.CommandContext(ctx, "blkid", "-p", "-o", "export", dev).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 2 {
		return "" // nothing found
	}
	if err != nil {
		// blkid could not probe (ambiguous signatures exit 8, I/O errors): report it as a
		// signature so that CheckDevice refuses the device unless forced.
		return "unknown (blkid: " + err.Error() + ")"
	}
	var pt string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "TYPE="); ok {
			return v
		}
		if v, ok := strings.CutPrefix(l, "PTTYPE="); ok {
			pt = v + " partition table"
		}
	}
	return pt
}

// mountedAt returns the mount point of dev (or of a partition on it), from /proc/self/mountinfo
// whose major:minor field identifies devices whatever path was used to mount them.
func mountedAt(real string, rdev uint64) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	maj, min := unix.Major(rdev), unix.Minor(rdev)
	want := fmt.Sprintf("%d:%d", maj, min)
	parts := partitions(real)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		// fields: id parent maj:min root mountpoint opts ... - fstype source superopts
		src := ""
		for i, fl := range fields {
			if fl == "-" && i+2 < len(fields) {
				src = fields[i+2]
			}
		}
		if fields[2] == want || src == real || parts[fields[2]] {
			return fields[4]
		}
	}
	// Multi-device btrfs shows only one member in mountinfo; the others are found by their
	// btrfs signature (CheckDevice refuses it without force) and by btrfs device membership.
	return btrfsMemberMount(real)
}

// partitions returns the maj:min of the partitions of a whole disk.
func partitions(real string) map[string]bool {
	out := map[string]bool{}
	base := filepath.Base(real)
	ents, _ := os.ReadDir(filepath.Join("/sys/class/block", base))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) {
			if b, err := os.ReadFile(filepath.Join("/sys/class/block", base, e.Name(), "dev")); err == nil {
				out[strings.TrimSpace(string(b))] = true
			}
		}
	}
	return out
}

// btrfsMemberMount reports the mount point of a mounted btrfs that has dev as a member.
func btrfsMemberMount(real string) string {
	ents, _ := os.ReadDir("/sys/fs/btrfs")
	base := filepath.Base(real)
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join("/sys/fs/btrfs", e.Name(), "devices", base)); err == nil {
			return "a mounted btrfs filesystem (uuid " + e.Name() + ")"
		}
	}
	return ""
}

func isSwap(real string, rdev uint64) bool {
	b, err := os.ReadFile("/proc/swaps")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == real {
			return true
		}
		var st unix.Stat_t
		if unix.Stat(f[0], &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == rdev {
			return true
		}
	}
	return false
}
