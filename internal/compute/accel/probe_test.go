package accel

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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

// TestProbeDiesWithItsParent runs a probe in a child process, kills that process with
// SIGKILL in the middle of the probe boot, and checks no probe QEMU is left behind.
func TestProbeDiesWithItsParent(t *testing.T) {
	if os.Getenv("FINVIRT_PROBE_CHILD") == "1" {
		// Probe again and again (on a KVM host one probe ends quickly) until killed.
		opts := probeTestOptions(t)
		for {
			ResetCache()
			Probe(context.Background(), opts)
		}
	}
	probeTestOptions(t) // skips when QEMU or the kernel is missing
	cmd := exec.Command(os.Args[0], "-test.run", "^TestProbeDiesWithItsParent$")
	cmd.Env = append(os.Environ(), "FINVIRT_PROBE_CHILD=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tag := "finvirt-accel-probe-" + strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(60 * time.Second)
	for len(pidsWithArg(tag)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the child never started its probe QEMU")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline = time.Now().Add(30 * time.Second)
	for len(pidsWithArg(tag)) > 0 {
		if time.Now().After(deadline) {
			for _, p := range pidsWithArg(tag) {
				syscall.Kill(p, syscall.SIGKILL)
			}
			t.Fatal("probe QEMU outlived the process that started it")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probeTestOptions are the options of a real probe boot, or a skip saying why there is none.
func probeTestOptions(t *testing.T) Options {
	t.Helper()
	t.Setenv(EnvOverride, "")
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("/dev/kvm does not open here (%v): the probe never starts QEMU", err)
	}
	f.Close()
	return Options{Kernel: testvm.Vmlinux(t), Deadline: 8 * time.Second}
}

// pidsWithArg lists processes whose command line contains s.
func pidsWithArg(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}
