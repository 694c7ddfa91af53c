// Package instances is the daemon subsystem that makes the compute, image and agent libraries
// usable through the API: the host (accelerator) route, the global image store, and
// project-scoped instances (VMs) with their lifecycle, exec, files, console and metrics.
//
// State: instance records live in the daemon store under instances/<project>/<name> (the
// truth for the API and for quotas); the QEMU driver keeps its own per-instance directory
// under <state-dir>/instances/<id>; per-instance boot files (the instance initrd, the root
// disk overlay of full guests) live under <state-dir>/instance-files/<id>. VMs survive
// daemon restarts: Start re-attaches to them, Stop never stops them.
package instances

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/accel"
	_ "github.com/finvirt/finvirt/internal/compute/qemu" // registers the "qemu" driver
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/daemon/pools"
	"github.com/finvirt/finvirt/internal/image"
)

// AgentEnv names the environment variable that points at the finvirt-agent binary built into
// images; default: finvirt-agent next to the running finvirt binary.
const AgentEnv = "FINVIRT_AGENT"

// MonitorInterval is how often the monitor compares the driver's view with the records.
const MonitorInterval = 2 * time.Second

func init() {
	daemon.Register(func(d *daemon.Daemon) (daemon.Subsystem, error) { return New(d), nil })
}

// Subsystem is the images + instances subsystem.
type Subsystem struct {
	d   *daemon.Daemon
	log *slog.Logger

	images *image.Store
	drv    compute.Driver
	host   api.HostInfo
	limits compute.Limits

	imageMu sync.RWMutex // launch (shared) vs image delete (exclusive)

	mu     sync.Mutex
	busy   map[string]string        // instance key -> what is running on it
	agents map[string]*agent.Client // instance id -> connected agent client
	dials  map[string]*sync.Mutex   // instance id -> dial lock
	// consoles records who holds each instance's interactive console (project/name ->
	// identity): QEMU's chardev socket takes one client, and two people typing into one
	// shell is a mistake a bank wants refused by name rather than silently interleaved.
	consoles sync.Map

	ready   chan struct{} // closed when the background start (probe, driver, re-attach) ended
	initErr error

	ops sync.WaitGroup // operations of this subsystem in flight

	ctx    context.Context // ends at Stop: background work (monitor, restarts)
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the subsystem; nothing is opened before Start.
func New(d *daemon.Daemon) *Subsystem {
	return &Subsystem{d: d, log: d.Logger().With("subsystem", "instances"), busy: map[string]string{}, agents: map[string]*agent.Client{}}
}

// Name implements daemon.Subsystem.
func (s *Subsystem) Name() string { return "instances" }

func (s *Subsystem) kernelDir() string {
	if k := s.d.Config().KernelDir; k != "" {
		return k
	}
	return image.KernelDir()
}

// agentBinary is the finvirt-agent built into images: $FINVIRT_AGENT, else finvirt-agent
// beside the running binary (the release layout: /usr/bin/finvirt + /usr/bin/finvirt-agent).
func agentBinary() (string, error) {
	if p := os.Getenv(AgentEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("guest agent %s=%s: %v", AgentEnv, p, err)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(exe), "finvirt-agent")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("guest agent not found at %s: build it with 'CGO_ENABLED=0 go build -o %s ./cmd/finvirt-agent' or set %s", p, p, AgentEnv)
	}
	return p, nil
}

// Start opens the image store and starts, in the background, the accelerator probe (up to
// ~8 s on a host whose /dev/kvm opens but cannot boot a guest), the driver, the re-attach to
// the stored instances and the monitor. The daemon serves meanwhile: reads of records and
// images answer at once, anything that needs the hypervisor waits for that start (ready), so
// a daemon restart does not keep the whole API down for the probe.
func (s *Subsystem) Start(ctx context.Context) error {
	cfg := s.d.Config()
	var err error
	if s.images, err = image.OpenStore(filepath.Join(cfg.StateDir, "images")); err != nil {
		return err
	}
	if err := os.MkdirAll(s.filesDir(""), 0o700); err != nil {
		return err
	}
	if err := pools.SetInstanceHooks(s.d, s.storageHooks()); err != nil {
		return err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ready = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.initErr = s.init(s.ctx)
		if s.initErr != nil {
			s.log.Error("instances unavailable", "err", s.initErr)
		} else {
			s.wg.Add(1)
			go s.monitor()
		}
		close(s.ready)
	}()
	return nil
}

