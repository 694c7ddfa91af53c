package instances_test

import (
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute/accel"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

// TestHostAccelVerdict: the first daemon start on a state dir runs the KVM probe boot and
// saves its verdict; a restart on the same host boot reuses it (no second probe boot) and says
// so; --accel forces the accelerator and the reason names the flag; a bad value stops the
// daemon from starting with a one-line error.
func TestHostAccelVerdict(t *testing.T) {
	needVM(t)
	t.Setenv(accel.EnvOverride, "")
	sd := stateDir(t)
	accel.ResetCache() // this process may have probed already; the file is what must carry over
	td := start(t, sd)
	ctx := ctxT(t, 2*time.Minute)
	h1, err := td.Local.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h1.AccelCached || h1.AccelProbedAt == nil {
		t.Fatalf("first start should probe: %+v", h1)
	}
	td.Stop()

	accel.ResetCache()
	td2 := start(t, sd)
	h2, err := td2.Local.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h2.AccelCached || h2.AccelProbedAt == nil || !h2.AccelProbedAt.Equal(*h1.AccelProbedAt) || h2.Accel != h1.Accel {
		t.Fatalf("restart did not reuse the verdict: first %+v, second %+v", h1, h2)
	}
	td2.Stop()

	td3 := dt.Start(t, func(c *daemon.Config) { c.StateDir = sd; c.Accel = "tcg" })
	h3, err := td3.Local.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h3.Accel != "tcg" || !strings.Contains(h3.AccelReason, "--accel tcg") || h3.AccelProbedAt != nil {
		t.Fatalf("--accel tcg: %+v", h3)
	}
	td3.Stop()

	_, err = daemon.New(daemon.Config{StateDir: t.TempDir(), Accel: "fast"})
	if err == nil || !strings.Contains(err.Error(), `accelerator "fast" is unknown`) {
		t.Fatalf("bad accelerator: %v", err)
	}
}
