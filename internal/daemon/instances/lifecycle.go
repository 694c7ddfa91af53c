package instances

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/image"
	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/store"
)

// BootTimeout bounds QEMU start to agent ready. Generous: TCG on a loaded 2-core host.
const BootTimeout = 120 * time.Second

// applianceCmdline is added to the driver's console and TCG parameters.
const applianceCmdline = "mitigations=off nokaslr panic=-1"

func (s *Subsystem) initrdPath(id string) string { return filepath.Join(s.filesDir(id), "initrd") }
func (s *Subsystem) rootPath(id string) string   { return filepath.Join(s.filesDir(id), "root.qcow2") }

// spec is the driver's view of an instance.
func (s *Subsystem) spec(in api.Instance, im *image.Image, volumes []compute.DiskSpec) compute.Spec {
	sp := compute.Spec{Name: in.ID, Profile: compute.Profile(in.Profile), VCPUs: in.VCPUs, MemoryMiB: int(in.Memory >> 20),
		Balloon: in.Balloon, Kernel: im.VmlinuxPath(), Initrd: s.initrdPath(in.ID), Cmdline: applianceCmdline}
	if in.Profile == api.ImageFull {
		sp.Cmdline += " " + image.FullCmdline
		sp.Disks = []compute.DiskSpec{{ID: "root", Path: s.rootPath(in.ID), Format: compute.FormatQcow2}}
	}
	sp.Disks = append(sp.Disks, volumes...)
	sp.NICs = s.nicSpecs(in)
	return sp
}

// launch prepares and (if start) boots a new instance. On any failure everything is rolled
// back: no QEMU left, no driver or boot-file directory, and the record and its quota usage
// removed (an audit record says why), so a failed launch can simply be retried.
func (s *Subsystem) launch(ctx context.Context, in api.Instance, im *image.Image, nets []string, start bool, progress daemon.ProgressFunc) (err error) {
	rv := revert.New()
	defer rv.Fail()
	rv.Add(func() { s.forget(in, err) })
	var disks []compute.DiskSpec
	if len(in.Volumes) > 0 || len(nets) > 0 {
		progress(2, "attaching volumes and NICs")
		if disks, err = s.attachAll(ctx, &in, nets, rv); err != nil {
			return err
		}
		if len(in.NICs) > 0 {
			nics := in.NICs
			if in, err = s.update(ctx, in.Project, in.Name, func(r *api.Instance) { r.NICs = nics }); err != nil {
				return err
			}
		}
	}
	dir := s.filesDir(in.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rv.Add(func() { os.RemoveAll(dir) })
	progress(5, "writing instance config")
	cfg, err := agentConfig(in, im)
	if err != nil {
		return err
	}
	if err := image.WriteInstanceInitrd(im.InitrdPath(), cfg, s.initrdPath(in.ID)); err != nil {
		return err
	}
	if in.Profile == api.ImageFull {
		progress(10, "creating root disk overlay")
		out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", im.DiskPath(), s.rootPath(in.ID)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("root disk overlay: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}
	progress(15, "creating VM")
	if _, err := s.drv.Create(ctx, s.spec(in, im, disks)); err != nil {
		return fmt.Errorf("create VM: %w", err)
	}
	rv.Add(func() {
		bg := context.Background()
		s.dropAgent(in.ID)
		s.drv.Kill(bg, in.ID)
		s.drv.Delete(bg, in.ID)
	})
	if !start {
		if _, err := s.setStatus(ctx, in.Project, in.Name, api.InstanceStopped, "created, not started"); err != nil {
			return err
		}
		rv.Success()
		return nil
	}
	if err := s.boot(ctx, in, progress); err != nil {
		return err
	}
	rv.Success()
	return nil
}

// forget removes the record and usage of a failed launch, with an audit record of why.
func (s *Subsystem) forget(in api.Instance, cause error) {
	ctx := context.Background()
	err := s.d.Store().Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(recordKey(in.Project, in.Name)); err != nil {
			return err
		}
		_, err := daemon.AdjustUsage(tx, in.Project, usageOf(in, -1))
		return err
	})
	if err != nil {
		s.log.Error("rolling back failed launch", "instance", in.Name, "project", in.Project, "err", err)
	}
	detail := "launch failed, instance removed"
	if cause != nil {
		detail += ": " + cause.Error()
	}
	s.d.AuditEvent(ctx, "instance.launch-failed", "instance/"+in.Project+"/"+in.Name, in.Project, api.OutcomeFailed, detail)
	s.d.Publish(lifecycleEvent("instance-deleted", in.Project, instanceSource(in.Project, in.Name), map[string]string{"reason": detail}))
}

