package qemu

// Re-attach to running QEMUs, exit classification and reconciliation of stray instances.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/cgroup"
	"github.com/finvirt/finvirt/internal/compute/qmp"
)

// Attach implements compute.Driver: it loads the instance and, if its QEMU runs, reconnects.
func (d *Driver) Attach(ctx context.Context, name string) (compute.Info, error) {
	in, err := d.get(name)
	if err != nil {
		return compute.Info{}, err
	}
	in.op.Lock()
	defer in.op.Unlock()
	if err := d.refresh(ctx, in); err != nil {
		return compute.Info{}, err
	}
	return d.info(ctx, in), nil
}

// refresh brings the in-memory view in line with reality: it adopts a running QEMU named by
// the pidfile, connects QMP, and detects one that vanished. Caller holds in.op.
func (d *Driver) refresh(ctx context.Context, in *instance) error {
	in.mu.Lock()
	p, c := in.proc, in.qmp
	in.mu.Unlock()
	if p != nil && p.alive() && c != nil && c.Err() == nil {
		return nil
	}
	if p != nil && !p.alive() {
		// Dead but maybe not yet reaped: give our Wait a moment so the exit status is known.
		p.wait(5 * time.Second)
		in.mu.Lock()
		d.exited(in, p)
		in.mu.Unlock()
		return nil
	}
	if p == nil {
		pid := readPIDFile(in.l.PIDFile)
		if pid == 0 {
			in.mu.Lock()
			if active(in.status.State) {
				// QEMU deletes its pidfile when it exits normally (guest poweroff, quit).
				in.setStatus(compute.StateStopped, "QEMU exited while no driver was attached")
			}
			in.mu.Unlock()
			return nil
		}
		if !isOurQEMU(pid, in.l.Dir) {
			in.mu.Lock()
			if in.status.State != compute.StateError {
				in.setStatus(compute.StateError, fmt.Sprintf("QEMU (pid %d from %s) vanished without a clean exit (killed or crashed)%s", pid, in.l.PIDFile, tailSuffix(in.l.QEMULog)))
			}
			os.Remove(in.l.PIDFile)
			in.mu.Unlock()
			return nil
		}
		p = attachProcess(pid, in.l.Dir)
		in.mu.Lock()
		in.proc = p
		in.mu.Unlock()
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := qmp.Dial(cctx, in.l.QMP)
	if err != nil {
		return fmt.Errorf("instance %q: QEMU pid %d runs but its QMP socket does not answer (is another driver attached? close it first): %w", in.name, p.pid, err)
	}
	d.adopt(in, p, c)
	st, err := queryStatus(ctx, c)
	if err != nil {
		return err
	}
	if st == compute.StateStarting {
		// Still held at -S: the driver that launched it died before placing it in its cgroups
		// and continuing it. Half-started is not a state to keep: end it, report why.
		in.mu.Lock()
		in.expectExit = true
		in.mu.Unlock()
		p.kill()
		p.wait(30 * time.Second)
		in.mu.Lock()
		d.exited(in, p)
		in.expectExit = false
		in.setStatus(compute.StateError, "start was interrupted before the guest ran (driver restarted during start); start it again")
		in.mu.Unlock()
		return nil
	}
	in.mu.Lock()
	if in.status.State != st {
		in.setStatus(st, "re-attached")
	}
	in.mu.Unlock()
	return nil
}

func tailSuffix(log string) string {
	if t := logTail(log, 2); t != "" {
		return "; qemu.log: " + t
	}
	return ""
}

func active(s compute.State) bool {
	switch s {
	case compute.StateStarting, compute.StateRunning, compute.StatePaused, compute.StateStopping:
		return true
	}
	return false
}

// adopt installs a QMP connection and starts the exit watcher for it.
func (d *Driver) adopt(in *instance, p *proc, c *qmp.Client) {
	in.mu.Lock()
	in.proc, in.qmp = p, c
	in.mu.Unlock()
	sub := c.Subscribe("SHUTDOWN")
	go func() {
		for ev := range sub.Events() {
			var data struct {
				Reason string `json:"reason"`
			}
			json.Unmarshal(ev.Data, &data)
			in.mu.Lock()
			in.shutdown = data.Reason
			in.mu.Unlock()
		}
		// The connection ended: either QEMU is exiting, or we closed it (driver Close).
		if !p.wait(30 * time.Second) {
			return // still running: only our connection went away
		}
		in.mu.Lock()
		if in.proc == p {
			d.exited(in, p)
		}
		in.mu.Unlock()
	}()
}

// exited records the end of p. Caller holds in.mu.
func (d *Driver) exited(in *instance, p *proc) {
	if in.proc != p {
		return
	}
	if in.qmp != nil {
		in.qmp.Close()
	}
	in.proc, in.qmp = nil, nil
	if in.cg != nil {
		in.cg.Remove()
		in.cg = nil
	}
	stopTPM(in.l)
	switch {
	case in.expectExit:
		// The operation that ended QEMU sets the final state itself.
	case in.shutdown != "":
		in.setStatus(compute.StateStopped, "guest shut down ("+in.shutdown+")")
	default:
		st := p.exitStatus
		if st == "" {
			st = "exit status unknown (not our child)"
		}
		in.setStatus(compute.StateError, fmt.Sprintf("QEMU (pid %d) exited unexpectedly: %s%s", p.pid, st, tailSuffix(in.l.QEMULog)))
	}
	in.shutdown = ""
	in.l.removeRuntime()
}

func queryStatus(ctx context.Context, c *qmp.Client) (compute.State, error) {
	var st struct {
		Status string `json:"status"`
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.ExecuteInto(cctx, "query-status", nil, &st); err != nil {
		return "", err
	}
	switch st.Status {
	case "running":
		return compute.StateRunning, nil
	case "prelaunch", "inmigrate":
		return compute.StateStarting, nil
	case "shutdown":
		return compute.StateStopping, nil
	default: // paused, suspended, debug, io-error, ...
		return compute.StatePaused, nil
	}
}

// Reconcile implements compute.Driver.
func (d *Driver) Reconcile(ctx context.Context, known []string) ([]string, error) {
	keep := map[string]bool{}
	for _, k := range known {
		keep[k] = true
	}
	names, err := d.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, n := range names {
		if keep[n] {
			continue
		}
		dir := d.dir(n)
		// Kill by pidfile without trusting anything else in the directory.
		if pid := readPIDFile(filepath.Join(dir, "qemu.pid")); pid != 0 && isOurQEMU(pid, dir) {
			p := attachProcess(pid, dir)
			p.kill()
			if !p.wait(30 * time.Second) {
				errs = append(errs, fmt.Errorf("reconcile %q: QEMU pid %d did not die", n, pid))
				continue
			}
		}
		stopTPM(NewLayout(dir, ""))
		d.mu.Lock()
		if in := d.insts[n]; in != nil {
			in.mu.Lock()
			in.expectExit = true
			if in.qmp != nil {
				in.qmp.Close()
			}
			in.proc, in.qmp = nil, nil
			in.mu.Unlock()
			delete(d.insts, n)
		}
		d.mu.Unlock()
		cgroup.Cleanup(d.opts.CgroupParent, n)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, n)
	}
	return removed, errors.Join(errs...)
}
