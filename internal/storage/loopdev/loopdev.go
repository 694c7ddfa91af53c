// Package loopdev attaches loop devices over sparse files, for tests and benchmarks of device
// pools on machines without spare disks.
package loopdev

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/storage/fsutil"
)

// Attach attaches the first free loop device to file and returns its path.
func Attach(ctx context.Context, file string) (string, error) {
	out, err := exec.CommandContext(ctx, "losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("losetup -f --show %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Detach detaches dev, retrying while the kernel still holds it (a just-unmounted btrfs
// releases its devices asynchronously).
func Detach(dev string) error {
	var err error
	for i := 0; i < 150; i++ { // up to 30 s
		var out []byte
		out, err = exec.Command("losetup", "-d", dev).CombinedOutput()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("losetup -d %s: %v: %s", dev, err, strings.TrimSpace(string(out)))
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Available tells whether loop devices can be used here (root, losetup, /dev/loop-control).
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("not root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return err
	}
	return nil
}

// New creates a sparse file of size bytes with a unique name in a test temp dir, attaches a
// loop device to it and detaches it in t.Cleanup (even on failure). It skips the test when
// loop devices are not available.
func New(t testing.TB, size int64) string {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("loop devices unavailable: %v", err)
	}
	file := filepath.Join(t.TempDir(), "loop-"+fsutil.RandomID(6)+".img")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		t.Fatal(err)
	}
	f.Close()
	dev, err := Attach(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Detach(dev); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dev
}
