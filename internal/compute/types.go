// Package compute defines the hypervisor driver interface of finvirt: instance specifications,
// lifecycle states and a name->constructor registry. Drivers (internal/compute/qemu) register
// themselves; the daemon picks one by name with Load.
package compute

import (
	"context"
	"time"
)

// Profile selects the virtual hardware of an instance.
type Profile string

const (
	// ProfileAppliance is a microVM (QEMU -M microvm, virtio-mmio, direct kernel boot, no
	// firmware, no PCI). Fast to boot and small; disks and NICs are fixed at boot.
	ProfileAppliance Profile = "appliance"
	// ProfileFull is a full PC (QEMU -M q35, OVMF UEFI firmware, virtio-pci, optional TPM,
	// hot-plug of disks and NICs on PCIe root ports).
	ProfileFull Profile = "full"
)

// DiskFormat is the image format of a disk file.
type DiskFormat string

// Disk formats understood by the drivers.
const (
	FormatQcow2 DiskFormat = "qcow2"
	FormatRaw   DiskFormat = "raw"
)

// CacheMode is the host page cache policy of a disk (QEMU cache= semantics).
type CacheMode string

// Cache modes: none = O_DIRECT with a guest-visible write cache (the safe default for
// databases), writethrough = every write is flushed, writeback = host cache, flush on guest flush.
const (
	CacheNone         CacheMode = "none"
	CacheWritethrough CacheMode = "writethrough"
	CacheWriteback    CacheMode = "writeback"
)

// Secret is key material handed to the hypervisor without touching the command line. The
// QEMU driver passes it with a QMP object-add of a "secret" object (base64 data); it never
// appears in argv or /proc.
type Secret struct {
	ID  string `json:"id"`
	Key []byte `json:"key"`
}

// DiskSpec is a virtual disk backed by a host file or block device.
type DiskSpec struct {
	ID       string     `json:"id"`               // unique within the instance: [a-z0-9-], <= 20 chars
	Path     string     `json:"path"`             // host path of the image
	Format   DiskFormat `json:"format"`           // qcow2 | raw
	Serial   string     `json:"serial,omitempty"` // guest-visible serial (/dev/disk/by-id/virtio-<serial>); defaults to ID
	ReadOnly bool       `json:"readonly,omitempty"`
	Cache    CacheMode  `json:"cache,omitempty"` // default none
	AIO      string     `json:"aio,omitempty"`   // threads | native | io_uring; default threads
	// Secret, when set, opens the image as LUKS encrypted (qcow2 with encrypt.format=luks, or a
	// raw LUKS container) with this key.
	Secret *Secret `json:"secret,omitempty"`
	// Backing, when set, is the image's backing chain below Path (its parent first, the base
	// last). QEMU then opens exactly these files, each with the disk's Secret where Encrypted,
	// instead of following the paths written in the qcow2 headers — which cannot work for an
	// encrypted chain (a header names no key) and should not be trusted anyway. Empty: the
	// header's backing file, if any, is opened as written.
	Backing []DiskLayer `json:"backing,omitempty"`
}

// DiskLayer is one read-only backing image of a disk's chain.
type DiskLayer struct {
	Path      string     `json:"path"`
	Format    DiskFormat `json:"format"`
	Encrypted bool       `json:"encrypted,omitempty"`
}

// NICSpec is a virtual NIC attached to an existing host tap device.
type NICSpec struct {
	ID  string `json:"id"`  // unique within the instance
	Tap string `json:"tap"` // host tap interface name (created by the network layer)
	MAC string `json:"mac"` // unicast MAC, e.g. 52:54:00:12:34:56
	// NetNS is the path of the network namespace that holds the tap (/run/netns/<name>) when
	// it is not the driver's own: the driver opens the tap inside it and hands QEMU the open
	// file descriptor (-netdev tap,fd=N), since QEMU can only open taps by name in its own
	// namespace. Empty: QEMU opens the tap by name.
	NetNS string `json:"netns,omitempty"`
}