// boot starts QEMU and waits for the guest agent. On failure QEMU is killed; the caller
// records the outcome.
func (s *Subsystem) boot(ctx context.Context, in api.Instance, progress daemon.ProgressFunc) error {
	if _, err := s.setStatus(ctx, in.Project, in.Name, api.InstanceStarting, ""); err != nil {
		return err
	}
	progress(30, "starting QEMU ("+s.host.Accel+")")
	if err := s.drv.Start(ctx, in.ID); err != nil {
		return fmt.Errorf("start QEMU: %w", err)
	}
	progress(50, "waiting for the guest agent")
	bctx, cancel := context.WithTimeout(ctx, BootTimeout)
	defer cancel()
	h, err := s.waitAgent(bctx, in.ID)
	if err != nil {
		s.drv.Kill(context.Background(), in.ID)
		return fmt.Errorf("guest agent did not answer within %s: %w (see 'finvirt console %s --show-log%s')", BootTimeout, err, in.Name, projectFlag(in.Project))
	}
	info, _ := s.drv.Info(ctx, in.ID)
	if in.BalloonTarget > 0 && in.Balloon {
		if err := s.drv.Balloon(ctx, in.ID, int(in.BalloonTarget>>20)); err != nil {
			s.log.Warn("balloon target not applied", "instance", in.Name, "err", err)
		}
	}
	_, err = s.update(ctx, in.Project, in.Name, func(r *api.Instance) {
		r.Status, r.StatusReason, r.AgentReady, r.PID, r.Accel = api.InstanceRunning, "", true, info.PID, s.host.Accel
	})
	if err != nil {
		return err
	}
	s.d.Publish(lifecycleEvent("instance-running", in.Project, instanceSource(in.Project, in.Name), map[string]string{"status": api.InstanceRunning, "kernel": h}))
	progress(100, "running; guest agent ready (kernel "+h+")")
	return nil
}

// stop shuts a guest down: the agent's shutdown (workloads get SIGTERM), then the driver's
// ACPI / quit / SIGKILL sequence; force kills at once.
func (s *Subsystem) stop(ctx context.Context, in api.Instance, timeout time.Duration, force bool) error {
	var err error
	if force {
		err = s.drv.Kill(ctx, in.ID)
	} else {
		if st, _ := s.drv.State(ctx, in.ID); st.State == compute.StatePaused {
			// A paused guest cannot run its shutdown: let it continue first.
			s.drv.Resume(ctx, in.ID)
		}
		err = s.drv.Stop(ctx, in.ID, compute.StopOptions{Timeout: timeout, AgentShutdown: func(ctx context.Context) error {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			c, err := s.agentFor(actx, in.ID)
			if err != nil {
				return err
			}
			return c.Shutdown(actx, timeout)
		}})
	}
	s.dropAgent(in.ID)
	if err != nil {
		return err
	}
	st, _ := s.drv.State(ctx, in.ID)
	_, err = s.setStatus(ctx, in.Project, in.Name, api.InstanceStopped, st.Reason)
	return err
}

