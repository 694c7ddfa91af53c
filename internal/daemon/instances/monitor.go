package instances

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
)

// reattach runs at daemon start: every stored instance is re-attached to its QEMU (which
// kept running while the daemon was down), vanished or crashed ones are marked error with the
// driver's reason and handed to their restart policy, and driver directories the store does
// not know (deleted while the daemon was down) are removed with their processes.
func (s *Subsystem) reattach(ctx context.Context) error {
	recs, err := s.listRecords(ctx, "")
	if err != nil {
		return err
	}
	known := make([]string, 0, len(recs))
	for _, in := range recs {
		known = append(known, in.ID)
		info, err := s.drv.Attach(ctx, in.ID)
		if errors.Is(err, compute.ErrNotFound) {
			reason := "the VM's state directory vanished while the daemon was down: delete the instance and launch it again"
			if in.Status == api.InstanceCreating {
				reason = "the daemon stopped during the launch, before the VM was created: delete the instance and launch it again"
			}
			s.markError(in, reason, false)
			continue
		}
		if err != nil {
			s.markError(in, "re-attach failed: "+err.Error(), true)
			continue
		}
		switch info.Status.State {
		case compute.StateRunning, compute.StatePaused:
			st := api.InstanceRunning
			if info.Status.State == compute.StatePaused {
				st = api.InstancePaused
			}
			s.update(ctx, in.Project, in.Name, func(r *api.Instance) { r.Status, r.StatusReason, r.PID = st, "", info.PID })
			s.wg.Add(1)
			go func(in api.Instance) { // the agent answers only once the guest runs
				defer s.wg.Done()
				actx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
				defer cancel()
				if _, err := s.waitAgent(actx, in.ID); err == nil {
					s.update(context.Background(), in.Project, in.Name, func(r *api.Instance) { r.AgentReady = true })
				}
			}(in)
			s.log.Info("re-attached instance", "instance", in.Name, "project", in.Project, "pid", info.PID)
		case compute.StateError:
			s.markError(in, info.Status.Reason, true)
		default: // stopped (or a start that never completed)
			if in.Status == api.InstanceStopped {
				continue
			}
			reason := info.Status.Reason
			if reason == "" {
				reason = "QEMU exited while the daemon was down"
			}
			s.setStatus(ctx, in.Project, in.Name, api.InstanceStopped, reason)
			if in.Restart == api.RestartAlways {
				s.autoRestart(in, reason)
			}
		}
	}
	removed, err := s.drv.Reconcile(ctx, known)
	if err != nil {
		s.log.Warn("reconcile of VM directories failed", "err", err)
	}
	for _, id := range removed {
		s.log.Warn("removed stray VM unknown to the state store", "id", id)
		s.d.AuditEvent(ctx, "instance.stray-removed", "vm/"+id, "", api.OutcomeSuccess, "VM directory and process not in the state store (deleted while the daemon was down)")
	}
	s.removeStrayFiles(known)
	return nil
}

func (s *Subsystem) removeStrayFiles(known []string) {
	keep := map[string]bool{}
	for _, id := range known {
		keep[id] = true
	}
	ents, _ := os.ReadDir(s.filesDir(""))
	for _, e := range ents {
		if !keep[e.Name()] {
			os.RemoveAll(s.filesDir(e.Name()))
		}
	}
}

// markError records a crash (audit + lifecycle event) and applies the restart policy when
// the failure is one a restart can fix.
func (s *Subsystem) markError(in api.Instance, reason string, restartable bool) {
	ctx := context.Background()
	if _, err := s.setStatusIf(ctx, in, api.InstanceError, reason); err != nil {
		return
	}
	s.dropAgent(in.ID)
	s.d.AuditEvent(ctx, "instance.crashed", "instance/"+in.Project+"/"+in.Name, in.Project, api.OutcomeFailed, reason)
	s.log.Warn("instance failed", "instance", in.Name, "project", in.Project, "reason", reason)
	if restartable && (in.Restart == api.RestartOnFailure || in.Restart == api.RestartAlways) {
		s.autoRestart(in, reason)
	}
}

// autoRestart boots an instance again as its restart policy says, as an operation (visible in
// 'finvirt operation list') audited as the daemon's own action. A restart that fails leaves
// the instance in error, and the monitor only acts on transitions, so a guest that cannot
// boot is not restarted in a loop.
func (s *Subsystem) autoRestart(in api.Instance, cause string) {
	key := recordKey(in.Project, in.Name)
	if !s.acquire(key, "restart by policy") {
		return
	}
	s.startOp("Restarting instance "+in.Name+" (restart policy "+in.Restart+")", in.Project, map[string]string{"instances": instanceSource(in.Project, in.Name)}, func(ctx context.Context, progress daemon.ProgressFunc) error {
		defer s.release(key)
		cur, err := s.update(ctx, in.Project, in.Name, func(r *api.Instance) { r.Restarts++ })
		if err != nil {
			return err
		}
		err = s.startExisting(ctx, cur, progress)
		outcome, detail := api.OutcomeSuccess, fmt.Sprintf("restart policy %s after: %s (restart %d)", in.Restart, cause, cur.Restarts)
		if err != nil {
			outcome, detail = api.OutcomeFailed, detail+": "+err.Error()
		}
		s.d.AuditEvent(context.Background(), "instance.restarted", "instance/"+in.Project+"/"+in.Name, in.Project, outcome, detail)
		s.d.Publish(lifecycleEvent("instance-restarted", in.Project, instanceSource(in.Project, in.Name), map[string]string{"outcome": outcome, "detail": detail}))
		return err
	})
}

// monitor compares, every MonitorInterval, each idle instance's record with the driver's
// view: a QEMU that died is a crash (error + reason, restart policy), a guest that powered
// itself off is stopped (restarted only by "always").
func (s *Subsystem) monitor() {
	defer s.wg.Done()
	t := time.NewTicker(MonitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		recs, err := s.listRecords(s.ctx, "")
		if err != nil {
			continue
		}
		for _, in := range recs {
			if s.ctx.Err() != nil {
				return
			}
			if s.busyWith(recordKey(in.Project, in.Name)) != "" || (in.Status != api.InstanceRunning && in.Status != api.InstancePaused) {
				continue
			}
			st, err := s.drv.State(s.ctx, in.ID)
			if err != nil && !errors.Is(err, compute.ErrNotFound) {
				continue
			}
			// Re-check: an operation may have begun while we asked the driver.
			if s.busyWith(recordKey(in.Project, in.Name)) != "" {
				continue
			}
			switch {
			case errors.Is(err, compute.ErrNotFound):
				s.markError(in, "the VM's state directory vanished", false)
			case st.State == compute.StateError:
				s.markError(in, st.Reason, true)
			case st.State == compute.StateStopped:
				if _, err := s.setStatusIf(context.Background(), in, api.InstanceStopped, st.Reason); err != nil {
					continue
				}
				s.dropAgent(in.ID)
				if in.Restart == api.RestartAlways {
					s.autoRestart(in, st.Reason)
				}
			case st.State == compute.StatePaused && in.Status == api.InstanceRunning:
				s.setStatusIf(context.Background(), in, api.InstancePaused, st.Reason)
			case st.State == compute.StateRunning && in.Status == api.InstancePaused:
				s.setStatusIf(context.Background(), in, api.InstanceRunning, "")
			}
		}
	}
}
