package qemu

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

var tickRe = regexp.MustCompile(`tick (\d+) `)

func lastTick(t *testing.T, log string) int {
	b, _ := os.ReadFile(log)
	m := tickRe.FindAllStringSubmatch(string(b), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestApplianceLifecycle boots an appliance, pauses it (the guest's 100 ms tick counter must
// not advance while paused), resumes it, shrinks its balloon, stops it through the ACPI power
// button and deletes it.
func TestApplianceLifecycle(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	spec := applianceSpec(t, "life", "finvirt.ticks=1")
	spec.Balloon = true
	// QEMU (as root) creates a missing tap itself; the network layer normally pre-creates it.
	tap := fmt.Sprintf("fvl%06d", rand.Intn(1e6))
	spec.NICs = []compute.NICSpec{{ID: "eth0", Tap: tap, MAC: "52:54:00:12:34:56"}}
	info := bootAppliance(t, d, spec)
	ctx := ctxT(t, 3*time.Minute)
	if _, err := os.Stat("/sys/class/net/" + tap); err != nil {
		t.Fatalf("tap of the boot NIC: %v", err)
	}
	if p := peripherals(t, d, "life"); !slices.Contains(p, "nic-eth0") || !slices.Contains(p, "balloon0") {
		t.Fatalf("devices %v lack nic-eth0 or balloon0", p)
	}

	if info.Status.State != compute.StateRunning || info.PID == 0 || info.AgentSocket != dir+"/life/agent.sock" {
		t.Fatalf("info after start = %+v", info)
	}
	if _, err := os.Stat(info.AgentSocket); err != nil {
		t.Fatalf("agent socket: %v", err)
	}
	if _, err := testvm.WaitLog(ctx, info.SerialLog, "tick 3 ", 0); err != nil {
		t.Fatal(err)
	}

	if err := d.Pause(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, "life"); st.State != compute.StatePaused {
		t.Fatalf("state after pause = %+v", st)
	}
	time.Sleep(300 * time.Millisecond) // let a tick that was in flight reach the log
	frozen := lastTick(t, info.SerialLog)
	time.Sleep(1500 * time.Millisecond)
	if got := lastTick(t, info.SerialLog); got != frozen {
		t.Fatalf("guest ticked while paused: %d -> %d", frozen, got)
	}
	if err := d.Pause(ctx, "life"); err != nil {
		t.Fatalf("second pause should be a no-op: %v", err)
	}
	if err := d.Resume(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if _, err := testvm.WaitLog(ctx, info.SerialLog, "tick "+strconv.Itoa(frozen+3)+" ", 0); err != nil {
		t.Fatalf("no ticks after resume: %v", err)
	}

	if err := d.Balloon(ctx, "life", 1000); !errors.Is(err, compute.ErrInvalid) {
		t.Fatalf("balloon above memory: %v, want ErrInvalid", err)
	}
	if err := d.Balloon(ctx, "life", 96); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		info, _ = d.Info(ctx, "life")
		if info.BalloonActualMiB > 0 && info.BalloonActualMiB <= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("balloon actual %d MiB, want about 96", info.BalloonActualMiB)
		}
		time.Sleep(200 * time.Millisecond)
	}

	if err := d.Delete(ctx, "life"); !errors.Is(err, compute.ErrState) {
		t.Fatalf("delete of a running instance: %v, want ErrState", err)
	}
	if err := d.Stop(ctx, "life", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	st, _ := d.State(ctx, "life")
	if st.State != compute.StateStopped || !strings.Contains(st.Reason, "ACPI") {
		t.Fatalf("state after stop = %+v, want stopped by ACPI power button", st)
	}
	b, _ := os.ReadFile(info.SerialLog)
	if !strings.Contains(string(b), "POWEROFF power button") {
		t.Fatalf("guest did not see the power button")
	}
	if err := d.Delete(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/life"); !os.IsNotExist(err) {
		t.Fatalf("instance dir left after delete: %v", err)
	}
	if _, err := d.State(ctx, "life"); !errors.Is(err, compute.ErrNotFound) {
		t.Fatalf("state after delete: %v", err)
	}
	noQEMUUnder(t, dir)
}

// TestStopSequence covers the other exits: the caller's agent callback, QMP quit for a guest
// that cannot react (paused), a guest powering off by itself, and restart.
func TestStopSequence(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	info := bootAppliance(t, d, applianceSpec(t, "stops", ""))
	ctx := ctxT(t, 4*time.Minute)

	called := false
	agent := func(ctx context.Context) error {
		called = true
		consoleCommand(t, info, "poweroff", "POWEROFF command")
		return nil
	}
	if err := d.Stop(ctx, "stops", compute.StopOptions{AgentShutdown: agent, Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, "stops"); !called || st.State != compute.StateStopped || !strings.Contains(st.Reason, "agent") {
		t.Fatalf("after agent stop: called=%v state=%+v", called, st)
	}

	// Restart from stopped is Start; Restart of a running one stops and boots again.
	if err := d.Start(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	off, err := testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, off); err != nil {
		t.Fatalf("second boot: %v", err)
	}
	if err := d.Pause(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, "stops", compute.StopOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, "stops"); st.State != compute.StateStopped || !strings.Contains(st.Reason, "quit") {
		t.Fatalf("stop of a paused guest: %+v, want stopped by QMP quit", st)
	}

	if err := d.Start(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(info.SerialLog)
	if _, err := testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, len(b)); err != nil {
		t.Fatal(err)
	}
	consoleCommand(t, info, "poweroff", "POWEROFF command")
	st := waitState(t, d, "stops", compute.StateStopped)
	if !strings.Contains(st.Reason, "guest shut down") {
		t.Fatalf("guest poweroff recorded as %+v", st)
	}

	// An agent that fails hands over to the ACPI power button.
	if err := d.Start(ctx, "stops"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(info.SerialLog)
	if _, err := testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, len(b)); err != nil {
		t.Fatal(err)
	}
	failing := func(ctx context.Context) error { return errors.New("agent not answering") }
	if err := d.Stop(ctx, "stops", compute.StopOptions{AgentShutdown: failing, Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	st, _ = d.State(ctx, "stops")
	if st.State != compute.StateStopped || !strings.Contains(st.Reason, "ACPI") {
		t.Fatalf("stop with a failing agent: %+v, want ACPI power button", st)
	}
	if _, err := os.Stat(dir + "/stops/qemu.pid"); !os.IsNotExist(err) {
		t.Fatalf("pidfile left after guest poweroff: %v", err)
	}
	noQEMUUnder(t, dir)
}

// TestKilledQEMUIsError kills QEMU behind the driver's back: the instance turns to error with
// the exit status, and can be started again.
func TestKilledQEMUIsError(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	info := bootAppliance(t, d, applianceSpec(t, "victim", ""))
	if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, "victim", compute.StateError)
	if !strings.Contains(st.Reason, "signal: killed") || !strings.Contains(st.Reason, strconv.Itoa(info.PID)) {
		t.Fatalf("reason %q should name the pid and the signal", st.Reason)
	}
	ctx := ctxT(t, 2*time.Minute)
	if err := d.Start(ctx, "victim"); err != nil {
		t.Fatalf("start after failure: %v", err)
	}
	if err := d.Kill(ctx, "victim"); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, "victim"); st.State != compute.StateStopped {
		t.Fatalf("after Kill: %+v", st)
	}
	noQEMUUnder(t, dir)
}

// TestKillDuringStop: a guest that ignores the power button keeps Stop waiting; State answers
// "stopping" meanwhile, and Kill ends it at once.
func TestKillDuringStop(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	bootAppliance(t, d, applianceSpec(t, "stubborn", ""))
	ctx := ctxT(t, 3*time.Minute)
	done := make(chan error, 1)
	// AgentShutdown that claims success but does nothing: Stop then waits out its timeout.
	noop := func(ctx context.Context) error { return nil }
	go func() {
		done <- d.Stop(ctx, "stubborn", compute.StopOptions{AgentShutdown: noop, Timeout: 2 * time.Minute})
	}()
	waitState(t, d, "stubborn", compute.StateStopping)
	t0 := time.Now()
	if err := d.Kill(ctx, "stubborn"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted Stop: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Stop still waiting after Kill")
	}
	if time.Since(t0) > 60*time.Second {
		t.Fatalf("Kill took %v", time.Since(t0))
	}
	if st, _ := d.State(ctx, "stubborn"); st.State != compute.StateStopped || !strings.Contains(st.Reason, "killed") {
		t.Fatalf("after kill during stop: %+v", st)
	}
	noQEMUUnder(t, dir)
}
