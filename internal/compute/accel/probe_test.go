package accel

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

func TestOverride(t *testing.T) {
	for _, tc := range []struct {
		override, want string
		warn, err      bool
	}{{"tcg", TCG, false, false}, {"kvm", KVM, true, false}, {"xen", "", false, true}} {
		r, err := Probe(context.Background(), Options{Override: tc.override, Device: "/nonexistent"})
		if (err != nil) != tc.err || r.Accel != tc.want || (r.Warning != "") != tc.warn {
			t.Errorf("override %s: %+v, %v", tc.override, r, err)
		}
	}
	t.Setenv(EnvOverride, "tcg")
	if r, _ := Probe(context.Background(), Options{}); r.Accel != TCG || !strings.Contains(r.Reason, "forced") {
		t.Errorf("env override: %+v", r)
	}
}

func TestNoDevice(t *testing.T) {
	t.Setenv(EnvOverride, "")
	ResetCache()
	r, err := Probe(context.Background(), Options{Device: "/nonexistent/kvm", Kernel: "/k"})
	if err != nil || r.Accel != TCG || !strings.Contains(r.Reason, "/nonexistent/kvm") || r.Warning == "" {
		t.Fatalf("%+v, %v", r, err)
	}
}

// probeProcesses counts probe QEMUs of this test process still alive.
func probeProcesses() int {
	n := 0
	tag := "finvirt-accel-probe-" + strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), tag) {
			n++
		}
	}
	return n
}

// TestProbeRealBoot runs the real probe. On this development host (/dev/kvm is PVM) the
// answer is tcg with a warning; on a host with working KVM it is kvm. Either way the probe QEMU
// must be gone afterwards, and the second call must come from the cache.
func TestProbeRealBoot(t *testing.T) {
	t.Setenv(EnvOverride, "")
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("/dev/kvm does not open here (%v): the probe short-cuts to tcg (TestNoDevice)", err)
	}
	f.Close()
	ResetCache()
	o := Options{Kernel: testvm.Vmlinux(t), Deadline: 8 * time.Second}
	r, err := Probe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe: %+v", r)
	switch r.Accel {
	case TCG:
		if !strings.Contains(r.Reason, "within 8s") || !strings.Contains(r.Warning, "/dev/kvm") {
			t.Fatalf("tcg verdict without a reason naming the deadline and the device: %+v", r)
		}
	case KVM:
		if !strings.Contains(r.Reason, "Linux version") {
			t.Fatalf("kvm verdict without the marker: %+v", r)
		}
	default:
		t.Fatalf("accel %q", r.Accel)
	}
	if n := probeProcesses(); n != 0 {
		t.Fatalf("%d probe QEMU processes left running", n)
	}
	r2, _ := Probe(context.Background(), o)
	if !r2.Cached || r2.Accel != r.Accel {
		t.Fatalf("second probe not cached: %+v", r2)
	}
}

// TestMarkerDetection swaps KVM for TCG in the probe boot to check, with a real kernel, that a
// guest which prints the marker is recognised and its QEMU is killed afterwards.
func TestMarkerDetection(t *testing.T) {
	t.Setenv(EnvOverride, "")
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	oldA, oldC := probeAccel, probeCmdline
	probeAccel = []string{"-accel", "tcg,tb-size=16"}
	probeCmdline = "console=ttyS0 panic=-1 tsc_early_khz=2500000 tsc=reliable no_timer_check lpj=5000000"
	t.Cleanup(func() { probeAccel, probeCmdline = oldA, oldC; ResetCache() })
	ResetCache()
	r, err := Probe(context.Background(), Options{Device: "/dev/null", Kernel: testvm.Vmlinux(t), Deadline: 60 * time.Second})
	if err != nil || r.Accel != KVM || !strings.Contains(r.Reason, "Linux version") {
		t.Fatalf("marker not detected: %+v, %v", r, err)
	}
	if n := probeProcesses(); n != 0 {
		t.Fatalf("%d probe QEMU processes left running", n)
	}
}
