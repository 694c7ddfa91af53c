package accel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

// TestCacheKeyInputs: every input that decides the verdict changes the persisted key, and the
// override or cache location do not.
func TestCacheKeyInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := bootIDFile
	t.Cleanup(func() { bootIDFile = old })
	bootIDFile = filepath.Join(dir, "boot_id")
	when := time.Unix(1700000000, 0)
	fresh := func() Options {
		o := Options{Binary: write("qemu", "qemu-7.2"), Kernel: write("vmlinux", "kernel"), Initrd: write("initrd", "cpio"),
			Device: "/dev/null", Marker: DefaultMarker, Deadline: DefaultDeadline}
		for _, p := range []string{o.Binary, o.Kernel, o.Initrd} {
			os.Chtimes(p, when, when)
		}
		write("boot_id", "boot-1\n")
		return o
	}
	for _, tc := range []struct {
		name   string
		change func(o *Options)
		same   bool
	}{
		{"nothing", func(o *Options) {}, true},
		{"qemu size", func(o *Options) { write("qemu", "qemu-9.0.0"); os.Chtimes(o.Binary, when, when) }, false},
		{"qemu mtime", func(o *Options) { os.Chtimes(o.Binary, when, when.Add(time.Second)) }, false},
		{"qemu path", func(o *Options) { o.Binary = write("qemu2", "qemu-7.2"); os.Chtimes(o.Binary, when, when) }, false},
		{"kernel content", func(o *Options) { write("vmlinux", "kernel-2"); os.Chtimes(o.Kernel, when, when) }, false},
		{"initrd mtime", func(o *Options) { os.Chtimes(o.Initrd, when, when.Add(time.Second)) }, false},
		{"initrd dropped", func(o *Options) { o.Initrd = "" }, false},
		{"boot id", func(o *Options) { write("boot_id", "boot-2\n") }, false},
		{"device rdev", func(o *Options) { o.Device = "/dev/zero" }, false},
		{"device gone", func(o *Options) { o.Device = filepath.Join(dir, "kvm") }, false},
		{"deadline", func(o *Options) { o.Deadline = time.Second }, false},
		{"override", func(o *Options) { o.Override = KVM }, true},
		{"cache file", func(o *Options) { o.CacheFile = "/elsewhere/accel.json" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := fresh()
			before, _ := cacheKey(o)
			tc.change(&o)
			after, parts := cacheKey(o)
			if (after == before) != tc.same {
				t.Fatalf("key unchanged = %v, want %v (inputs %q)", after == before, tc.same, parts)
			}
		})
	}
}

// TestRealProbeOncePerKey runs the real probe (a KVM probe boot where /dev/kvm opens, the
// device check otherwise) with a cache file, then again from a fresh process cache with the
// same key: one probe in all.
func TestRealProbeOncePerKey(t *testing.T) {
	t.Setenv(EnvOverride, "")
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	n := 0
	old := runProbe
	runProbe = func(ctx context.Context, o Options) Result { n++; return old(ctx, o) }
	t.Cleanup(func() { runProbe = old; ResetCache() })
	o := Options{CacheFile: filepath.Join(t.TempDir(), "accel.json"), Deadline: 3 * time.Second}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		o.Kernel = testvm.Vmlinux(t)
	}
	ResetCache()
	r1, err := Probe(context.Background(), o)
	if err != nil || r1.Cached {
		t.Fatalf("first: %+v %v", r1, err)
	}
	ResetCache()
	r2, err := Probe(context.Background(), o)
	if err != nil || !r2.Cached || r2.Accel != r1.Accel || r2.Reason != r1.Reason {
		t.Fatalf("second: %+v %v (first %+v)", r2, err, r1)
	}
	if n != 1 {
		t.Fatalf("%d probes for one key, want 1", n)
	}
	// Forced kvm boots nothing; over a saved failed probe it warns loudly.
	o.Override = KVM
	r3, err := Probe(context.Background(), o)
	if err != nil || r3.Accel != KVM || n != 1 {
		t.Fatalf("forced kvm: %+v %v probes=%d", r3, err, n)
	}
	if loud := strings.Contains(r3.Warning, "KVM IS FORCED"); loud != (r1.Accel == TCG) {
		t.Fatalf("forced kvm over a %s verdict: loud warning %v: %q", r1.Accel, loud, r3.Warning)
	}
	if p := probeProcesses(); p != 0 {
		t.Fatalf("%d probe QEMU processes left", p)
	}
}

// TestForcedKVMOverWorkingProbe: a saved kvm verdict keeps the forced kvm's warning quiet,
// and the forced verdict runs no probe.
func TestForcedKVMOverWorkingProbe(t *testing.T) {
	o, runs := fakeProbeEnv(t)
	ResetCache()
	if r, err := Probe(context.Background(), o); err != nil || r.Accel != KVM || runs() != 1 {
		t.Fatalf("probe: %+v %v", r, err)
	}
	o.Override = KVM
	r, err := Probe(context.Background(), o)
	if err != nil || r.Accel != KVM || runs() != 1 || strings.Contains(r.Warning, "KVM IS FORCED") {
		t.Fatalf("forced kvm over a working probe: %+v %v runs=%d", r, err, runs())
	}
}
