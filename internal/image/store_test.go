package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/finvirt/finvirt/internal/agent"
)

// testSpec uses busybox-static as a stand-in /init: the store tests check layout, not boot
// (internal/agent/vmtest boots real images).
func testSpec(t *testing.T) ApplianceSpec {
	t.Helper()
	realKernel(t)
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed")
	}
	return ApplianceSpec{Agent: "/bin/busybox", Binaries: []string{"/bin/busybox"}}
}

// sharedKernelCache lets every test store reuse one extracted vmlinux (53 MB, ~0.5 s each).
var sharedKernelCache string

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if sharedKernelCache == "" {
		sharedKernelCache, _ = os.MkdirTemp("", "finvirt-kcache-")
	}
	// Pre-seed the store's kernel cache with hard links to the shared extraction.
	k, err := FindKernel(KernelDir())
	if err == nil {
		if p, err := CachedVmlinux(sharedKernelCache, k.Vmlinuz); err == nil {
			rel, _ := filepath.Rel(sharedKernelCache, p)
			dst := filepath.Join(s.dir, "kernels", rel)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			linkOrCopy(p, dst)
		}
	}
	return s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedKernelCache != "" {
		os.RemoveAll(sharedKernelCache)
	}
	os.Exit(code)
}

func readCpio(t *testing.T, b []byte) map[string]*cpio.Header {
	t.Helper()
	out := map[string]*cpio.Header{}
	r := cpio.NewReader(bytes.NewReader(b))
	for {
		h, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Mode.IsRegular() {
			data, _ := io.ReadAll(r)
			h.Linkname = string(data[:min(len(data), 4096)]) // keep small contents for checks
		}
		out["/"+h.Name] = h
	}
}

func TestBuildApplianceContents(t *testing.T) {
	spec := testSpec(t)
	s := newStore(t)
	var pcts []int
	im, err := s.BuildAppliance(context.Background(), "web-1", spec, func(p int, _ string) { pcts = append(pcts, p) })
	if err != nil {
		t.Fatal(err)
	}
	if pcts[len(pcts)-1] != 100 || im.Kind != KindAppliance || im.KernelVersion == "" || len(im.ID) != 64 {
		t.Fatalf("image %+v progress %v", im, pcts)
	}
	b, err := os.ReadFile(im.InitrdPath())
	if err != nil {
		t.Fatal(err)
	}
	files := readCpio(t, b)
	for _, p := range []string{"/init", "/bin/busybox", "/bin/sh", "/bin/cat", ModulesListPath, ImageInfoPath, "/proc", "/dev", "/tmp"} {
		if files[p] == nil {
			t.Fatalf("initramfs lacks %s", p)
		}
	}
	if files["/init"].Mode.Perm() != 0o755 || files["/tmp"].Mode.Perm() != 0o1777&0o777 {
		t.Fatalf("modes: init %v tmp %v", files["/init"].Mode, files["/tmp"].Mode)
	}
	list := strings.Fields(files[ModulesListPath].Linkname)
	if len(list) < len(RequiredModules) {
		t.Fatalf("module list %v", list)
	}
	for _, m := range list {
		if files[m] == nil {
			t.Fatalf("listed module %s not in the archive", m)
		}
	}
	if list[len(list)-1] != "/lib/modules/button.ko" && list[len(list)-1] != "/lib/modules/virtio_balloon.ko" {
		t.Fatalf("unexpected load order tail %v", list)
	}
	// Metadata on disk matches the files.
	for _, f := range []struct {
		path string
		fi   *FileInfo
	}{{im.VmlinuxPath(), &im.Vmlinux}, {im.InitrdPath(), im.Initrd}} {
		got, err := hashFile(f.path)
		if err != nil || *got != *f.fi {
			t.Fatalf("%s: %+v vs metadata %+v (%v)", f.path, got, f.fi, err)
		}
	}
	if len(im.Contents) == 0 {
		t.Fatal("metadata has no contents list")
	}
}