// TPMSpec asks for a software TPM 2.0 (swtpm) for a full guest.
type TPMSpec struct {
	Model string `json:"model,omitempty"` // tpm-tis (default) | tpm-crb
}

// Spec describes an instance. It is validated by Validate before anything is created.
type Spec struct {
	Name      string  `json:"name"`
	Profile   Profile `json:"profile"`
	VCPUs     int     `json:"vcpus"`
	MemoryMiB int     `json:"memory_mib"`
	// Balloon adds a virtio-balloon device so the memory can be shrunk at run time.
	Balloon bool `json:"balloon,omitempty"`

	// Appliance boot (also allowed for full guests: direct kernel boot on q35 without firmware).
	Kernel  string `json:"kernel,omitempty"`  // uncompressed PVH vmlinux (or bzImage)
	Initrd  string `json:"initrd,omitempty"`  // initramfs
	Cmdline string `json:"cmdline,omitempty"` // kernel command line; the driver adds accelerator tweaks

	// Full guests: UEFI firmware code and the template of its variable store. Empty means the
	// OVMF 4M images of the host (/usr/share/OVMF). The variable store is copied per instance.
	Firmware     string   `json:"firmware,omitempty"`
	FirmwareVars string   `json:"firmware_vars,omitempty"`
	TPM          *TPMSpec `json:"tpm,omitempty"`

	Disks []DiskSpec `json:"disks,omitempty"`
	NICs  []NICSpec  `json:"nics,omitempty"`

	// SerialLog is where the console output goes; empty means <instance dir>/console.log.
	SerialLog string `json:"serial_log,omitempty"`

	// TBSizeMiB is the TCG translation cache size (ignored under KVM); 0 means the driver
	// default (32 MiB). QEMU's own default (1 GiB) would dominate the RSS of small guests.
	TBSizeMiB int `json:"tb_size_mib,omitempty"`

	// CPUSet pins the whole QEMU process to host CPUs ("0-1", "0,2"); empty means no pinning.
	CPUSet string `json:"cpuset,omitempty"`
	// CPUWeight is the relative CPU share (cgroup v1 cpu.shares, 2..262144); 0 means the default 1024.
	CPUWeight int `json:"cpu_weight,omitempty"`
}

// State is the lifecycle state of an instance.
type State string

// Instance states.
const (
	StateCreating State = "creating" // instance directory being prepared
	StateStopped  State = "stopped"  // defined, no hypervisor process
	StateStarting State = "starting" // hypervisor process launched, not yet running guest code
	StateRunning  State = "running"
	StatePaused   State = "paused"   // vCPUs stopped (QMP stop), guest clock frozen
	StateStopping State = "stopping" // graceful stop in progress
	StateError    State = "error"    // the hypervisor vanished or failed; Reason says why
)

// Status is a state with a reason a human can act on.
type Status struct {
	State  State     `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// Info describes an instance and where to reach it.
type Info struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Spec   Spec   `json:"spec"` // secrets are redacted (Key nil)
	Dir    string `json:"dir"`  // instance state directory
	PID    int    `json:"pid,omitempty"`
	Accel  string `json:"accel,omitempty"` // kvm | tcg

	QMPSocket     string `json:"qmp_socket"`
	AgentSocket   string `json:"agent_socket"`   // virtio-serial port org.finvirt.agent.0 (unix socket, server side QEMU)
	ConsoleSocket string `json:"console_socket"` // interactive serial console (one client at a time)
	SerialLog     string `json:"serial_log"`

	// Balloon figures, when the instance has a balloon and is running.
	BalloonActualMiB int `json:"balloon_actual_mib,omitempty"`
}

// StopOptions controls a graceful stop.
type StopOptions struct {
	// AgentShutdown, when set, asks the guest agent to shut the guest down (the daemon glues
	// internal/agent here so compute does not depend on it). A failure falls through to ACPI.
	AgentShutdown func(ctx context.Context) error
	// Timeout bounds the wait for the guest to power off after the agent or ACPI request,
	// before QMP quit and then SIGKILL. 0 means 30 s.
	Timeout time.Duration
}