func (s *Subsystem) init(ctx context.Context) error {
	s.host = s.probeHost(ctx)
	if s.host.Accel == accel.TCG {
		s.log.Warn("guests run under TCG (software emulation): expect 10-50x slower guests than with KVM", "reason", s.host.AccelReason)
	}
	drvDir, err := filepath.Abs(filepath.Join(s.d.Config().StateDir, "instances"))
	if err != nil {
		return err
	}
	drv, err := compute.Load("qemu", compute.WithStateDir(drvDir), compute.WithAccel(s.host.Accel))
	if err != nil {
		return err
	}
	if l, ok := drv.(interface{ Limits() compute.Limits }); ok {
		s.limits = l.Limits()
	} else {
		s.limits = compute.Limits{HostCPUs: runtime.NumCPU(), HostMemoryMiB: int(s.host.MemoryBytes >> 20)}
	}
	s.drv = drv
	return s.reattach(ctx)
}

// wait blocks until the background start is done; handlers that need the hypervisor call it.
func (s *Subsystem) wait(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return daemon.Errorf(http.StatusServiceUnavailable, "the daemon is still starting its hypervisor (accelerator probe, re-attach): retry in a few seconds")
	}
	if s.initErr != nil {
		return daemon.Errorf(http.StatusServiceUnavailable, "instances are unavailable on this host: %v", s.initErr)
	}
	return nil
}

// startOp runs fn as a daemon operation that Stop waits for.
func (s *Subsystem) startOp(desc, project string, res map[string]string, fn func(context.Context, daemon.ProgressFunc) error) api.Operation {
	s.ops.Add(1)
	return s.d.StartOperation(desc, project, res, func(ctx context.Context, p daemon.ProgressFunc) error {
		defer s.ops.Done()
		return fn(ctx, p)
	})
}

// Stop ends the monitor and closes control and agent connections. VMs keep running. The
// daemon has cancelled its operations by now; Stop waits (bounded) for ours to finish so a
// cancelled launch rolls back while the store is still open.
func (s *Subsystem) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.wg.Wait()
	done := make(chan struct{})
	go func() { s.ops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.log.Warn("instance operations still running at shutdown")
	}
	s.mu.Lock()
	for id, c := range s.agents {
		c.Close()
		delete(s.agents, id)
	}
	s.mu.Unlock()
	if s.drv != nil {
		s.drv.Close()
	}
}

// probeHost runs the accelerator probe once, with a deadline, and describes the host.
func (s *Subsystem) probeHost(ctx context.Context) api.HostInfo {
	h := api.HostInfo{CPUs: runtime.NumCPU(), MemoryBytes: hostMemory()}
	h.Hostname, _ = os.Hostname()
	// The verdict persists in the state dir: a restart on the same host boot with the same QEMU
	// and kernel skips the probe boot (see accel.Options.CacheFile for what invalidates it).
	opts := accel.Options{Override: s.d.Config().Accel, Deadline: accel.DefaultDeadline,
		CacheFile: filepath.Join(s.d.Config().StateDir, "accel-probe.json")}
	if k, err := image.FindKernel(s.kernelDir()); err == nil {
		h.KernelVersion = k.Version
		if vm, err := image.CachedVmlinux(filepath.Join(s.images.Dir(), "kernels"), k.Vmlinuz); err == nil {
			opts.Kernel = vm
		}
	}
	pctx, cancel := context.WithTimeout(ctx, accel.DefaultDeadline+5*time.Second)
	defer cancel()
	res, err := accel.Probe(pctx, opts)
	if err != nil {
		// Only a bad override errs: run safely under TCG and say why.
		res = accel.Result{Accel: accel.TCG, Reason: err.Error()}
	}
	h.Accel, h.AccelReason, h.AccelWarning, h.AccelCached = res.Accel, res.Reason, res.Warning, res.Cached
	if !res.ProbedAt.IsZero() {
		at := res.ProbedAt.UTC()
		h.AccelProbedAt = &at
	}
	if h.Accel == accel.TCG && h.AccelWarning == "" {
		h.AccelWarning = "guests run under TCG (software emulation, 10-50x slower than KVM): " + res.Reason
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		h.QEMUVersion = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	return h
}

func hostMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
		}
	}
	return kb << 10
}

// filesDir is where the daemon keeps an instance's boot files (outside the driver's dir, which
// the driver owns and removes on Delete).
func (s *Subsystem) filesDir(id string) string {
	return filepath.Join(s.d.Config().StateDir, "instance-files", id)
}

// Routes implements daemon.Subsystem.
func (s *Subsystem) Routes() []*daemon.Route {
	return append(append([]*daemon.Route{
		{Method: "GET", Path: "/1.0/host", Summary: "The hypervisor host: CPUs, memory, accelerator (KVM or TCG) and why", Perm: auth.PermAuthenticated, Reply: api.HostInfo{}, Handler: s.handleHost},
	}, s.imageRoutes()...), append(s.instanceRoutes(), s.attachRoutes()...)...)
}

func (s *Subsystem) handleHost(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, _ *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	return daemon.WriteJSON(w, 200, s.host)
}
