package btrfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
)

// run runs a tool and returns its stdout; the error carries the tool's stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func subvolCreate(ctx context.Context, path string) error {
	_, err := run(ctx, "btrfs", "-q", "subvolume", "create", path)
	return err
}

// subvolSnapshot makes a snapshot of src at dst; readOnly for snapshots, writable for clones.
func subvolSnapshot(ctx context.Context, src, dst string, readOnly bool) error {
	args := []string{"-q", "subvolume", "snapshot"}
	if readOnly {
		args = append(args, "-r")
	}
	_, err := run(ctx, "btrfs", append(args, src, dst)...)
	return err
}

func subvolDelete(ctx context.Context, path string) error {
	_, err := run(ctx, "btrfs", "-q", "subvolume", "delete", path)
	return err
}

func setReadOnly(ctx context.Context, path string, ro bool) error {
	_, err := run(ctx, "btrfs", "property", "set", "-ts", path, "ro", strconv.FormatBool(ro))
	return err
}

// isMountpoint tells whether path is a mounted btrfs (from mountinfo).
func isMountpoint(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[4] != path {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) && f[i+1] == "btrfs" {
				return true
			}
		}
	}
	return false
}

func umount(ctx context.Context, path string) error {
	var err error
	for i := 0; i < 120; i++ { // up to 30 s: a loaded host may hold the fs busy briefly
		if _, err = run(ctx, "umount", path); err == nil || !isMountpoint(path) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// parseShow reads `btrfs filesystem show --raw` device lines:
//
//	devid    1 size 1073741824 used 223084544 path /dev/loop0
//	devid    2 size 0 used 0 path <missing disk> MISSING
func parseShow(out string) []storage.DeviceInfo {
	var devs []storage.DeviceInfo
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[0] != "devid" {
			continue
		}
		var d storage.DeviceInfo
		d.ID, _ = strconv.Atoi(f[1])
		for i := 2; i+1 < len(f); i++ {
			switch f[i] {
			case "size":
				d.Size, _ = strconv.ParseUint(f[i+1], 10, 64)
			case "used":
				d.Used, _ = strconv.ParseUint(f[i+1], 10, 64)
			case "path":
				d.Path = strings.Join(f[i+1:], " ")
			}
		}
		if strings.HasSuffix(d.Path, "MISSING") || strings.Contains(d.Path, "<missing") {
			d.Missing = true
			d.Path = strings.TrimSpace(strings.TrimSuffix(d.Path, "MISSING"))
		}
		devs = append(devs, d)
	}
	return devs
}

// parseStats sums `btrfs device stats` counters per device path:
//
//	[/dev/loop0].write_io_errs    0
func parseStats(out string) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(l, "[") {
			continue
		}
		end := strings.Index(l, "]")
		if end < 0 {
			continue
		}
		f := strings.Fields(l[end+1:])
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		m[l[1:end]] += n
	}
	return m
}

// wipe erases filesystem signatures from dev. Right after an unmount the kernel can still hold
// the device for a moment (wipefs opens it O_EXCL and gets EBUSY), so it retries for a while.
func wipe(ctx context.Context, dev string) error {
	var err error
	for i := 0; i < 100; i++ {
		if _, err = run(ctx, "wipefs", "-a", "-q", dev); err == nil || !strings.Contains(err.Error(), "busy") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}
