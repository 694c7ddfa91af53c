package guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"golang.org/x/sys/unix"
)

// MountVolumes mounts each configured volume, found by its virtio-blk serial in
// /sys/block/*/serial, waiting up to wait for the disks to appear.
func MountVolumes(vols []agent.Volume, wait time.Duration) error {
	var errs []error
	for _, v := range vols {
		dev, err := blockBySerial(v.Serial, wait)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fstype := v.FSType
		if fstype == "" {
			fstype = "ext4"
		}
		if err := os.MkdirAll(v.MountPoint, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		var flags uintptr = unix.MS_NOATIME
		if v.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(dev, v.MountPoint, fstype, flags, ""); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: mount %s (%s) on %s: %w", v.Serial, dev, fstype, v.MountPoint, err))
		}
	}
	return errors.Join(errs...)
}

func blockBySerial(serial string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		ents, _ := filepath.Glob("/sys/block/*/serial")
		for _, e := range ents {
			b, err := os.ReadFile(e)
			if err == nil && strings.TrimSpace(string(b)) == serial {
				dev := "/dev/" + filepath.Base(filepath.Dir(e))
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("volume %s: no virtio disk with this serial appeared within %v (wire it as -device virtio-blk-*,serial=%s)", serial, wait, serial)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Linux input_event on 64-bit: struct timeval (16 bytes), type u16, code u16, value s32.
const (
	inputEventSize = 24
	evKey          = 1
	keyPower       = 116
)

// WatchPowerButton calls fn when any /dev/input/event* device reports KEY_POWER pressed
// (the ACPI power button, pressed by QEMU's system_powerdown). It returns the number of
// devices watched.
func WatchPowerButton(fn func()) int {
	devs, _ := filepath.Glob("/dev/input/event*")
	var once sync.Once
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		go func() {
			defer f.Close()
			buf := make([]byte, inputEventSize)
			for {
				if _, err := io.ReadFull(f, buf); err != nil {
					return
				}
				typ := binary.LittleEndian.Uint16(buf[16:])
				code := binary.LittleEndian.Uint16(buf[18:])
				val := int32(binary.LittleEndian.Uint32(buf[20:]))
				if typ == evKey && code == keyPower && val == 1 {
					once.Do(fn)
				}
			}
		}()
	}
	return len(devs)
}

// PowerOff stops the workloads (SIGTERM, SIGKILL after grace), terminates every other
// process, syncs, unmounts what it can and powers the machine off. It does not return when
// running as PID 1.
func PowerOff(sup *Supervisor, grace time.Duration, logf func(string, ...any)) {
	logf("finvirt-agent: powering off (grace %v)", grace)
	if sup != nil {
		sup.Stop(grace)
	}
	// Execs and orphans: TERM, a moment, then KILL. As PID 1 kill(-1) spares us.
	unix.Kill(-1, unix.SIGTERM)
	time.Sleep(100 * time.Millisecond)
	unix.Kill(-1, unix.SIGKILL)
	unix.Sync()
	unmountAll()
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("finvirt-agent: reboot(POWER_OFF): %v", err)
	}
}

// unmountAll unmounts block-device filesystems from /proc/mounts, deepest first, so their
// journals are clean.
func unmountAll() {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) >= 2 && strings.HasPrefix(f[0], "/dev/") {
			if unix.Unmount(f[1], 0) != nil {
				unix.Mount("", f[1], "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
			}
		}
	}
}
