// Package qemu is the QEMU driver of finvirt's compute layer: it runs each instance as a
// detached qemu-system-x86_64 process controlled over QMP, with all state in one directory
// per instance so that a restarted daemon re-attaches to running guests. See docs/compute.md.
package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/cgroup"
	"github.com/finvirt/finvirt/internal/compute/qmp"
	"github.com/finvirt/finvirt/internal/revert"
)

func init() {
	compute.Register("qemu", func(opts ...compute.Option) (compute.Driver, error) { return New(opts...) })
}

// Driver implements compute.Driver with QEMU.
type Driver struct {
	opts   compute.Options
	bin    string
	limits compute.Limits

	mu    sync.Mutex
	insts map[string]*instance
}

var _ compute.Driver = (*Driver)(nil)

// New returns a QEMU driver. It touches no instance: they are re-attached on first use.
func New(opts ...compute.Option) (*Driver, error) {
	var o compute.Options
	for _, f := range opts {
		f(&o)
	}
	if o.StateDir == "" {
		return nil, errors.New("qemu driver: state directory not set; pass compute.WithStateDir")
	}
	if !filepath.IsAbs(o.StateDir) {
		return nil, fmt.Errorf("qemu driver: state directory %q must be absolute", o.StateDir)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("qemu driver: %w", err)
	}
	switch o.Accel {
	case "":
		// TCG unless told otherwise: KVM must be proven by accel.Probe (a device node that
		// opens is not enough on nested or PVM hosts).
		o.Accel = "tcg"
	case "tcg", "kvm":
	default:
		return nil, fmt.Errorf("qemu driver: accelerator %q is unknown; use kvm or tcg", o.Accel)
	}
	bin := o.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	if o.CgroupParent == "" {
		o.CgroupParent = "finvirt"
	}
	lim := compute.Limits{HostCPUs: o.HostCPUs, HostMemoryMiB: o.HostMemoryMiB}
	if lim.HostCPUs == 0 {
		lim.HostCPUs = runtime.NumCPU()
	}
	if lim.HostMemoryMiB == 0 {
		lim.HostMemoryMiB = hostMemoryMiB()
	}
	return &Driver{opts: o, bin: bin, limits: lim, insts: map[string]*instance{}}, nil
}

func hostMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	return 0
}

// Name implements compute.Driver.
func (d *Driver) Name() string { return "qemu" }

// Limits reports the host limits specs are validated against.
func (d *Driver) Limits() compute.Limits { return d.limits }

// instance is the in-memory handle of one instance directory. op serialises lifecycle
// operations; mu guards the fields, which the exit watcher also updates.
type instance struct {
	op sync.Mutex

	mu     sync.Mutex
	name   string
	l      Layout
	spec   compute.Spec
	status compute.Status
	proc   *proc
	qmp    *qmp.Client
	// expectExit is set by an operation that ends QEMU itself (stop, kill), so the exit
	// watcher does not report the exit as a failure.
	expectExit bool
	killed     bool   // Kill interrupted the operation in progress
	shutdown   string // reason of the last SHUTDOWN event
	cg         *cgroup.Group
}

type persisted struct {
	compute.Status
	PID   int    `json:"pid,omitempty"`
	Accel string `json:"accel,omitempty"`
}

func (d *Driver) dir(name string) string { return filepath.Join(d.opts.StateDir, name) }

// get returns the instance handle, loading it from disk when this driver has not seen it.
func (d *Driver) get(name string) (*instance, error) {
	if err := compute.ValidateName(name); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if in := d.insts[name]; in != nil {
		return in, nil
	}
	dir := d.dir(name)
	b, err := os.ReadFile(filepath.Join(dir, "spec.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q (no %s)", compute.ErrNotFound, name, dir)
	}
	if err != nil {
		return nil, err
	}
	var spec compute.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("instance %q: corrupt %s/spec.json: %w", name, dir, err)
	}
	in := &instance{name: name, spec: spec, l: NewLayout(dir, spec.SerialLog)}
	in.status = compute.Status{State: compute.StateStopped, Since: time.Now()}
	if b, err := os.ReadFile(in.l.Status); err == nil {
		var p persisted
		if json.Unmarshal(b, &p) == nil {
			in.status = p.Status
		}
	}
	d.insts[name] = in
	return in, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// setStatus records a state change in memory and in status.json. Caller holds in.mu.
func (in *instance) setStatus(st compute.State, reason string) {
	in.status = compute.Status{State: st, Reason: reason, Since: time.Now().UTC()}
	p := persisted{Status: in.status}
	if in.proc != nil {
		p.PID = in.proc.pid
	}
	b, _ := json.Marshal(p)
	writeFileAtomic(in.l.Status, b, 0o600)
}

