package api

import "time"

// Instance states.
const (
	InstanceCreating = "creating" // record made, per-instance files and VM being prepared
	InstanceStarting = "starting" // QEMU runs, waiting for the guest agent
	InstanceRunning  = "running"
	InstancePaused   = "paused"
	InstanceStopping = "stopping"
	InstanceStopped  = "stopped"
	InstanceError    = "error" // StatusReason says why (crash, vanished, failed boot)
)

// Restart policies (of the instance and of its workload).
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Instance is a virtual machine in a project (GET /1.0/instances/{name}?project=P).
type Instance struct {
	Name    string `json:"name" yaml:"name"`
	Project string `json:"project" yaml:"project"`
	// ID is the hypervisor-level name (QEMU state directory and process), unique on the host.
	ID      string `json:"id" yaml:"id"`
	Image   string `json:"image" yaml:"image"`
	ImageID string `json:"image_id" yaml:"image_id"`
	Profile string `json:"profile" yaml:"profile"` // appliance | full (from the image kind)
	VCPUs   int    `json:"vcpus" yaml:"vcpus"`
	Memory  int64  `json:"memory" yaml:"memory"` // bytes
	// Balloon says the VM has a memory balloon; BalloonTarget is the guest memory target in
	// bytes (0: none set, the guest has Memory).
	Balloon       bool              `json:"balloon" yaml:"balloon"`
	BalloonTarget int64             `json:"balloon_target,omitempty" yaml:"balloon_target,omitempty"`
	Env           map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	Command       string            `json:"command,omitempty" yaml:"command,omitempty"`
	Restart       string            `json:"restart" yaml:"restart"`
	Status        string            `json:"status" yaml:"status"`
	StatusReason  string            `json:"status_reason,omitempty" yaml:"status_reason,omitempty"`
	Accel         string            `json:"accel,omitempty" yaml:"accel,omitempty"`
	PID           int               `json:"pid,omitempty" yaml:"pid,omitempty"`
	AgentReady    bool              `json:"agent_ready" yaml:"agent_ready"`
	// Restarts counts the restarts done by the restart policy.
	Restarts int `json:"restarts,omitempty" yaml:"restarts,omitempty"`
	// Volumes are the project volumes attached to the instance (virtio-blk, serial
	// pools.Serial(volume)); NICs its network interfaces.
	Volumes   []InstanceVolume `json:"volumes,omitempty" yaml:"volumes,omitempty"`
	NICs      []InstanceNIC    `json:"nics,omitempty" yaml:"nics,omitempty"`
	CreatedAt time.Time        `json:"created_at" yaml:"created_at"`
	UpdatedAt time.Time        `json:"updated_at" yaml:"updated_at"`
}

// InstanceVolume attaches a project volume to an instance (at launch in InstancesPost, or
// POST /1.0/instances/{name}/volumes). Mountpoint, when set, makes the guest agent mount the
// volume's ext4 filesystem there at boot (the guest formats a new volume itself); without it
// the guest sees a raw block device whose serial is the volume name (see Serial in the
// instance's volume list and /sys/block/vd*/serial in the guest).
type InstanceVolume struct {
	Volume     string `json:"volume" yaml:"volume"`
	Mountpoint string `json:"mountpoint,omitempty" yaml:"mountpoint,omitempty"`
	Serial     string `json:"serial,omitempty" yaml:"serial,omitempty"` // set by the daemon
}

// InstanceNIC is a NIC of an instance on one of its project's networks.
type InstanceNIC struct {
	Network string `json:"network" yaml:"network"`
	ID      string `json:"id" yaml:"id"`   // host-wide NIC id: <instance id>.<n>
	Tap     string `json:"tap" yaml:"tap"` // host tap device on the network's bridge
	MAC     string `json:"mac" yaml:"mac"`
	Address string `json:"address,omitempty" yaml:"address,omitempty"` // CIDR, static
	Gateway string `json:"gateway,omitempty" yaml:"gateway,omitempty"`
}

// InstancesPost creates (and by default starts) an instance (POST /1.0/instances?project=P).
type InstancesPost struct {
	Name    string            `json:"name"`
	Image   string            `json:"image"`
	VCPUs   int               `json:"vcpus"`  // 1..4 x host CPUs (the CLI defaults to 1)
	Memory  int64             `json:"memory"` // bytes, whole MiB, 64 MiB..host RAM (the CLI defaults to 256 MiB)
	Balloon bool              `json:"balloon,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Command is the workload the guest agent starts and supervises: run by /bin/sh -c when
	// the image has a shell, else split on spaces (the program must be an absolute path).
	Command string `json:"command,omitempty"`
	Restart string `json:"restart,omitempty"` // never (default) | on-failure | always
	// Start boots the instance (default true when the field is absent).
	Start *bool `json:"start,omitempty"`
	// Volumes are project volumes to attach (each must not be attached elsewhere).
	Volumes []InstanceVolume `json:"volumes,omitempty"`
	// Networks are names of the project's networks; the instance gets one NIC on each, with
	// a static address from the network's subnet.
	Networks []string `json:"networks,omitempty"`
}

// InstancePatch changes an instance's configuration (PATCH /1.0/instances/{name}).
type InstancePatch struct {
	Restart *string `json:"restart,omitempty"`
	// BalloonTarget sets the guest memory target in bytes (the VM needs a balloon).
	BalloonTarget *int64 `json:"balloon_target,omitempty"`
	// VCPUs and Memory (bytes) resize a stopped instance (quota checked on the difference).
	VCPUs  *int   `json:"vcpus,omitempty"`
	Memory *int64 `json:"memory,omitempty"`
}

// InstanceStatePut changes the run state (POST /1.0/instances/{name}/state); an operation.
type InstanceStatePut struct {
	Action  string `json:"action"`            // start | stop | restart | pause | resume
	Timeout int    `json:"timeout,omitempty"` // seconds for a graceful stop (default 30)
	Force   bool   `json:"force,omitempty"`   // stop: kill at once
}

// InstanceExecPost runs a command in the guest (POST /1.0/instances/{name}/exec).
type InstanceExecPost struct {
	Command []string          `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	Cwd     string            `json:"cwd,omitempty"`
	Stdin   []byte            `json:"stdin,omitempty"`   // base64 in JSON
	Timeout int               `json:"timeout,omitempty"` // seconds (default 300)
}

// InstanceExecResult is the outcome of an exec. Output beyond 8 MiB per stream is cut
// (Truncated says so).
type InstanceExecResult struct {
	ExitCode  int    `json:"exit_code"`
	Stdout    []byte `json:"stdout"` // base64 in JSON
	Stderr    []byte `json:"stderr"`
	Truncated bool   `json:"truncated,omitempty"`
}

// InstanceFile is the answer of a file push.
type InstanceFile struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
}