func (s *Subsystem) handleState(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	var req api.InstanceStatePut
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	if req.Timeout < 0 || req.Timeout > 3600 {
		return daemon.BadRequest("instance %s: timeout %d is out of range: give 0 (30 s default) to 3600 seconds", name, req.Timeout)
	}
	allowed := map[string][]string{
		"start":   {api.InstanceStopped, api.InstanceError},
		"stop":    {api.InstanceRunning, api.InstancePaused, api.InstanceError},
		"restart": {api.InstanceRunning, api.InstancePaused, api.InstanceError, api.InstanceStopped},
		"pause":   {api.InstanceRunning},
		"resume":  {api.InstancePaused},
	}
	from, ok := allowed[req.Action]
	if !ok {
		return daemon.BadRequest("instance %s: action %q is unknown: use start, stop, restart, pause or resume", name, req.Action)
	}
	if !contains(from, in.Status) {
		return daemon.Conflict("instance %s in project %s is %s: cannot %s it (allowed from %s)", name, project, in.Status, req.Action, strings.Join(from, ", "))
	}
	key := recordKey(project, name)
	if !s.acquire(key, req.Action) {
		return busyErr(in, s.busyWith(key))
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusAccepted, func(store.Tx) error { return nil }); err != nil {
		s.release(key)
		return err
	}
	timeout := time.Duration(req.Timeout) * time.Second
	op := s.startOp(strings.ToUpper(req.Action[:1])+req.Action[1:]+" instance "+name, project, map[string]string{"instances": instanceSource(project, name)}, func(ctx context.Context, progress daemon.ProgressFunc) error {
		defer s.release(key)
		var err error
		switch req.Action {
		case "start":
			err = s.startExisting(ctx, in, progress)
		case "stop":
			err = s.stop(ctx, in, timeout, req.Force)
		case "restart":
			if err = s.stop(ctx, in, timeout, req.Force); err == nil {
				err = s.startExisting(ctx, in, progress)
			}
		case "pause":
			if err = s.drv.Pause(ctx, in.ID); err == nil {
				_, err = s.setStatus(ctx, project, name, api.InstancePaused, "paused on request")
			}
		case "resume":
			if err = s.drv.Resume(ctx, in.ID); err == nil {
				_, err = s.setStatus(ctx, project, name, api.InstanceRunning, "")
			}
		}
		if err != nil {
			return fmt.Errorf("%s instance %s: %w", req.Action, name, err)
		}
		return nil
	})
	w.Header().Set("Location", "/1.0/operations/"+op.ID)
	return daemon.WriteJSON(w, http.StatusAccepted, op)
}

// startExisting boots a stopped or failed instance with a fresh instance initrd (the restart
// policy may have changed since the last boot); a failed boot leaves it in error with why.
func (s *Subsystem) startExisting(ctx context.Context, in api.Instance, progress daemon.ProgressFunc) error {
	cur, err := s.getRecord(ctx, in.Project, in.Name)
	if err != nil {
		return err
	}
	im, err := s.images.Get(cur.ImageID)
	if err != nil {
		err = fmt.Errorf("image %s (%.12s) is gone: %w", cur.Image, cur.ImageID, err)
		s.setStatus(context.Background(), in.Project, in.Name, api.InstanceError, err.Error())
		return err
	}
	if err := s.refreshDisks(ctx, cur); err != nil {
		err = fmt.Errorf("instance %s: %w", cur.Name, err)
		s.setStatus(context.Background(), in.Project, in.Name, api.InstanceError, err.Error())
		return err
	}
	if cfg, err := agentConfig(cur, im); err == nil {
		if err := image.WriteInstanceInitrd(im.InitrdPath(), cfg, s.initrdPath(cur.ID)); err != nil {
			return err
		}
	}
	if err := s.boot(ctx, cur, progress); err != nil {
		s.setStatus(context.Background(), in.Project, in.Name, api.InstanceError, err.Error())
		return err
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
