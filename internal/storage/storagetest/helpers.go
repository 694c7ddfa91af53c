// Package storagetest is the conformance suite every storage driver passes: Run(t, newPool).
// It drives the volumes through qemu-io and qemu-img with the same blockdev description QEMU
// gets (storage.Access), so it also checks that description against the real block layer.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
)

const (
	MiB = 1 << 20
	GiB = 1 << 30
)

// Ctx returns a context with a generous deadline for a loaded machine.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// RequireTools skips the test when a tool the suite needs is missing.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/setup.sh installs it): %v", tool, err)
		}
	}
}

// toolAccess is the volume's Access with the page cache, as tools open it.
func toolAccess(t testing.TB, p storage.Pool, vol string) storage.Access {
	t.Helper()
	a, err := p.Access(Ctx(t), vol)
	if err != nil {
		t.Fatalf("Access(%s): %v", vol, err)
	}
	return a
}

// QemuIO runs qemu-io commands on the volume, opened exactly as Access describes it.
func QemuIO(t testing.TB, p storage.Pool, vol string, cmds ...string) (string, error) {
	t.Helper()
	a := toolAccess(t, p, vol)
	var args []string
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, a.QemuIOArgs()...)
	cmd := exec.CommandContext(Ctx(t), "qemu-io", args...)
	out, err := cmd.CombinedOutput()
	s := string(out)
	// qemu-io exits 0 even when a pattern read fails; its output says so.
	if err == nil && (strings.Contains(s, "Pattern verification failed") || strings.Contains(s, "failed:")) {
		err = errors.New("qemu-io reported a failure")
	}
	return s, err
}

// MustQemuIO is QemuIO that fails the test.
func MustQemuIO(t testing.TB, p storage.Pool, vol string, cmds ...string) {
	t.Helper()
	if out, err := QemuIO(t, p, vol, cmds...); err != nil {
		t.Fatalf("qemu-io %v on %s: %v\n%s", cmds, vol, err, out)
	}
}

// WantPattern asserts the volume reads pattern at [off, off+len).
func WantPattern(t testing.TB, p storage.Pool, vol, pattern, off, length string) {
	t.Helper()
	if out, err := QemuIO(t, p, vol, "read -P "+pattern+" "+off+" "+length); err != nil {
		t.Fatalf("%s: want pattern %s at %s+%s: %v\n%s", vol, pattern, off, length, err, out)
	}
}

// WantErr asserts err wraps kind.
func WantErr(t testing.TB, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want %v", what, err, kind)
	}
	var se *storage.Error
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %v is not a *storage.Error", what, err)
	}
}

// Export exports a volume to a file in a temp dir and returns its path.
func Export(t testing.TB, p storage.Pool, vol string, f storage.Format) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), vol+"."+string(f))
	if err := p.ExportVolumeFile(Ctx(t), vol, f, path, nil); err != nil {
		t.Fatalf("export %s: %v", vol, err)
	}
	return path
}

// SameContent compares a volume with an image file through qemu-img compare.
func SameContent(t testing.TB, p storage.Pool, vol, path, format string) bool {
	t.Helper()
	a := toolAccess(t, p, vol)
	a.Cache = storage.CacheWriteback
	args := []string{"compare", "-q"}
	if a.Key != nil {
		args = append(args, "--object", a.SecretObjectArg())
	}
	args = append(args, "-F", format, "json:"+a.BlockdevJSON(""), path)
	err := exec.CommandContext(Ctx(t), "qemu-img", args...).Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("qemu-img compare %s %s: %v", vol, path, err)
	}
	return true
}

// FileContains scans a whole host file for needle.
func FileContains(t testing.TB, path string, needle []byte) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, needle)
}
