package compute

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Driver runs instances on one host. Every method is safe for concurrent use. Instances outlive
// the Driver value and the process that created it: a new Driver over the same state directory
// re-attaches to them (Attach, or implicitly on first use of a name).
type Driver interface {
	// Name is the registry name of the driver ("qemu").
	Name() string

	// Create validates spec and prepares the instance (state directory, firmware variables);
	// nothing runs yet. On error nothing is left behind.
	Create(ctx context.Context, spec Spec) (Info, error)
	// Start boots a stopped (or failed) instance and returns once the guest runs.
	Start(ctx context.Context, name string) error
	// Stop shuts the guest down gracefully: opts.AgentShutdown, else ACPI power button, then
	// after opts.Timeout a hypervisor quit and finally SIGKILL of the process group.
	Stop(ctx context.Context, name string, opts StopOptions) error
	// Kill ends the hypervisor at once (SIGKILL of its process group).
	Kill(ctx context.Context, name string) error
	// Restart is Stop followed by Start.
	Restart(ctx context.Context, name string, opts StopOptions) error
	// Pause freezes the vCPUs (the guest clock stops); Resume continues them.
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	// Delete removes a stopped instance and its state directory.
	Delete(ctx context.Context, name string) error

	// State reports the current state, detecting a hypervisor that vanished.
	State(ctx context.Context, name string) (Status, error)
	// Info reports the state plus sockets, pid and balloon figures.
	Info(ctx context.Context, name string) (Info, error)
	// List names the instances in the state directory.
	List(ctx context.Context) ([]string, error)
	// Attach re-attaches to an instance left by a previous Driver (daemon restart): it checks
	// the pidfile against the process and reconnects to its control socket.
	Attach(ctx context.Context, name string) (Info, error)
	// Reconcile kills the hypervisors of, and removes, instances not named in known (for
	// instances deleted from the daemon database while the daemon was down). It returns the
	// names it removed.
	Reconcile(ctx context.Context, known []string) ([]string, error)

	// Balloon sets the guest memory target of a running instance with a balloon device.
	Balloon(ctx context.Context, name string, targetMiB int) error

	// AttachDisk and DetachDisk hot-plug a disk on a running full instance; AttachNIC and
	// DetachNIC do the same for NICs. Appliances return ErrNotSupported (no hot-plug bus).
	// A hot-plugged device is recorded in the spec, so the next boot has it too.
	AttachDisk(ctx context.Context, name string, disk DiskSpec) error
	DetachDisk(ctx context.Context, name, diskID string) error
	AttachNIC(ctx context.Context, name string, nic NICSpec) error
	DetachNIC(ctx context.Context, name, nicID string) error

	// Close releases control connections; running instances keep running.
	Close() error
}

// DiskSnapshotter is implemented by drivers that can take a live external snapshot of a
// running instance's disk: overlay (one empty qcow2 layer whose backing file is the disk's
// current top image, made by the storage pool) becomes the disk's new top and the old top is
// frozen. In-flight I/O is drained first, so the frozen layer is crash-consistent. The
// instance's definition follows (the overlay over the old chain).
type DiskSnapshotter interface {
	SnapshotDisk(ctx context.Context, name, diskID string, overlay DiskSpec) error
}

// Errors callers test with errors.Is.
var (
	ErrNotFound     = errors.New("instance not found")
	ErrExists       = errors.New("instance already exists")
	ErrInvalid      = errors.New("invalid instance spec")
	ErrState        = errors.New("operation not allowed in the current state")
	ErrNotSupported = errors.New("not supported")
)

// Options configure a driver constructor.
type Options struct {
	// StateDir holds one directory per instance (sockets, pidfile, logs, spec). Required.
	StateDir string
	// Accel is "kvm" or "tcg"; empty lets the driver decide (the QEMU driver defaults to tcg;
	// the daemon passes the result of accel.Probe).
	Accel string
	// Binary overrides the hypervisor binary (qemu-system-x86_64).
	Binary string
	// CgroupParent is the cgroup v1 path under each controller for instance cgroups
	// (default "finvirt"); empty CgroupParent with NoCgroups skips cgroups.
	CgroupParent string
	NoCgroups    bool
	// HostCPUs and HostMemoryMiB override the detected host size for validation (tests).
	HostCPUs      int
	HostMemoryMiB int
}

// Option is a functional option for a driver constructor.
type Option func(*Options)

// WithStateDir sets Options.StateDir.
func WithStateDir(dir string) Option { return func(o *Options) { o.StateDir = dir } }

// WithAccel sets Options.Accel ("kvm" | "tcg").
func WithAccel(a string) Option { return func(o *Options) { o.Accel = a } }

// WithBinary sets Options.Binary.
func WithBinary(path string) Option { return func(o *Options) { o.Binary = path } }

// WithCgroupParent sets Options.CgroupParent.
func WithCgroupParent(p string) Option { return func(o *Options) { o.CgroupParent = p } }

// WithoutCgroups disables cgroup placement (CPUSet and CPUWeight are then rejected).
func WithoutCgroups() Option { return func(o *Options) { o.NoCgroups = true } }

// WithHostLimits overrides the host size used to validate specs.
func WithHostLimits(cpus, memoryMiB int) Option {
	return func(o *Options) { o.HostCPUs, o.HostMemoryMiB = cpus, memoryMiB }
}

// Constructor builds a driver from options.
type Constructor func(opts ...Option) (Driver, error)

var (
	regMu    sync.RWMutex
	registry = map[string]Constructor{}
)

// Register makes a driver available under name. It panics on a duplicate, as database/sql does:
// two drivers claiming one name is a programming error.
func Register(name string, c Constructor) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("compute: driver " + name + " registered twice")
	}
	registry[name] = c
}

// Drivers lists the registered driver names, sorted.
func Drivers() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Load constructs the driver registered under name.
func Load(name string, opts ...Option) (Driver, error) {
	regMu.RLock()
	c, ok := registry[name]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("compute driver %q is not registered (known: %v); import its package, e.g. _ \"github.com/finvirt/finvirt/internal/compute/qemu\"", name, Drivers())
	}
	return c(opts...)
}
