package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/cgroup"
	"github.com/finvirt/finvirt/internal/compute/qmp"
	"github.com/finvirt/finvirt/internal/revert"
)

// DefaultStopTimeout is how long a graceful stop waits for the guest at each polite step.
const DefaultStopTimeout = 30 * time.Second

// startTimeout bounds the wait for QMP after launching QEMU (a loaded 2-core host can be slow).
const startTimeout = 60 * time.Second

func (d *Driver) lockedInstance(ctx context.Context, name string) (*instance, func(), error) {
	in, err := d.get(name)
	if err != nil {
		return nil, nil, err
	}
	in.op.Lock()
	if err := d.refresh(ctx, in); err != nil {
		in.op.Unlock()
		return nil, nil, err
	}
	return in, in.op.Unlock, nil
}

func (in *instance) snapshot() (compute.State, *proc, *qmp.Client) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status.State, in.proc, in.qmp
}

// Start implements compute.Driver.
func (d *Driver) Start(ctx context.Context, name string) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	st, _, _ := in.snapshot()
	if st != compute.StateStopped && st != compute.StateError {
		return fmt.Errorf("%w: instance %q is %s; only a stopped instance can be started", compute.ErrState, name, st)
	}
	if err := d.start(ctx, in); err != nil {
		in.mu.Lock()
		in.setStatus(compute.StateError, "start failed: "+err.Error())
		in.mu.Unlock()
		return fmt.Errorf("start instance %q: %w", name, err)
	}
	return nil
}