func TestBuildRejects(t *testing.T) {
	spec := testSpec(t)
	s := newStore(t)
	if _, err := s.BuildAppliance(context.Background(), "taken", spec, nil); err != nil {
		t.Fatal(err)
	}
	dynamic := "/usr/bin/qemu-img"
	if _, err := os.Stat(dynamic); err != nil {
		dynamic = "/bin/ls"
	}
	tests := []struct {
		name, image string
		mutate      func(*ApplianceSpec)
		err         string
	}{
		{"duplicate name", "taken", nil, "already exists"},
		{"path in name", "a/b", nil, "invalid"},
		{"dot-dot name", "..", nil, "invalid"},
		{"upper case", "Web", nil, "invalid"},
		{"empty name", "", nil, "invalid"},
		{"dynamic binary", "dyn", func(s *ApplianceSpec) { s.Binaries = append(s.Binaries, dynamic) }, "dynamically linked"},
		{"missing binary", "miss", func(s *ApplianceSpec) { s.Binaries = []string{"/nonexistent/tool"} }, "no such file"},
		{"no agent", "noagent", func(s *ApplianceSpec) { s.Agent = "" }, "Agent"},
		{"bad kernel dir", "nokernel", func(s *ApplianceSpec) { s.KernelDir = t.TempDir() }, "no boot/vmlinuz"},
		{"missing module", "nomod", func(s *ApplianceSpec) { s.ExtraModules = []string{"no_such_mod"} }, "no_such_mod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := spec
			sp.Binaries = append([]string(nil), spec.Binaries...)
			if tc.mutate != nil {
				tc.mutate(&sp)
			}
			_, err := s.BuildAppliance(context.Background(), tc.image, sp, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			assertClean(t, s, 1)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.BuildAppliance(ctx, "cancelled", spec, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: %v", err)
	}
	assertClean(t, s, 1)
}

// assertClean checks that nothing but the expected images is left: no temp dirs, no orphans.
func assertClean(t *testing.T, s *Store, images int) {
	t.Helper()
	tmp, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("store tmp/ not empty: %v", tmp)
	}
	ims, _ := os.ReadDir(filepath.Join(s.dir, "images"))
	refs, _ := os.ReadDir(filepath.Join(s.dir, "refs"))
	if len(ims) != images || len(refs) != images {
		t.Fatalf("store has %d image dirs and %d refs, want %d", len(ims), len(refs), images)
	}
}

func TestStoreListGetDelete(t *testing.T) {
	spec := testSpec(t)
	s := newStore(t)
	a, err := s.BuildAppliance(context.Background(), "alpha", spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Same content, second name: shares the image directory.
	b, err := s.BuildAppliance(context.Background(), "beta", spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("identical builds have different ids %s %s", a.ID, b.ID)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "beta" {
		t.Fatalf("list %v %v", list, err)
	}
	for _, key := range []string{"alpha", a.ID, a.ID[:12]} {
		got, err := s.Get(key)
		if err != nil || got.ID != a.ID {
			t.Fatalf("Get(%s) = %v, %v", key, got, err)
		}
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(nope): %v", err)
	}
	if err := s.Delete("alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b.InitrdPath()); err != nil {
		t.Fatal("deleting one name removed content still named by another")
	}
	if err := s.Delete("beta"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, s, 0)
	if err := s.Delete("beta"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestExportImport(t *testing.T) {
	spec := testSpec(t)
	src := newStore(t)
	im, err := src.BuildAppliance(context.Background(), "exported", spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := src.Export("exported", &archive); err != nil {
		t.Fatal(err)
	}
	good := archive.Bytes()
	dst := newStore(t)

	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-5000] ^= 0xff // inside the initrd payload
	tampered := retarName(t, good, "evil")
	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, "not an image archive"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"truncated in metadata", good[:700], ""},
		{"corrupt byte", corrupt, "sha256"},
		{"not a tar", bytes.Repeat([]byte("x"), 4096), ""},
		{"renamed with bad name", tampered, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dst.Import(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			assertClean(t, dst, 0)
		})
	}
	got, err := dst.Import(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != im.ID || got.Name != "exported" || got.KernelVersion != im.KernelVersion {
		t.Fatalf("imported %+v, want id %s", got, im.ID)
	}
	if _, err := dst.Import(bytes.NewReader(good)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate import: %v", err)
	}
	assertClean(t, dst, 1)
}

// retarName rewrites the metadata name in an export (keeping the tar valid).
func retarName(t *testing.T, archive []byte, name string) []byte {
	t.Helper()
	// Metadata is the first member; rebuild by decoding and re-encoding via the JSON.
	i := bytes.Index(archive, []byte(`"name": "exported"`))
	if i < 0 {
		t.Fatal("name not found in archive")
	}
	out := append([]byte(nil), archive...)
	// Same length replacement keeps tar offsets valid: "exported" -> "EVIL/../".
	copy(out[i:], []byte(`"name": "EVIL/../"`))
	_ = name
	return out
}

func TestInstanceInitrd(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	a := newArchive()
	a.file("/init", 0o755, []byte("init"))
	var buf bytes.Buffer
	if _, err := a.write(&buf); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("x") // an unaligned base must still yield an aligned second archive
	os.WriteFile(base, buf.Bytes(), 0o644)
	cfg := agent.Config{Hostname: "inst-1", Workloads: []agent.Workload{{Name: "w", Command: "/bin/true"}}}
	dst := filepath.Join(dir, "inst")
	if err := WriteInstanceInitrd(base, cfg, dst); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(dst)
	if !bytes.HasPrefix(out, buf.Bytes()) {
		t.Fatal("base archive not preserved")
	}
	off := (len(buf.Bytes()) + 3) &^ 3
	files := readCpio(t, out[off:])
	h := files[agent.ConfigPath]
	if h == nil {
		t.Fatalf("second archive lacks %s: %v", agent.ConfigPath, files)
	}
	var got agent.Config
	if err := json.Unmarshal([]byte(h.Linkname), &got); err != nil || got.Hostname != "inst-1" {
		t.Fatalf("config %+v %v", got, err)
	}
	bad := filepath.Join(dir, "bad")
	if err := WriteInstanceInitrd(base, agent.Config{Hostname: "-bad-"}, bad); err == nil {
		t.Fatal("invalid config accepted")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("invalid config left a file behind")
	}
	if err := WriteInstanceInitrd(filepath.Join(dir, "missing"), cfg, bad); err == nil {
		t.Fatal("missing base accepted")
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

// TestBuildFullRejects covers the checks BuildFull makes before the slow debootstrap; the
// build itself runs in internal/agent/vmtest TestFullImage (FINVIRT_SOAK).
func TestBuildFullRejects(t *testing.T) {
	s := newStore(t)
	dynamic := "/usr/bin/qemu-img"
	if _, err := os.Stat(dynamic); err != nil {
		dynamic = "/bin/ls"
	}
	tests := []struct {
		name, image string
		spec        FullSpec
		err         string
	}{
		{"bad name", "Bad/Name", FullSpec{Agent: "/bin/busybox"}, "invalid"},
		{"no agent", "full-a", FullSpec{}, "Agent"},
		{"dynamic agent", "full-b", FullSpec{Agent: dynamic}, "dynamically linked"},
		{"bad kernel dir", "full-c", FullSpec{Agent: "/bin/busybox", KernelDir: t.TempDir()}, "no boot/vmlinuz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.BuildFull(context.Background(), tc.image, tc.spec, nil)
			if err == nil || (!strings.Contains(err.Error(), tc.err) && !strings.Contains(err.Error(), "not installed")) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			assertClean(t, s, 0)
		})
	}
}
