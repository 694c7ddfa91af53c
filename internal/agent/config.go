// Package agent holds the host side of the finvirt guest agent: the per-instance configuration
// handed to the guest (Config, written to /etc/finvirt/instance.json) and the client the daemon
// uses to talk to the agent over the virtio-serial channel (Dial, Client).
package agent

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"strings"
)

// ConfigPath is where the guest agent reads its configuration.
const ConfigPath = "/etc/finvirt/instance.json"

// PortName is the virtio-serial port name the agent listens on.
const PortName = "org.finvirt.agent.0"

// Restart policies for workloads.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Config is the per-instance configuration of a guest.
type Config struct {
	Hostname  string     `json:"hostname,omitempty"`
	NICs      []NIC      `json:"nics,omitempty"`
	DNS       []string   `json:"dns,omitempty"`
	Volumes   []Volume   `json:"volumes,omitempty"`
	Workloads []Workload `json:"workloads,omitempty"`
	// ShutdownGraceMS is how long workloads get between SIGTERM and SIGKILL at power-off
	// (default 10000).
	ShutdownGraceMS int64 `json:"shutdown_grace_ms,omitempty"`
}

// NIC configures the interface whose MAC address is MAC: either DHCP or a static Address.
type NIC struct {
	MAC     string `json:"mac"`
	DHCP    bool   `json:"dhcp,omitempty"`
	Address string `json:"address,omitempty"` // CIDR, e.g. 10.0.0.5/24
	Gateway string `json:"gateway,omitempty"`
	MTU     int    `json:"mtu,omitempty"`
}

// Volume mounts the virtio block device whose serial is Serial at MountPoint.
type Volume struct {
	Serial     string `json:"serial"`
	MountPoint string `json:"mountpoint"`
	FSType     string `json:"fstype,omitempty"` // default ext4
	ReadOnly   bool   `json:"readonly,omitempty"`
}

// Workload is a process the agent starts at boot and supervises.
type Workload struct {
	Name    string   `json:"name"`
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Restart string   `json:"restart,omitempty"` // never (default), on-failure, always
	// BackoffMS is the first restart delay; it doubles per consecutive failure up to 30 s.
	BackoffMS int64 `json:"backoff_ms,omitempty"`
}

var (
	hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	nameRE     = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	serialRE   = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,20}$`) // virtio-blk serials are at most 20 bytes
)

// Validate reports the first problem in c, naming the offending field and how to fix it.
func (c *Config) Validate() error {
	if c.Hostname != "" && !hostnameRE.MatchString(c.Hostname) {
		return fmt.Errorf("config: hostname %q is invalid: use 1-63 letters, digits and inner hyphens", c.Hostname)
	}
	macs := map[string]bool{}
	gateways := 0
	for i, n := range c.NICs {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil || len(hw) != 6 {
			return fmt.Errorf("config: nics[%d].mac %q is not a 6-byte MAC address like 52:54:00:12:34:56", i, n.MAC)
		}
		if macs[hw.String()] {
			return fmt.Errorf("config: nics[%d].mac %s is listed twice", i, hw)
		}
		macs[hw.String()] = true
		switch {
		case n.DHCP && n.Address != "":
			return fmt.Errorf("config: nics[%d] (%s) sets both dhcp and address: choose one", i, hw)
		case !n.DHCP && n.Address == "":
			return fmt.Errorf("config: nics[%d] (%s) needs an address (CIDR like 10.0.0.5/24) or dhcp: true", i, hw)
		}
		if n.Address != "" {
			if _, _, err := net.ParseCIDR(n.Address); err != nil {
				return fmt.Errorf("config: nics[%d].address %q is not CIDR notation like 10.0.0.5/24", i, n.Address)
			}
		}
		if n.Gateway != "" && net.ParseIP(n.Gateway) == nil {
			return fmt.Errorf("config: nics[%d].gateway %q is not an IP address", i, n.Gateway)
		}
		if n.Gateway != "" {
			if gateways++; gateways > 1 {
				return fmt.Errorf("config: nics[%d] sets a second default gateway: only one NIC may set gateway", i)
			}
		}
		if n.DHCP && n.Gateway != "" {
			return fmt.Errorf("config: nics[%d] (%s) sets a gateway with dhcp: the DHCP router is used unless another NIC sets a static gateway", i, hw)
		}
		if n.MTU != 0 && (n.MTU < 576 || n.MTU > 65535) {
			return fmt.Errorf("config: nics[%d].mtu %d is outside 576..65535", i, n.MTU)
		}
	}
	for i, d := range c.DNS {
		if net.ParseIP(d) == nil {
			return fmt.Errorf("config: dns[%d] %q is not an IP address", i, d)
		}
	}
	serials, mounts := map[string]bool{}, map[string]bool{}
	for i, v := range c.Volumes {
		if !serialRE.MatchString(v.Serial) {
			return fmt.Errorf("config: volumes[%d].serial %q is invalid: use 1-20 letters, digits, '.', '_' or '-'", i, v.Serial)
		}
		if serials[v.Serial] {
			return fmt.Errorf("config: volumes[%d].serial %q is listed twice", i, v.Serial)
		}
		serials[v.Serial] = true
		if !path.IsAbs(v.MountPoint) || path.Clean(v.MountPoint) != v.MountPoint || v.MountPoint == "/" {
			return fmt.Errorf("config: volumes[%d].mountpoint %q must be a clean absolute path other than /", i, v.MountPoint)
		}
		if mounts[v.MountPoint] {
			return fmt.Errorf("config: volumes[%d].mountpoint %s is used twice", i, v.MountPoint)
		}
		mounts[v.MountPoint] = true
		switch v.FSType {
		case "", "ext4", "ext3", "ext2", "xfs", "btrfs", "vfat":
		default:
			return fmt.Errorf("config: volumes[%d].fstype %q is not supported (ext4, ext3, ext2, xfs, btrfs, vfat)", i, v.FSType)
		}
	}
	names := map[string]bool{}
	for i, w := range c.Workloads {
		if !nameRE.MatchString(w.Name) {
			return fmt.Errorf("config: workloads[%d].name %q is invalid: use letters, digits, '.', '_' or '-' (max 63)", i, w.Name)
		}
		if names[w.Name] {
			return fmt.Errorf("config: workload name %q is used twice", w.Name)
		}
		names[w.Name] = true
		if !path.IsAbs(w.Command) {
			return fmt.Errorf("config: workload %q: command %q must be an absolute path (there is no PATH search in an appliance)", w.Name, w.Command)
		}
		switch w.Restart {
		case "", RestartNever, RestartOnFailure, RestartAlways:
		default:
			return fmt.Errorf("config: workload %q: restart %q must be never, on-failure or always", w.Name, w.Restart)
		}
		for _, e := range w.Env {
			if !strings.Contains(e, "=") {
				return fmt.Errorf("config: workload %q: env entry %q must be KEY=VALUE", w.Name, e)
			}
		}
		if w.BackoffMS < 0 {
			return fmt.Errorf("config: workload %q: backoff_ms %d is negative", w.Name, w.BackoffMS)
		}
	}
	if c.ShutdownGraceMS < 0 {
		return fmt.Errorf("config: shutdown_grace_ms %d is negative", c.ShutdownGraceMS)
	}
	return nil
}

// LoadConfig reads and validates the configuration at p. A missing file is an empty config.
func LoadConfig(p string) (Config, error) {
	var c Config
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s: %w", p, err)
	}
	return c, c.Validate()
}
