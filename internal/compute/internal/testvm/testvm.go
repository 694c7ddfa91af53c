// Package testvm gives the compute tests a bootable appliance: the Debian cloud kernel
// extracted to an uncompressed PVH vmlinux, and an initramfs whose /init is a small static Go
// program (testdata/testinit) that prints Marker on the console. Results are cached per
// machine under the temp dir, keyed by the kernel file and the init source.
package testvm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
)

// Marker is printed by the test init once it runs.
const Marker = "FINVIRT-TESTINIT-READY"

// TCGCmdline is the kernel command line the tests boot with (see docs/compute.md).
const TCGCmdline = "console=ttyS0 quiet tsc_early_khz=2500000 tsc=reliable no_timer_check lpj=5000000 mitigations=off nokaslr edd=off i8042.noaux i8042.nopnp cryptomgr.notests random.trust_cpu=on"

// Modules loaded by the init, in dependency order.
var modules = []string{
	"drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko",
	"drivers/virtio/virtio_pci_modern_dev.ko", "drivers/virtio/virtio_pci_legacy_dev.ko",
	"drivers/virtio/virtio_pci.ko", "drivers/virtio/virtio_mmio.ko",
	"drivers/block/virtio_blk.ko", "drivers/virtio/virtio_balloon.ko",
	"drivers/acpi/button.ko", "drivers/input/evdev.ko",
}

// KernelDir is $FINVIRT_KERNEL_DIR or /var/cache/finvirt/kernel.
func KernelDir() string {
	if d := os.Getenv("FINVIRT_KERNEL_DIR"); d != "" {
		return d
	}
	return "/var/cache/finvirt/kernel"
}

// QEMU returns the qemu-system-x86_64 path or skips the test.
func QEMU(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		tb.Skip("qemu-system-x86_64 not installed (scripts/setup.sh installs qemu-system-x86)")
	}
	return p
}

func cacheDir() (string, error) {
	d := filepath.Join(os.TempDir(), fmt.Sprintf("finvirt-testvm-%d", os.Getuid()))
	return d, os.MkdirAll(d, 0o700)
}

var (
	mu    sync.Mutex
	built = map[string]string{}
)

func vmlinuz() (string, error) {
	m, _ := filepath.Glob(filepath.Join(KernelDir(), "boot", "vmlinuz-*"))
	if len(m) == 0 {
		return "", fmt.Errorf("no boot/vmlinuz-* under %s (set FINVIRT_KERNEL_DIR; scripts/setup.sh unpacks the Debian cloud kernel)", KernelDir())
	}
	return m[len(m)-1], nil
}

// Vmlinux returns the path of the extracted PVH vmlinux, or skips the test when the kernel or
// lz4 is missing.
func Vmlinux(tb testing.TB) string {
	tb.Helper()
	p, err := vmlinux()
	if err != nil {
		tb.Skip(err.Error())
	}
	return p
}

func vmlinux() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if p := built["vmlinux"]; p != "" {
		return p, nil
	}
	src, err := vmlinuz()
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, fmt.Sprintf("vmlinux-%s-%d-%d", filepath.Base(src), fi.Size(), fi.ModTime().Unix()))
	if _, err := os.Stat(dst); err == nil {
		built["vmlinux"] = dst
		return dst, nil
	}
	if _, err := exec.LookPath("lz4"); err != nil {
		return "", fmt.Errorf("lz4 not installed (apt-get install lz4)")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	// The bzImage carries an LZ4 legacy-frame payload; decompressing it from the magic on gives
	// the ELF vmlinux with its PVH note. lz4 warns about the trailing setup bytes: harmless.
	off := bytes.Index(data, []byte{0x02, 0x21, 0x4c, 0x18})
	if off < 0 {
		return "", fmt.Errorf("%s: no LZ4 payload magic 02214c18 found", src)
	}
	cmd := exec.Command("lz4", "-dc")
	cmd.Stdin = bytes.NewReader(data[off:])
	out, err := cmd.Output()
	if len(out) < 4 || !bytes.Equal(out[:4], []byte("\x7fELF")) {
		return "", fmt.Errorf("lz4 -dc of %s did not give an ELF (err %v)", src, err)
	}
	tmp := dst + ".tmp" + fmt.Sprint(os.Getpid())
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	built["vmlinux"] = dst
	return dst, nil
}

// Initrd returns the path of the test initramfs (built once per init source), or skips.
func Initrd(tb testing.TB) string {
	tb.Helper()
	p, err := initrd()
	if err != nil {
		tb.Skip(err.Error())
	}
	return p
}

func srcDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "testinit")
}

func initrd() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if p := built["initrd"]; p != "" {
		return p, nil
	}
	src := srcDir()
	h := sha256.New()
	files, _ := filepath.Glob(filepath.Join(src, "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	h.Write([]byte(KernelDir() + strings.Join(modules, ",")))
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "initrd-"+key+".cpio")
	if _, err := os.Stat(dst); err == nil {
		built["initrd"] = dst
		return dst, nil
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	bin := filepath.Join(dir, "testinit-"+key+fmt.Sprint(os.Getpid()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build test init: %v\n%s", err, out)
	}
	defer os.Remove(bin)

	var buf bytes.Buffer
	w := cpio.NewWriter(&buf)
	add := func(name string, mode cpio.FileMode, data []byte) error {
		if err := w.WriteHeader(&cpio.Header{Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	initBin, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	if err := add("init", cpio.TypeReg|0o755, initBin); err != nil {
		return "", err
	}
	mods, _ := filepath.Glob(filepath.Join(KernelDir(), "lib", "modules", "*", "kernel"))
	if len(mods) > 0 {
		add("lib", cpio.TypeDir|0o755, nil)
		add("lib/m", cpio.TypeDir|0o755, nil)
		for i, m := range modules {
			b, err := os.ReadFile(filepath.Join(mods[0], m))
			if err != nil {
				continue // an older kernel may have it built in
			}
			if err := add(fmt.Sprintf("lib/m/%02d-%s", i, filepath.Base(m)), cpio.TypeReg|0o644, b); err != nil {
				return "", err
			}
		}
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	tmp := dst + ".tmp" + fmt.Sprint(os.Getpid())
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", err
	}
	built["initrd"] = dst
	return dst, nil
}

// WaitLog polls a log file until it contains want (after byte offset from), returning the
// offset just past the match.
func WaitLog(ctx context.Context, path, want string, from int) (int, error) {
	for {
		b, _ := os.ReadFile(path)
		if from < len(b) {
			if i := strings.Index(string(b[from:]), want); i >= 0 {
				return from + i + len(want), nil
			}
		}
		select {
		case <-ctx.Done():
			tail := string(b)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return 0, fmt.Errorf("%q not seen in %s: %v; log tail:\n%s", want, path, ctx.Err(), tail)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
