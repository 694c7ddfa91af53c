// Package computetest is the conformance suite every compute.Driver must pass. A driver's
// tests call Run with a factory; the suite drives the public interface only.
package computetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
)

// Harness supplies what the suite cannot know about a driver.
type Harness struct {
	// New returns a driver over stateDir (a fresh driver value each call, same directory).
	New func(t *testing.T, stateDir string) compute.Driver
	// Spec returns a bootable spec named name.
	Spec func(t *testing.T, name string) compute.Spec
	// StateDir returns an empty state directory, cleaned up (with anything running in it).
	StateDir func(t *testing.T) string
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func waitState(t *testing.T, ctx context.Context, d compute.Driver, name string, want compute.State) {
	t.Helper()
	var st compute.Status
	var err error
	for ctx.Err() == nil {
		if st, err = d.State(ctx, name); err == nil && st.State == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: state %+v (%v), want %s", name, st, err, want)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("InvalidSpecCreatesNothing", func(t *testing.T) {
		d := h.New(t, h.StateDir(t))
		ctx := ctxT(t)
		s := h.Spec(t, "inv")
		s.VCPUs = 0
		if _, err := d.Create(ctx, s); !errors.Is(err, compute.ErrInvalid) {
			t.Fatalf("Create with 0 vCPUs: %v", err)
		}
		if names, _ := d.List(ctx); len(names) != 0 {
			t.Fatalf("List after a rejected Create: %v", names)
		}
	})
	t.Run("UnknownInstance", func(t *testing.T) {
		d := h.New(t, h.StateDir(t))
		ctx := ctxT(t)
		for op, err := range map[string]error{
			"State":  func() error { _, err := d.State(ctx, "nosuch"); return err }(),
			"Start":  d.Start(ctx, "nosuch"),
			"Delete": d.Delete(ctx, "nosuch"),
		} {
			if !errors.Is(err, compute.ErrNotFound) {
				t.Errorf("%s of an unknown instance: %v, want ErrNotFound", op, err)
			}
		}
	})
	t.Run("Lifecycle", func(t *testing.T) {
		dir := h.StateDir(t)
		d := h.New(t, dir)
		ctx := ctxT(t)
		info, err := d.Create(ctx, h.Spec(t, "conf"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Status.State != compute.StateStopped || info.AgentSocket == "" || info.QMPSocket == "" {
			t.Fatalf("Create info: %+v", info)
		}
		if _, err := d.Create(ctx, h.Spec(t, "conf")); !errors.Is(err, compute.ErrExists) {
			t.Fatalf("second Create: %v", err)
		}
		if names, _ := d.List(ctx); !slices.Equal(names, []string{"conf"}) {
			t.Fatalf("List: %v", names)
		}
		if err := d.Resume(ctx, "conf"); !errors.Is(err, compute.ErrState) {
			t.Fatalf("Resume of a stopped instance: %v", err)
		}
		if err := d.Start(ctx, "conf"); err != nil {
			t.Fatal(err)
		}
		waitState(t, ctx, d, "conf", compute.StateRunning)
		if err := d.Start(ctx, "conf"); !errors.Is(err, compute.ErrState) {
			t.Fatalf("Start of a running instance: %v", err)
		}
		if err := d.Pause(ctx, "conf"); err != nil {
			t.Fatal(err)
		}
		waitState(t, ctx, d, "conf", compute.StatePaused)
		if err := d.Resume(ctx, "conf"); err != nil {
			t.Fatal(err)
		}
		waitState(t, ctx, d, "conf", compute.StateRunning)

		// A new driver value over the same directory (a restarted daemon: the old one has let
		// go of its control connections) sees and controls the running instance.
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		d2 := h.New(t, dir)
		if info, err := d2.Attach(ctx, "conf"); err != nil || info.Status.State != compute.StateRunning {
			t.Fatalf("Attach from a new driver: %+v, %v", info, err)
		}
		if err := d2.Restart(ctx, "conf", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
			t.Fatal(err)
		}
		waitState(t, ctx, d2, "conf", compute.StateRunning)
		if err := d2.Delete(ctx, "conf"); !errors.Is(err, compute.ErrState) {
			t.Fatalf("Delete of a running instance: %v", err)
		}
		if err := d2.Stop(ctx, "conf", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
			t.Fatal(err)
		}
		waitState(t, ctx, d2, "conf", compute.StateStopped)
		if err := d2.Stop(ctx, "conf", compute.StopOptions{}); err != nil {
			t.Fatalf("Stop of a stopped instance should be a no-op: %v", err)
		}
		if err := d2.Delete(ctx, "conf"); err != nil {
			t.Fatal(err)
		}
		if _, err := d2.State(ctx, "conf"); !errors.Is(err, compute.ErrNotFound) {
			t.Fatalf("State after Delete: %v", err)
		}
	})
}
