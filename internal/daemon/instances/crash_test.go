package instances_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/daemon/instances"
)

// TestCrashRestartAndReattach: kill -9 of QEMU is seen as a crash (error + reason, audited);
// restart=on-failure boots it again; a new daemon on the same state dir re-attaches to the
// VM that kept running while no daemon was up, and exec works again.
func TestCrashRestartAndReattach(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 5*time.Minute)
	buildImage(t, c, "busy")
	crashy := launch(t, c, "", api.InstancesPost{Name: "crashy", Image: "busy", Restart: api.RestartOnFailure, Command: "sleep 3600"})
	plain := launch(t, c, "", api.InstancesPost{Name: "plain", Image: "busy"})

	t.Run("kill -9 is a crash", func(t *testing.T) {
		if err := syscall.Kill(plain.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		in := waitFor(t, c, "", "plain", 20*time.Second, "error", func(in api.Instance) bool { return in.Status == api.InstanceError })
		if !strings.Contains(in.StatusReason, "killed") && !strings.Contains(in.StatusReason, "exited") {
			t.Fatalf("crash reason %q does not say QEMU died", in.StatusReason)
		}
		time.Sleep(2*instances.MonitorInterval + time.Second) // two monitor passes: never does not restart
		if in, _ := c.GetInstance(ctx, "", "plain"); in.Status != api.InstanceError || in.Restarts != 0 {
			t.Fatalf("restart=never came back: %+v", in)
		}
		_, err := c.Exec(ctx, "", "plain", api.InstanceExecPost{Command: []string{"true"}})
		wantStatus(t, err, 409, "error")
		if !audited(t, td, "instance.crashed", "instance/default/plain") {
			t.Fatal("crash not audited")
		}
	})
	t.Run("restart on-failure brings it back", func(t *testing.T) {
		if err := syscall.Kill(crashy.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		in := waitFor(t, c, "", "crashy", 150*time.Second, "restarted", func(in api.Instance) bool {
			return in.Status == api.InstanceRunning && in.Restarts == 1 && in.PID != crashy.PID && in.AgentReady
		})
		crashy = in
		if res := execIn(t, c, "", "crashy", "hostname"); strings.TrimSpace(string(res.Stdout)) != "crashy" {
			t.Fatalf("after restart: %+v", res)
		}
		if !audited(t, td, "instance.restarted", "instance/default/crashy") {
			t.Fatal("restart not audited")
		}
	})
	t.Run("daemon restart re-attaches", func(t *testing.T) {
		td.Stop()
		// The VM runs on without a daemon.
		if err := syscall.Kill(crashy.PID, 0); err != nil {
			t.Fatalf("QEMU died with the daemon: %v", err)
		}
		td2 := dt.Start(t, func(cfg *daemon.Config) { cfg.StateDir = sd })
		c2 := td2.Local
		cleanupInstances(t, c2, "default")
		in, err := c2.GetInstance(ctx, "", "crashy")
		if err != nil || in.Status != api.InstanceRunning || in.PID != crashy.PID {
			t.Fatalf("after daemon restart: %+v %v", in, err)
		}
		if res := execIn(t, c2, "", "crashy", "cat", "/proc/uptime"); res.ExitCode != 0 {
			t.Fatalf("exec after re-attach: %+v", res)
		}
		if in, _ := c2.GetInstance(ctx, "", "plain"); in.Status != api.InstanceError {
			t.Fatalf("crashed instance after daemon restart: %+v", in)
		}
		// restart=always also boots a guest that powered itself off.
		always := api.RestartAlways
		if _, err := c2.UpdateInstance(ctx, "", "crashy", api.InstancePatch{Restart: &always}); err != nil {
			t.Fatal(err)
		}
		c2.Exec(ctx, "", "crashy", api.InstanceExecPost{Command: []string{"poweroff", "-f"}, Timeout: 5}) // the guest dies under the exec
		in = waitFor(t, c2, "", "crashy", 150*time.Second, "restarted after power-off", func(in api.Instance) bool {
			return in.Status == api.InstanceRunning && in.Restarts == 2 && in.AgentReady
		})
		if res := execIn(t, c2, "", "crashy", "true"); res.ExitCode != 0 {
			t.Fatalf("exec after power-off restart: %+v", res)
		}
		state(t, c2, "", "crashy", "stop")
		time.Sleep(2*instances.MonitorInterval + time.Second)
		if in, _ := c2.GetInstance(ctx, "", "crashy"); in.Status != api.InstanceStopped || in.Restarts != 2 {
			t.Fatalf("a requested stop was restarted: %+v", in)
		}
		if err := c2.DeleteInstance(ctx, "", "crashy", false); err != nil {
			t.Fatal(err)
		}
		if err := c2.DeleteInstance(ctx, "", "plain", false); err != nil {
			t.Fatal(err)
		}
		if pids := qemuPids(sd); len(pids) != 0 {
			t.Fatalf("QEMUs left: %v", pids)
		}
	})
}

func audited(t *testing.T, td *dt.Daemon, action, target string) bool {
	recs, err := td.Local.AuditList(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Action == action && r.Target == target {
			return true
		}
	}
	return false
}

// TestQuotaRefusesSecondLaunch: a project limited to one instance refuses the second with
// 409 in the same transaction that would have created it: no record, no usage, no QEMU.
func TestQuotaRefusesSecondLaunch(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 4*time.Minute)
	cleanupInstances(t, c, "tiny")
	if _, err := c.CreateProject(ctx, api.ProjectsPost{Name: "tiny", Limits: api.ProjectLimits{Instances: 1}}); err != nil {
		t.Fatal(err)
	}
	buildImage(t, c, "busy")
	launch(t, c, "tiny", api.InstancesPost{Name: "one", Image: "busy"})
	_, err := c.CreateInstance(ctx, "tiny", api.InstancesPost{Name: "two", Image: "busy", VCPUs: 1, Memory: 128 << 20})
	wantStatus(t, err, 409, "tiny")
	if _, err := c.GetInstance(ctx, "tiny", "two"); client.StatusOf(err) != 404 {
		t.Fatalf("refused instance exists: %v", err)
	}
	p, _ := c.GetProject(ctx, "tiny")
	if p.Usage.Instances != 1 || p.Usage.Memory != 192<<20 || p.Usage.VCPUs != 1 {
		t.Fatalf("usage: %+v", p.Usage)
	}
	if pids := qemuPids(sd); len(pids) != 1 {
		t.Fatalf("want exactly one QEMU, have %v", pids)
	}
	// Quota also bounds resources: memory over a limit is refused the same way.
	lim := api.ProjectLimits{Instances: 5, Memory: 256 << 20}
	if _, err := c.UpdateProject(ctx, "tiny", api.ProjectPatch{Limits: &lim}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateInstance(ctx, "tiny", api.InstancesPost{Name: "two", Image: "busy", VCPUs: 1, Memory: 128 << 20})
	wantStatus(t, err, 409, "memory")
	// Resize: only when stopped, quota checked on the difference.
	big, fits, two := int64(512<<20), int64(256<<20), 2
	_, err = c.UpdateInstance(ctx, "tiny", "one", api.InstancePatch{Memory: &fits})
	wantStatus(t, err, 409, "stop it")
	state(t, c, "tiny", "one", "stop")
	_, err = c.UpdateInstance(ctx, "tiny", "one", api.InstancePatch{Memory: &big})
	wantStatus(t, err, 409, "memory")
	zero := 0
	_, err = c.UpdateInstance(ctx, "tiny", "one", api.InstancePatch{VCPUs: &zero})
	wantStatus(t, err, 400, "vcpus 0")
	if in, err := c.UpdateInstance(ctx, "tiny", "one", api.InstancePatch{Memory: &fits, VCPUs: &two}); err != nil || in.Memory != fits || in.VCPUs != 2 {
		t.Fatalf("resize: %+v %v", in, err)
	}
	if p, _ := c.GetProject(ctx, "tiny"); p.Usage.Memory != fits || p.Usage.VCPUs != 2 {
		t.Fatalf("usage after resize: %+v", p.Usage)
	}
	state(t, c, "tiny", "one", "start")
	res := execIn(t, c, "tiny", "one", "sh", "-c", "grep -c ^processor /proc/cpuinfo; awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo")
	if f := strings.Fields(string(res.Stdout)); len(f) != 2 || f[0] != "2" || len(f[1]) != 3 || f[1] < "200" {
		t.Fatalf("guest after resize to 2 vCPUs, 256MiB: %q", res.Stdout)
	}
	if err := c.DeleteInstance(ctx, "tiny", "one", true); err != nil {
		t.Fatal(err)
	}
	if p, _ := c.GetProject(ctx, "tiny"); p.Usage != (api.ProjectUsage{}) {
		t.Fatalf("usage after delete: %+v", p.Usage)
	}
}

// TestDaemonStopDuringLaunch: a daemon stopped while a launch is booting cancels the launch,
// and its rollback completes before the store closes: no QEMU, no record, no usage.
func TestDaemonStopDuringLaunch(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 2*time.Minute)
	buildImage(t, c, "busy")
	op, err := c.CreateInstance(ctx, "", api.InstancesPost{Name: "cut", Image: "busy", VCPUs: 1, Memory: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for o := op; o.Progress < 30; time.Sleep(20 * time.Millisecond) {
		if o, err = c.GetOperation(ctx, op.ID, 0); err != nil || o.Status != api.OperationRunning {
			t.Fatalf("launch ended before the daemon stopped: %+v %v", o, err)
		}
	}
	td.Stop()
	if pids := qemuPids(sd); len(pids) != 0 {
		t.Fatalf("QEMU left by a cancelled launch: %v", pids)
	}
	td2 := dt.Start(t, func(cfg *daemon.Config) { cfg.StateDir = sd })
	_, err = td2.Local.GetInstance(ctx, "", "cut")
	wantStatus(t, err, 404, "cut")
	if p, _ := td2.Local.GetProject(ctx, "default"); p.Usage != (api.ProjectUsage{}) {
		t.Fatalf("usage after a cancelled launch: %+v", p.Usage)
	}
}
