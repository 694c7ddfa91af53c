package diskimage_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

const fixtureSize = 16 << 20

func requireQemu(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
}

func sh(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// rawFixture writes a 16 MiB raw disk with known patterns: 0x11 at 0, 0x22 at 8M (pattern
// argument shifts them so several disks differ).
func rawFixture(t testing.TB, dir, name string, pattern byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	sh(t, "qemu-img", "create", "-q", "-f", "raw", p, "16M")
	sh(t, "qemu-io", "-f", "raw", "-c", "write -P "+itoa(int(pattern))+" 0 1M", "-c", "write -P "+itoa(int(pattern)+1)+" 8M 2M", p)
	return p
}

func itoa(n int) string { return strconv.Itoa(n) }

// convertFixture converts src into format (with -o options) at dir/name.
func convertFixture(t testing.TB, src, format, opts, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	args := []string{"convert", "-q", "-f", "raw", "-O", format}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	sh(t, "qemu-img", append(args, src, dst)...)
	return dst
}

func truncateFile(t testing.TB, src, dst string, frac float64) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b[:int(float64(len(b))*frac)], 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