func (in *instance) saveSpec() error {
	b, err := json.MarshalIndent(in.spec, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(in.l.Spec, b, 0o600)
}

// checkFiles verifies that the files a spec references exist, so Create fails early with a
// precise error instead of QEMU failing at Start.
func checkFiles(spec compute.Spec) error {
	check := func(what, p string) error {
		if p == "" {
			return nil
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: instance %q: %s %s: %v", compute.ErrInvalid, spec.Name, what, p, err)
		}
		return nil
	}
	for _, f := range []struct{ what, p string }{{"kernel", spec.Kernel}, {"initrd", spec.Initrd}, {"firmware", spec.Firmware}, {"firmware_vars", spec.FirmwareVars}} {
		if err := check(f.what, f.p); err != nil {
			return err
		}
	}
	for _, disk := range spec.Disks {
		if err := check("disk "+disk.ID, disk.Path); err != nil {
			return err
		}
	}
	return nil
}

func (d *Driver) validate(spec compute.Spec) error {
	if err := compute.Validate(spec, d.limits); err != nil {
		return err
	}
	if d.opts.NoCgroups && (spec.CPUSet != "" || spec.CPUWeight != 0) {
		return fmt.Errorf("%w: instance %q: cpuset and cpu_weight need cgroups, which this driver was built without", compute.ErrInvalid, spec.Name)
	}
	return checkFiles(spec)
}

// Create implements compute.Driver.
func (d *Driver) Create(ctx context.Context, spec compute.Spec) (compute.Info, error) {
	if err := d.validate(spec); err != nil {
		return compute.Info{}, err
	}
	dir := d.dir(spec.Name)
	r := revert.New()
	defer r.Fail()
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return compute.Info{}, fmt.Errorf("%w: %q (%s exists); delete it first or pick another name", compute.ErrExists, spec.Name, dir)
		}
		return compute.Info{}, err
	}
	r.Add(func() { os.RemoveAll(dir) })
	in := &instance{name: spec.Name, spec: spec, l: NewLayout(dir, spec.SerialLog)}
	in.mu.Lock()
	in.setStatus(compute.StateCreating, "")
	in.mu.Unlock()
	if spec.Profile == compute.ProfileFull && spec.Kernel == "" {
		src := spec.FirmwareVars
		if src == "" {
			src = DefaultFirmwareVars
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return compute.Info{}, fmt.Errorf("instance %q: UEFI variable template: %w (install ovmf or set firmware_vars)", spec.Name, err)
		}
		if err := os.WriteFile(in.l.Vars, b, 0o600); err != nil {
			return compute.Info{}, err
		}
	}
	if spec.TPM != nil {
		if err := os.Mkdir(in.l.TPMDir, 0o700); err != nil {
			return compute.Info{}, err
		}
	}
	if err := in.saveSpec(); err != nil {
		return compute.Info{}, err
	}
	in.mu.Lock()
	in.setStatus(compute.StateStopped, "created")
	in.mu.Unlock()
	d.mu.Lock()
	if d.insts[spec.Name] != nil {
		d.mu.Unlock()
		return compute.Info{}, fmt.Errorf("%w: %q", compute.ErrExists, spec.Name)
	}
	d.insts[spec.Name] = in
	d.mu.Unlock()
	r.Success()
	return d.info(ctx, in), nil
}

// List implements compute.Driver.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(d.opts.StateDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && compute.ValidateName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// State implements compute.Driver.
func (d *Driver) State(ctx context.Context, name string) (compute.Status, error) {
	in, err := d.get(name)
	if err != nil {
		return compute.Status{}, err
	}
	// While a long operation (a graceful stop can take a minute) holds the instance, report
	// the state it has set ("stopping", "starting") instead of blocking a monitoring caller.
	if !in.op.TryLock() {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.status, nil
	}
	defer in.op.Unlock()
	if err := d.refresh(ctx, in); err != nil {
		return compute.Status{}, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.status, nil
}

// Info implements compute.Driver.
func (d *Driver) Info(ctx context.Context, name string) (compute.Info, error) {
	in, err := d.get(name)
	if err != nil {
		return compute.Info{}, err
	}
	if !in.op.TryLock() {
		return d.info(ctx, in), nil // busy: the current view, as State does
	}
	defer in.op.Unlock()
	if err := d.refresh(ctx, in); err != nil {
		return compute.Info{}, err
	}
	return d.info(ctx, in), nil
}

func (d *Driver) info(ctx context.Context, in *instance) compute.Info {
	in.mu.Lock()
	info := compute.Info{
		Name: in.name, Status: in.status, Spec: in.spec.Redacted(), Dir: in.l.Dir, Accel: d.opts.Accel,
		QMPSocket: in.l.QMP, AgentSocket: in.l.Agent, ConsoleSocket: in.l.Console, SerialLog: in.l.SerialLog,
	}
	if in.proc != nil {
		info.PID = in.proc.pid
	}
	c, balloon := in.qmp, in.spec.Balloon
	in.mu.Unlock()
	if c != nil && balloon {
		if mib, err := queryBalloon(ctx, c); err == nil {
			info.BalloonActualMiB = mib
		}
	}
	return info
}

// Delete implements compute.Driver.
func (d *Driver) Delete(ctx context.Context, name string) error {
	in, err := d.get(name)
	if err != nil {
		return err
	}
	in.op.Lock()
	defer in.op.Unlock()
	if err := d.refresh(ctx, in); err != nil {
		return err
	}
	in.mu.Lock()
	st := in.status.State
	in.mu.Unlock()
	if active(st) {
		return fmt.Errorf("%w: instance %q is %s; stop or kill it before deleting", compute.ErrState, name, st)
	}
	if err := os.RemoveAll(in.l.Dir); err != nil {
		return fmt.Errorf("delete instance %q: %w", name, err)
	}
	d.mu.Lock()
	delete(d.insts, name)
	d.mu.Unlock()
	return nil
}

// Close implements compute.Driver: QMP connections are closed, QEMUs keep running.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, in := range d.insts {
		in.mu.Lock()
		if in.qmp != nil {
			in.qmp.Close()
		}
		in.qmp = nil
		in.proc = nil
		in.mu.Unlock()
	}
	d.insts = map[string]*instance{}
	return nil
}
