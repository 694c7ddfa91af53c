package image

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeTree writes a lib/modules tree whose .ko files are empty and whose modules.dep says deps.
func fakeTree(t *testing.T, dep string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644)
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/virtio/virtio_anchor.ko\n"), 0o644)
	return dir
}

func names(ms []Module) []string {
	var n []string
	for _, m := range ms {
		n = append(n, m.Name)
	}
	return n
}

func TestResolveModulesDep(t *testing.T) {
	files := []string{"kernel/a/virtio.ko", "kernel/a/virtio_ring.ko", "kernel/b/virtio-net.ko", "kernel/c/failover.ko", "kernel/c/net_failover.ko", "kernel/d/cyc1.ko", "kernel/d/cyc2.ko", "kernel/e/evdev.ko"}
	dep := strings.Join([]string{
		"kernel/a/virtio.ko:",
		"kernel/a/virtio_ring.ko: kernel/a/virtio.ko",
		"kernel/b/virtio-net.ko: kernel/c/net_failover.ko kernel/c/failover.ko kernel/a/virtio_ring.ko kernel/a/virtio.ko kernel/drivers/virtio/virtio_anchor.ko",
		"kernel/c/failover.ko:",
		"kernel/c/net_failover.ko: kernel/c/failover.ko",
		"kernel/d/cyc1.ko: kernel/d/cyc2.ko",
		"kernel/d/cyc2.ko: kernel/d/cyc1.ko",
		"kernel/e/evdev.ko:",
	}, "\n")
	ms, err := OpenModules(fakeTree(t, dep, files...))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req, opt []string
		want     []string
		err      string
	}{
		{name: "deps first, each once, builtin skipped", req: []string{"virtio_net", "virtio"}, want: []string{"failover", "net_failover", "virtio", "virtio_ring", "virtio_net"}},
		{name: "dash and underscore are one name", req: []string{"virtio-net"}, want: []string{"failover", "net_failover", "virtio", "virtio_ring", "virtio_net"}},
		{name: "optional present and absent", req: []string{"failover"}, opt: []string{"evdev", "button"}, want: []string{"failover", "evdev"}},
		{name: "missing", req: []string{"virtio_blk"}, err: "virtio_blk is neither"},
		{name: "cycle", req: []string{"cyc1"}, err: "cycle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ms.Resolve(tc.req, tc.opt)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(names(got), tc.want) {
				t.Fatalf("order %v, want %v", names(got), tc.want)
			}
		})
	}
}

// TestResolveRealKernel resolves the appliance set from the Debian package, which ships no
// modules.dep: the dependencies come from each module's .modinfo.
func TestResolveRealKernel(t *testing.T) {
	k := realKernel(t)
	ms, err := OpenModules(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ms.Resolve(RequiredModules, OptionalModules)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		if _, dup := pos[m.Name]; dup {
			t.Fatalf("%s listed twice", m.Name)
		}
		pos[m.Name] = i
	}
	for _, n := range append(append([]string{}, RequiredModules...), "virtio", "virtio_ring", "failover", "net_failover", "virtio_pci_modern_dev", "virtio_pci_legacy_dev") {
		if _, ok := pos[n]; !ok {
			t.Fatalf("%s missing from %v", n, names(got))
		}
	}
	for _, before := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_net"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}, {"virtio_pci_modern_dev", "virtio_pci"}} {
		if pos[before[0]] > pos[before[1]] {
			t.Fatalf("%s must load before %s: %v", before[0], before[1], names(got))
		}
	}
}

// TestCompressedModule: a tree that stores .ko.xz gets plain ELF into the initramfs, because
// finit_module of a compressed module needs CONFIG_MODULE_DECOMPRESS in the guest kernel.
func TestCompressedModule(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	k := realKernel(t)
	orig, err := os.ReadFile(filepath.Join(k.ModulesDir, "kernel/drivers/virtio/virtio_ring.ko"))
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "kernel/drivers/virtio/virtio_ring.ko")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, orig, 0o644)
	if out, err := exec.Command("xz", p).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	ms, err := OpenModules(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ms.Resolve([]string{"virtio_ring"}, nil)
	if err != nil || len(mods) != 1 || !strings.HasSuffix(mods[0].Path, ".ko.xz") {
		t.Fatalf("resolve: %v %v", mods, err)
	}
	got, err := ms.read("virtio_ring")
	if err != nil || !bytes.Equal(got, orig) {
		t.Fatalf("decompressed module differs (%d vs %d bytes): %v", len(got), len(orig), err)
	}
}
