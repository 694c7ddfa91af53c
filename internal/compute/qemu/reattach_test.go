package qemu

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
)

// TestReattachFromNewDriver starts a VM from one driver, drops that driver, and controls the
// VM from a new driver over the same state directory (what a daemon restart does).
func TestReattachFromNewDriver(t *testing.T) {
	dir := stateDir(t)
	d1 := newDriver(t, dir)
	info := bootAppliance(t, d1, applianceSpec(t, "survivor", ""))
	d1.Close()

	d2 := newDriver(t, dir)
	ctx := ctxT(t, 2*time.Minute)
	names, err := d2.List(ctx)
	if err != nil || !slices.Equal(names, []string{"survivor"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	got, err := d2.Attach(ctx, "survivor")
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != info.PID || got.Status.State != compute.StateRunning {
		t.Fatalf("re-attached info = %+v, want pid %d running", got, info.PID)
	}
	if err := d2.Pause(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	// The state comes from QEMU itself, not from our memory.
	c := func() string {
		d2.mu.Lock()
		defer d2.mu.Unlock()
		st, _ := queryStatus(ctx, d2.insts["survivor"].qmp)
		return string(st)
	}()
	if c != "paused" {
		t.Fatalf("QEMU reports %s after pause", c)
	}
	if err := d2.Resume(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	if err := d2.Stop(ctx, "survivor", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d2.State(ctx, "survivor"); st.State != compute.StateStopped || !strings.Contains(st.Reason, "ACPI") {
		b, _ := os.ReadFile(info.SerialLog)
		t.Fatalf("after stop: %+v\nconsole:\n%s", st, b)
	}
	noQEMUUnder(t, dir)
}

// TestVanishedWhileDetached kills QEMU while no driver is attached: the next driver reports
// error with the pid, and refuses to signal a pid that is not this instance's QEMU.
func TestVanishedWhileDetached(t *testing.T) {
	dir := stateDir(t)
	d1 := newDriver(t, dir)
	info := bootAppliance(t, d1, applianceSpec(t, "gone", ""))
	d1.Close()
	syscall.Kill(info.PID, syscall.SIGKILL)
	for i := 0; i < 300 && isOurQEMU(info.PID, info.Dir); i++ {
		time.Sleep(100 * time.Millisecond)
	}

	d2 := newDriver(t, dir)
	st := waitState(t, d2, "gone", compute.StateError)
	if !strings.Contains(st.Reason, strconv.Itoa(info.PID)) || !strings.Contains(st.Reason, "vanished") {
		t.Fatalf("reason %q should say pid %d vanished", st.Reason, info.PID)
	}

	// A recycled pid: point the pidfile at ourselves. The driver must not adopt or kill it.
	os.WriteFile(dir+"/gone/qemu.pid", []byte(strconv.Itoa(os.Getpid())), 0o600)
	d3 := newDriver(t, dir)
	ctx := ctxT(t, time.Minute)
	if err := d3.Kill(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d3.State(ctx, "gone"); st.State != compute.StateError {
		t.Fatalf("foreign pid adopted: %+v", st)
	}
	// (We are still alive to check this.)
	if err := d3.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
}

// TestReconcile removes instances the daemon no longer knows, killing their QEMU.
func TestReconcile(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	ctx := ctxT(t, 2*time.Minute)
	bootAppliance(t, d, applianceSpec(t, "stray", ""))
	if _, err := d.Create(ctx, applianceSpec(t, "keep", "")); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d2 := newDriver(t, dir)
	removed, err := d2.Reconcile(ctx, []string{"keep"})
	if err != nil || !slices.Equal(removed, []string{"stray"}) {
		t.Fatalf("Reconcile = %v, %v", removed, err)
	}
	if _, err := os.Stat(dir + "/stray"); !os.IsNotExist(err) {
		t.Fatalf("stray dir left: %v", err)
	}
	if _, err := d2.State(ctx, "keep"); err != nil {
		t.Fatalf("kept instance: %v", err)
	}
	if _, err := d2.State(ctx, "stray"); !errors.Is(err, compute.ErrNotFound) {
		t.Fatalf("stray still known: %v", err)
	}
	noQEMUUnder(t, dir)
}

// TestInterruptedStart: a QEMU left at -S (its driver died between launch and cont) is ended on
// re-attach and reported as error, instead of being adopted half-configured.
func TestInterruptedStart(t *testing.T) {
	dir := stateDir(t)
	d1 := newDriver(t, dir)
	ctx := ctxT(t, 2*time.Minute)
	spec := applianceSpec(t, "half", "")
	if _, err := d1.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// Launch exactly as Start does, but stop before cont.
	in, _ := d1.get("half")
	args, err := BuildArgs(spec, in.l, "tcg", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(d1.bin, args, in.l, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := waitQMP(ctx, in.l, p)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	d1.Close()

	d2 := newDriver(t, dir)
	st, err := d2.State(ctx, "half")
	if err != nil || st.State != compute.StateError || !strings.Contains(st.Reason, "interrupted") {
		t.Fatalf("state = %+v, %v", st, err)
	}
	if !p.wait(30 * time.Second) {
		t.Fatal("half-started QEMU still runs")
	}
	if err := d2.Start(ctx, "half"); err != nil {
		t.Fatalf("start after an interrupted start: %v", err)
	}
	if err := d2.Kill(ctx, "half"); err != nil {
		t.Fatal(err)
	}
}
