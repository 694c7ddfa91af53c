package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RootFromCmdline returns the value of finvirt.root= on the kernel command line ("" when
// absent). A full image boots the appliance initramfs with finvirt.root=/dev/vda: the agent
// loads the virtio modules, then hands over to the root disk's own init.
func RootFromCmdline() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "finvirt.root="); ok {
			return v
		}
	}
	return ""
}

// SwitchRoot mounts dev (ext4) at /newroot, moves /dev, /proc, /sys and /run into it, copies
// the instance config, makes it / and executes its /sbin/init as PID 1. It returns only on
// failure; before the first move it undoes its mount, after that the caller can only report.
func SwitchRoot(dev string, configPath string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		if _, err := os.Stat(dev); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("root device %s did not appear within %v", dev, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	const newRoot = "/newroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount root %s: %w", dev, err)
	}
	// Lstat: /sbin/init is usually an absolute symlink (to /lib/systemd/systemd), which only
	// resolves once we are inside the new root.
	init := filepath.Join(newRoot, "sbin/init")
	if _, err := os.Lstat(init); err != nil {
		unix.Unmount(newRoot, 0)
		return fmt.Errorf("root %s has no /sbin/init", dev)
	}
	if b, err := os.ReadFile(configPath); err == nil {
		dst := filepath.Join(newRoot, configPath)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.WriteFile(dst, b, 0o600)
	}
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		target := filepath.Join(newRoot, m)
		os.MkdirAll(target, 0o755)
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the new root: %w", m, err)
		}
	}
	// /dev/pts and /dev/shm moved with /dev; /tmp stays behind in the initramfs.
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Exec("/sbin/init", []string{"/sbin/init"}, os.Environ())
}
