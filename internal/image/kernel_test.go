package image

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// lz4Legacy compresses data with the lz4 CLI in legacy format (what the kernel build uses).
func lz4Legacy(t *testing.T, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath("lz4"); err != nil {
		t.Skip("lz4 CLI not installed")
	}
	cmd := exec.Command("lz4", "-l", "-9", "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLZ4LegacyMatchesCLI(t *testing.T) {
	random := make([]byte, 300000)
	rand.Read(random)
	tests := map[string][]byte{
		"text":         bytes.Repeat([]byte("finvirt appliance kernel "), 50000),
		"random":       random,
		"over 8MiB":    bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 1.3e6), // two legacy blocks
		"single byte":  {42},
		"long literal": append(random[:1000:1000], bytes.Repeat([]byte{0}, 5000)...),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodeLZ4Legacy(lz4Legacy(t, data), len(data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("round trip differs (%d vs %d bytes)", len(got), len(data))
			}
		})
	}
}

func TestLZ4LegacyErrors(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 10000)
	comp := lz4Legacy(t, data)
	corrupt := append([]byte(nil), comp...)
	for i := 12; i < len(corrupt); i += 7 {
		corrupt[i] ^= 0x5a
	}
	tests := []struct {
		name string
		in   []byte
		want int
		err  string
	}{
		{"no magic", []byte("hello world"), 0, "magic"},
		{"truncated", comp[:len(comp)/2], len(data), "truncated"},
		{"wrong size", comp, len(data) + 1, "header says"},
		{"corrupt", corrupt, len(data), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeLZ4Legacy(tc.in, tc.want)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.err != "" && !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q does not mention %q", err, tc.err)
			}
		})
	}
}

// fakeBzImage wraps payload in a minimal boot-protocol header the way the kernel build does
// (payload followed by its uncompressed size).
func fakeBzImage(payload []byte, size int) []byte {
	const setupSects = 3
	base := (setupSects + 1) * 512
	b := make([]byte, base+len(payload)+4)
	b[0x1f1] = setupSects
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x20f)
	binary.LittleEndian.PutUint32(b[0x248:], 0)
	binary.LittleEndian.PutUint32(b[0x24c:], uint32(len(payload)+4))
	copy(b[base:], payload)
	binary.LittleEndian.PutUint32(b[base+len(payload):], uint32(size))
	return b
}

func TestExtractVmlinuxRejects(t *testing.T) {
	notELF := bytes.Repeat([]byte("not an elf "), 1000)
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static not installed")
	}
	gz := fakeBzImage([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0}, 10)
	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, "not a bzImage"},
		{"no header", bytes.Repeat([]byte{0}, 4096), "not a bzImage"},
		{"gzip payload", gz, "not LZ4"},
		{"truncated file", fakeBzImage(lz4Legacy(t, notELF), len(notELF))[:1500], "outside"},
		{"payload not ELF", fakeBzImage(lz4Legacy(t, notELF), len(notELF)), "not an ELF"},
		{"ELF without PVH note", fakeBzImage(lz4Legacy(t, busybox), len(busybox)), "no PVH entry note"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ExtractVmlinux(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.err)
			}
		})
	}
}

func realKernel(t *testing.T) Kernel {
	t.Helper()
	k, err := FindKernel(KernelDir())
	if err != nil {
		t.Skipf("guest kernel not unpacked: %v", err)
	}
	return k
}

func TestRealKernelExtractAndCache(t *testing.T) {
	k := realKernel(t)
	cache := t.TempDir()
	p, err := CachedVmlinux(cache, k.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if err := checkPVH(b); err != nil {
		t.Fatal(err)
	}
	// The lz4 CLI must agree with our decoder on the real kernel.
	if _, err := exec.LookPath("lz4"); err == nil {
		bz, _ := os.ReadFile(k.Vmlinuz)
		base := (int(bz[0x1f1]) + 1) * 512
		off := int(binary.LittleEndian.Uint32(bz[0x248:]))
		n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
		cmd := exec.Command("lz4", "-dc")
		cmd.Stdin = bytes.NewReader(bz[base+off : base+off+n-4])
		want, err := cmd.Output()
		if err != nil && len(want) == 0 {
			t.Fatalf("lz4 -dc: %v", err)
		}
		if !bytes.Equal(want, b) {
			t.Fatalf("our vmlinux (%d bytes) differs from lz4 -dc (%d bytes)", len(b), len(want))
		}
	}
	p2, err := CachedVmlinux(cache, k.Vmlinuz)
	if err != nil || p2 != p {
		t.Fatalf("second call: %s %v", p2, err)
	}
	st2, _ := os.Stat(p2)
	if !st2.ModTime().Equal(st1.ModTime()) {
		t.Fatal("cached vmlinux was rewritten")
	}
	if filepath.Base(filepath.Dir(p)) == "" || len(filepath.Base(filepath.Dir(p))) != 64 {
		t.Fatalf("cache dir %s is not keyed by sha256", p)
	}
}

func TestFindKernelErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := FindKernel(dir); err == nil || !strings.Contains(err.Error(), "FINVIRT_KERNEL_DIR") {
		t.Fatalf("empty dir: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot", "vmlinuz-9.9"), []byte("x"), 0o644)
	if _, err := FindKernel(dir); err == nil || !strings.Contains(err.Error(), "lib/modules") {
		t.Fatalf("no modules: %v", err)
	}
}

// FuzzLZ4Block: arbitrary input must never panic or exceed the output limit.
func FuzzLZ4Block(f *testing.F) {
	f.Add([]byte{0x10, 'a'})
	f.Add([]byte{0x1f, 'a', 1, 0, 0xff, 0xff, 3})
	f.Add([]byte{0xf0, 0xff, 0xff, 0x10})
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := lz4Block(nil, src, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatalf("output %d over limit", len(out))
		}
	})
}