func (d *Driver) start(ctx context.Context, in *instance) error {
	spec, l := in.spec, in.l
	if err := checkFiles(spec); err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	l.removeRuntime()
	in.mu.Lock()
	in.expectExit, in.killed, in.shutdown = false, false, ""
	in.setStatus(compute.StateStarting, "")
	in.mu.Unlock()

	// Disk keys reach QEMU through inherited pipes (fd 3, 4, ...) named by -object secret
	// file=/proc/self/fd/N: never in argv, never in a file. Hot-plugged disks use QMP object-add.
	var extra []*os.File
	fds := map[string]int{}
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()
	for _, disk := range spec.Disks {
		if disk.Secret == nil {
			continue
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		_, werr := pw.Write(disk.Secret.Key)
		pw.Close()
		if werr != nil {
			pr.Close()
			return werr
		}
		fds[disk.Secret.ID] = 3 + len(extra)
		extra = append(extra, pr)
	}
	// Taps in another network namespace are opened there and inherited (fd N, -netdev
	// tap,fd=N): QEMU could only open them by name in its own namespace.
	for _, nic := range spec.NICs {
		if nic.NetNS == "" {
			continue
		}
		f, err := openTap(nic.NetNS, nic.Tap)
		if err != nil {
			return fmt.Errorf("nic %s: %w", nic.ID, err)
		}
		fds[tapFDKey(nic.ID)] = 3 + len(extra)
		extra = append(extra, f)
	}
	if spec.TPM != nil {
		if err := startTPM(ctx, l); err != nil {
			return err
		}
		r.Add(func() { stopTPM(l) })
	}
	args, err := BuildArgs(spec, l, d.opts.Accel, fds)
	if err != nil {
		return err
	}
	p, err := startProcess(d.bin, args, l, extra)
	if err != nil {
		return err
	}
	r.Add(func() {
		in.mu.Lock()
		in.expectExit = true
		in.mu.Unlock()
		p.kill()
		p.wait(30 * time.Second)
		l.removeRuntime()
	})
	c, err := waitQMP(ctx, l, p)
	if err != nil {
		return err
	}
	r.Add(func() { c.Close() })
	if spec.CPUSet != "" || spec.CPUWeight != 0 {
		// QEMU is held at -S: no guest instruction has run when it joins its cgroup.
		g, err := cgroup.New(d.opts.CgroupParent, in.name, cgroup.Config{CPUSet: spec.CPUSet, Shares: spec.CPUWeight})
		if err != nil {
			return err
		}
		r.Add(func() { g.Remove() })
		if err := g.Add(p.pid); err != nil {
			return err
		}
		in.mu.Lock()
		in.cg = g
		in.mu.Unlock()
	}
	d.adopt(in, p, c)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Execute(cctx, "cont", nil); err != nil {
		return err
	}
	in.mu.Lock()
	in.setStatus(compute.StateRunning, "started")
	in.mu.Unlock()
	r.Success()
	return nil
}

// waitQMP polls for the QMP socket until QEMU answers, exits, or the start deadline passes.
func waitQMP(ctx context.Context, l Layout, p *proc) (*qmp.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if !p.alive() {
			p.wait(2 * time.Second)
			return nil, fmt.Errorf("QEMU exited during start (%s): %s", p.exitStatus, logTail(l.QEMULog, 3))
		}
		if _, err := os.Stat(l.QMP); err == nil {
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := qmp.Dial(dctx, l.QMP)
			dcancel()
			if err == nil {
				return c, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("QEMU pid %d: QMP socket %s not ready: %w", p.pid, l.QMP, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop implements compute.Driver: agent shutdown (if given) -> ACPI power button -> QMP quit
// -> SIGKILL of the process group, each polite step bounded by opts.Timeout.
func (d *Driver) Stop(ctx context.Context, name string, opts compute.StopOptions) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	return d.stop(ctx, in, opts)
}

func (d *Driver) stop(ctx context.Context, in *instance, opts compute.StopOptions) error {
	st, p, c := in.snapshot()
	if p == nil {
		return nil // already stopped (or failed): nothing runs
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	in.mu.Lock()
	in.expectExit, in.killed = true, false
	in.setStatus(compute.StateStopping, "")
	in.mu.Unlock()

	how := ""
	if opts.AgentShutdown != nil && st == compute.StateRunning {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := opts.AgentShutdown(actx)
		cancel()
		if err == nil && p.wait(timeout) {
			how = "guest agent shutdown"
		}
	}
	// A paused guest cannot see the power button; go straight to quit.
	if how == "" && c != nil && st == compute.StateRunning && pressPowerButton(ctx, c, p, timeout) {
		how = "ACPI power button"
	}
	if how == "" && c != nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c.Execute(cctx, "quit", nil)
		cancel()
		if p.wait(10 * time.Second) {
			how = "QMP quit"
		}
	}
	if how == "" {
		if err := p.kill(); err != nil {
			return err
		}
		if !p.wait(30 * time.Second) {
			return fmt.Errorf("instance %q: QEMU pid %d survived SIGKILL for 30 s", in.name, p.pid)
		}
		how = "SIGKILL after the guest ignored shutdown"
	}
	in.mu.Lock()
	d.exited(in, p)
	if in.killed {
		how = "killed on request during a graceful stop"
	}
	in.setStatus(compute.StateStopped, "stopped ("+how+")")
	in.expectExit, in.killed = false, false
	in.mu.Unlock()
	return nil
}

// Kill implements compute.Driver. It does not wait for an operation in progress: killing a
// guest whose graceful stop hangs is what Kill is for. The interrupted operation sees QEMU exit
// and records the outcome.
func (d *Driver) Kill(ctx context.Context, name string) error {
	in, err := d.get(name)
	if err != nil {
		return err
	}
	if !in.op.TryLock() {
		in.mu.Lock()
		in.expectExit, in.killed = true, true
		p := in.proc
		in.mu.Unlock()
		if p == nil {
			return nil
		}
		if err := p.kill(); err != nil {
			return err
		}
		if !p.wait(30 * time.Second) {
			return fmt.Errorf("instance %q: QEMU pid %d survived SIGKILL for 30 s", name, p.pid)
		}
		return nil
	}
	defer in.op.Unlock()
	if err := d.refresh(ctx, in); err != nil {
		return err
	}
	_, p, _ := in.snapshot()
	if p == nil {
		return nil
	}
	in.mu.Lock()
	in.expectExit = true
	in.mu.Unlock()
	if err := p.kill(); err != nil {
		return err
	}
	if !p.wait(30 * time.Second) {
		return fmt.Errorf("instance %q: QEMU pid %d survived SIGKILL for 30 s", name, p.pid)
	}
	in.mu.Lock()
	d.exited(in, p)
	in.setStatus(compute.StateStopped, "killed on request")
	in.expectExit = false
	in.mu.Unlock()
	return nil
}

// Restart implements compute.Driver.
func (d *Driver) Restart(ctx context.Context, name string, opts compute.StopOptions) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.stop(ctx, in, opts); err != nil {
		return err
	}
	if err := d.start(ctx, in); err != nil {
		in.mu.Lock()
		in.setStatus(compute.StateError, "restart failed: "+err.Error())
		in.mu.Unlock()
		return fmt.Errorf("restart instance %q: %w", name, err)
	}
	return nil
}

// Pause implements compute.Driver (QMP stop: vCPUs and the guest clock halt).
func (d *Driver) Pause(ctx context.Context, name string) error {
	return d.runControl(ctx, name, compute.StateRunning, "stop", compute.StatePaused)
}

// Resume implements compute.Driver (QMP cont).
func (d *Driver) Resume(ctx context.Context, name string) error {
	return d.runControl(ctx, name, compute.StatePaused, "cont", compute.StateRunning)
}

func (d *Driver) runControl(ctx context.Context, name string, from compute.State, cmd string, to compute.State) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	st, _, c := in.snapshot()
	if st == to {
		return nil
	}
	if st != from || c == nil {
		return fmt.Errorf("%w: instance %q is %s; %s needs it %s", compute.ErrState, name, st, cmd, from)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := c.Execute(cctx, cmd, nil); err != nil {
		return fmt.Errorf("instance %q: %w", name, err)
	}
	in.mu.Lock()
	in.setStatus(to, "")
	in.mu.Unlock()
	return nil
}

// Balloon implements compute.Driver.
func (d *Driver) Balloon(ctx context.Context, name string, targetMiB int) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	if !in.spec.Balloon {
		return fmt.Errorf("%w: instance %q has no balloon device; create it with balloon: true", compute.ErrNotSupported, name)
	}
	if targetMiB < compute.MinMemoryMiB || targetMiB > in.spec.MemoryMiB {
		return fmt.Errorf("%w: instance %q: balloon target %d MiB out of range %d..%d (its memory_mib)", compute.ErrInvalid, name, targetMiB, compute.MinMemoryMiB, in.spec.MemoryMiB)
	}
	st, _, c := in.snapshot()
	if c == nil || (st != compute.StateRunning && st != compute.StatePaused) {
		return fmt.Errorf("%w: instance %q is %s; the balloon needs it running", compute.ErrState, name, st)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = c.Execute(cctx, "balloon", map[string]any{"value": int64(targetMiB) << 20})
	return err
}

func queryBalloon(ctx context.Context, c *qmp.Client) (int, error) {
	var b struct {
		Actual int64 `json:"actual"`
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.ExecuteInto(cctx, "query-balloon", nil, &b); err != nil {
		var qe *qmp.Error
		if errors.As(err, &qe) {
			return 0, err
		}
		return 0, err
	}
	return int(b.Actual >> 20), nil
}

// powerButtonRepeat is how often the power button is pressed again while waiting: a guest can
// miss a press (one that arrives while it is still booting, or one lost in the microvm GED
// path, seen about 1 in 10 here), and pressing again is what a person would do.
const powerButtonRepeat = 3 * time.Second

// pressPowerButton sends ACPI power button presses until QEMU exits or timeout passes.
func pressPowerButton(ctx context.Context, c *qmp.Client, p *proc, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Execute(cctx, "system_powerdown", nil)
		cancel()
		if err != nil {
			return p.wait(5 * time.Second) // QMP gone: QEMU is probably exiting
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		if p.wait(min(left, powerButtonRepeat)) {
			return true
		}
	}
}
