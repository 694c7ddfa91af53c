package qemu

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

// stateDir returns a short (unix socket paths are limited to 108 bytes), unique state
// directory; cleanup SIGKILLs every QEMU or swtpm whose command line names it, even if the
// test failed half-way, then removes it.
func stateDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fvq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killUnder(dir)
		os.RemoveAll(dir)
	})
	return dir
}

// killUnder kills the process group of every process whose argv mentions dir.
func killUnder(dir string) {
	for i := 0; i < 50; i++ {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !strings.Contains(string(b), dir+"/") {
				continue
			}
			var pid int
			if _, err := fmtSscan(e.Name(), &pid); err == nil && pid != os.Getpid() {
				found = true
				syscall.Kill(-pid, syscall.SIGKILL)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newDriver(t testing.TB, dir string, opts ...compute.Option) *Driver {
	t.Helper()
	testvm.QEMU(t)
	d, err := New(append([]compute.Option{compute.WithStateDir(dir), compute.WithAccel("tcg")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// applianceSpec is a small appliance booting the test init.
func applianceSpec(t testing.TB, name string, extraCmdline string) compute.Spec {
	return compute.Spec{
		Name: name, Profile: compute.ProfileAppliance, VCPUs: 1, MemoryMiB: 128,
		Kernel: testvm.Vmlinux(t), Initrd: testvm.Initrd(t),
		Cmdline: strings.TrimSpace("mitigations=off nokaslr " + extraCmdline), TBSizeMiB: 16,
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// bootAppliance creates and starts an appliance and waits for the init marker.
func bootAppliance(t testing.TB, d *Driver, spec compute.Spec) compute.Info {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := d.Start(ctx, spec.Name); err != nil {
		t.Fatalf("start: %v", err)
	}
	info, err := d.Info(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := waitMarker(ctx, info); err != nil {
		t.Fatalf("boot: %v", err)
	}
	return info
}

func waitMarker(ctx context.Context, info compute.Info) (int, error) {
	return testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, 0)
}

// consoleCommand types a line on the instance's interactive console socket and keeps the
// connection open until expect shows in the console log, typing it again every 2 s: characters
// sent before the guest reads its UART, or still queued when we hang up, can be lost.
func consoleCommand(t testing.TB, info compute.Info, line, expect string) {
	t.Helper()
	c, err := net.DialTimeout("unix", info.ConsoleSocket, 10*time.Second)
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	defer c.Close()
	b, _ := os.ReadFile(info.SerialLog)
	from := len(b)
	for i := 0; i < 30; i++ {
		c.Write([]byte(line + "\n"))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := testvm.WaitLog(ctx, info.SerialLog, expect, from)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("console command %q: %q never appeared in %s", line, expect, info.SerialLog)
}

// waitState polls until the instance reaches want.
func waitState(t testing.TB, d *Driver, name string, want compute.State) compute.Status {
	t.Helper()
	ctx := ctxT(t, 90*time.Second)
	var st compute.Status
	var err error
	for ctx.Err() == nil {
		st, err = d.State(ctx, name)
		if err == nil && st.State == want {
			return st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("instance %s: state %+v (err %v), want %s", name, st, err, want)
	return st
}

func noQEMUUnder(t testing.TB, dir string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir+"/") {
			t.Errorf("process %s still runs: %q", e.Name(), strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}
