// Package network is finvirt's network virtualization layer: the types the daemon stores
// (networks, NICs, security groups), their validation, the driver interface with its
// name->constructor registry, and the Manager that ties drivers to the firewall.
//
// Every host object is created in a target network namespace (NetNS); the daemon passes the
// host namespace ("") and tests pass a namespace of their own, so a test never touches the
// host's links, routes or nftables ruleset.
package network

import (
	"net"
	"net/netip"
)

// Network is one virtual L2 segment with an IPv4 subnet routed by the host at Gateway.
type Network struct {
	Name    string `json:"name" yaml:"name"`
	Project string `json:"project,omitempty" yaml:"project,omitempty"`
	Driver  string `json:"driver" yaml:"driver"` // "bridge" or "vxlan"
	// Subnet is the IPv4 CIDR (required), Subnet6 an optional IPv6 CIDR.
	Subnet   string     `json:"subnet" yaml:"subnet"`
	Subnet6  string     `json:"subnet6,omitempty" yaml:"subnet6,omitempty"`
	Gateway  string     `json:"gateway,omitempty" yaml:"gateway,omitempty"` // default: first host of Subnet
	Gateway6 string     `json:"gateway6,omitempty" yaml:"gateway6,omitempty"`
	DHCP     DHCPConfig `json:"dhcp" yaml:"dhcp"`
	// NAT masquerades the subnet towards the uplink (default: the device of the default route).
	NAT    bool         `json:"nat,omitempty" yaml:"nat,omitempty"`
	Uplink string       `json:"uplink,omitempty" yaml:"uplink,omitempty"`
	VXLAN  *VXLANConfig `json:"vxlan,omitempty" yaml:"vxlan,omitempty"`
	MTU    int          `json:"mtu,omitempty" yaml:"mtu,omitempty"`
	// Bridge overrides the generated bridge name (at most 15 bytes).
	Bridge string `json:"bridge,omitempty" yaml:"bridge,omitempty"`
}

// DHCPConfig enables the per-network DHCP server. RangeStart/RangeEnd bound dynamic
// allocation (default: the whole subnet minus network, gateway and broadcast).
type DHCPConfig struct {
	Enabled    bool     `json:"enabled" yaml:"enabled"`
	RangeStart string   `json:"range_start,omitempty" yaml:"range_start,omitempty"`
	RangeEnd   string   `json:"range_end,omitempty" yaml:"range_end,omitempty"`
	LeaseSecs  int      `json:"lease_secs,omitempty" yaml:"lease_secs,omitempty"` // default 3600
	DNS        []string `json:"dns,omitempty" yaml:"dns,omitempty"`
	// Dynamic also answers MACs of unknown NICs from the range.
	Dynamic bool `json:"dynamic,omitempty" yaml:"dynamic,omitempty"`
}

// VXLANConfig makes a network span hosts: unicast peers, no multicast, no learning.
type VXLANConfig struct {
	VNI      uint32   `json:"vni" yaml:"vni"`
	LocalIP  string   `json:"local_ip" yaml:"local_ip"`
	Peers    []string `json:"peers" yaml:"peers"`
	Underlay string   `json:"underlay,omitempty" yaml:"underlay,omitempty"`
	Port     int      `json:"port,omitempty" yaml:"port,omitempty"` // default 4789
}

// NIC is one instance interface plugged into a network.
type NIC struct {
	ID       string `json:"id" yaml:"id"`
	Instance string `json:"instance" yaml:"instance"`
	Network  string `json:"network" yaml:"network"`
	// MAC defaults to DeriveMAC(network, instance, id).
	MAC string `json:"mac,omitempty" yaml:"mac,omitempty"`
	// IP is a static address; empty means the IPAM assigns one.
	IP  string `json:"ip,omitempty" yaml:"ip,omitempty"`
	IP6 string `json:"ip6,omitempty" yaml:"ip6,omitempty"`
	// Tap is the host-side device name (default: generated). With HostLink set, the NIC
	// attaches that existing link (a veth end in tests) instead of creating a tap.
	Tap      string `json:"tap,omitempty" yaml:"tap,omitempty"`
	HostLink string `json:"host_link,omitempty" yaml:"host_link,omitempty"`
	// BandwidthMbit limits traffic in both directions (0: unlimited): shaped towards the
	// instance (TBF), policed from it (nftables limit in the NIC's bridge port chain).
	BandwidthMbit  int      `json:"bandwidth_mbit,omitempty" yaml:"bandwidth_mbit,omitempty"`
	SecurityGroups []string `json:"security_groups,omitempty" yaml:"security_groups,omitempty"`
	// TapOwner is the uid owning a created tap (QEMU may run unprivileged).
	TapOwner int `json:"tap_owner,omitempty" yaml:"tap_owner,omitempty"`
}

// Direction of a security group rule, seen from the NIC.
type Direction string

const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// SecurityGroup is a named list of allow rules, applied to every NIC that lists it.
type SecurityGroup struct {
	Name    string `json:"name" yaml:"name"`
	Project string `json:"project,omitempty" yaml:"project,omitempty"`
	Rules   []Rule `json:"rules" yaml:"rules"`
}

// Rule allows traffic; everything not allowed is dropped (see docs/network.md).
// Peers (sources for ingress, destinations for egress) are the union of CIDRs, the subnets
// of Networks and the addresses of the NICs in Groups; none of them means anywhere.
type Rule struct {
	ID        string    `json:"id" yaml:"id"`
	Direction Direction `json:"direction" yaml:"direction"`
	Protocol  string    `json:"protocol" yaml:"protocol"` // tcp, udp, icmp, any
	// Ports are single ports ("8080") or ranges ("8000-8100"), tcp/udp only.
	Ports    []string `json:"ports,omitempty" yaml:"ports,omitempty"`
	CIDRs    []string `json:"cidrs,omitempty" yaml:"cidrs,omitempty"`
	Networks []string `json:"networks,omitempty" yaml:"networks,omitempty"`
	Groups   []string `json:"groups,omitempty" yaml:"groups,omitempty"`
}

// State is everything the firewall renders: it is rebuilt from the whole state on every
// change so that the kernel ruleset is a pure function of it.
type State struct {
	Networks []ResolvedNetwork
	NICs     []ResolvedNIC
	Groups   []SecurityGroup
}

// ResolvedNetwork is a validated Network with its derived names and parsed addresses.
type ResolvedNetwork struct {
	Network
	BridgeName string
	Prefix     netip.Prefix
	GatewayIP  netip.Addr
	Prefix6    netip.Prefix // zero when IPv6 is off
	Gateway6IP netip.Addr
}

// ResolvedNIC is an attached NIC with its final MAC, address and host device.
type ResolvedNIC struct {
	NIC
	HWAddr net.HardwareAddr
	Addr   netip.Addr
	Addr6  netip.Addr
	Device string // tap or host link on the bridge
	Bridge string
}
