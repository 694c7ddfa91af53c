package api

import "time"

// HostInfo describes the hypervisor host (GET /1.0/host): what the daemon runs guests with.
type HostInfo struct {
	Hostname     string `json:"hostname"`
	CPUs         int    `json:"cpus"`
	MemoryBytes  int64  `json:"memory_bytes"`
	Accel        string `json:"accel"`                   // kvm | tcg
	AccelReason  string `json:"accel_reason"`            // why this accelerator was chosen
	AccelWarning string `json:"accel_warning,omitempty"` // shown when guests run without hardware acceleration
	// AccelProbedAt is when the KVM probe boot that decided Accel ran (absent when forced by
	// config); AccelCached says this daemon start reused that verdict instead of probing.
	AccelProbedAt *time.Time `json:"accel_probed_at,omitempty"`
	AccelCached   bool       `json:"accel_cached,omitempty"`
	KernelVersion string     `json:"kernel_version,omitempty"` // guest kernel used for appliances
	QEMUVersion   string     `json:"qemu_version,omitempty"`
}
