package api

import "time"

// NetworksPost creates a virtual network (POST /1.0/networks?project=P). Network names are
// unique on the host (they name bridges and firewall chains), not only in their project.
type NetworksPost struct {
	Name        string `json:"name" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	Driver      string `json:"driver,omitempty" yaml:"driver,omitempty"` // bridge (default) | vxlan
	Subnet      string `json:"subnet" yaml:"subnet"`                     // IPv4 CIDR, e.g. 10.10.0.0/24
	Gateway     string `json:"gateway,omitempty" yaml:"gateway,omitempty"`
	// DHCP runs a DHCP server on the network; DHCPRange bounds dynamic addresses
	// ("10.10.0.100-10.10.0.200"), DHCPDynamic also answers MACs that are not NICs.
	DHCP        bool   `json:"dhcp,omitempty" yaml:"dhcp,omitempty"`
	DHCPRange   string `json:"dhcp_range,omitempty" yaml:"dhcp_range,omitempty"`
	DHCPDynamic bool   `json:"dhcp_dynamic,omitempty" yaml:"dhcp_dynamic,omitempty"`
	// NAT masquerades the subnet towards the uplink (default: the default route's device).
	NAT    bool          `json:"nat,omitempty" yaml:"nat,omitempty"`
	Uplink string        `json:"uplink,omitempty" yaml:"uplink,omitempty"`
	VXLAN  *NetworkVXLAN `json:"vxlan,omitempty" yaml:"vxlan,omitempty"`
	MTU    int           `json:"mtu,omitempty" yaml:"mtu,omitempty"`
	// ACLs are network ACLs of the same project applied to every NIC on this network.
	ACLs []string `json:"acls,omitempty" yaml:"acls,omitempty"`
}

// NetworkVXLAN makes a network span hosts over unicast VXLAN.
type NetworkVXLAN struct {
	VNI      uint32   `json:"vni" yaml:"vni"`
	LocalIP  string   `json:"local_ip" yaml:"local_ip"`
	Peers    []string `json:"peers,omitempty" yaml:"peers,omitempty"`
	Underlay string   `json:"underlay,omitempty" yaml:"underlay,omitempty"`
	Port     int      `json:"port,omitempty" yaml:"port,omitempty"`
}

// Network is a network with what the host has of it.
type Network struct {
	NetworksPost `yaml:",inline"`
	Project      string    `json:"project" yaml:"project"`
	Bridge       string    `json:"bridge" yaml:"bridge"`
	CreatedAt    time.Time `json:"created_at" yaml:"created_at"`
	// Status is "up", "down" (bridge missing or down) or "unavailable" (StatusError).
	Status      string   `json:"status" yaml:"status"`
	StatusError string   `json:"status_error,omitempty" yaml:"status_error,omitempty"`
	Addresses   []string `json:"addresses,omitempty" yaml:"addresses,omitempty"`
	Ports       []string `json:"ports,omitempty" yaml:"ports,omitempty"`
	NICs        []string `json:"nics,omitempty" yaml:"nics,omitempty"` // NIC ids attached
}

// NetworkLease is one address held on a network (IPAM reservation or DHCP lease).
type NetworkLease struct {
	Network  string    `json:"network" yaml:"network"`
	MAC      string    `json:"mac" yaml:"mac"`
	IP       string    `json:"ip" yaml:"ip"`
	Static   bool      `json:"static" yaml:"static"`
	Expires  time.Time `json:"expires,omitempty" yaml:"expires,omitempty"` // zero: no expiry
	Hostname string    `json:"hostname,omitempty" yaml:"hostname,omitempty"`
	NIC      string    `json:"nic,omitempty" yaml:"nic,omitempty"`
	Instance string    `json:"instance,omitempty" yaml:"instance,omitempty"`
}

// NetworkACLRule allows traffic to (ingress) or from (egress) the NICs of the networks
// using the ACL. Peers (sources for ingress, destinations for egress) are the union of
// CIDRs, the subnets of Networks and the NIC addresses of networks using ACLs; no peer
// means anywhere. Everything an ACL does not allow across networks is dropped.
type NetworkACLRule struct {
	ID        string   `json:"id,omitempty" yaml:"id,omitempty"` // default rule-N
	Direction string   `json:"direction" yaml:"direction"`       // ingress | egress
	Protocol  string   `json:"protocol" yaml:"protocol"`         // tcp | udp | icmp | any
	Ports     []string `json:"ports,omitempty" yaml:"ports,omitempty"`
	CIDRs     []string `json:"cidrs,omitempty" yaml:"cidrs,omitempty"`
	Networks  []string `json:"networks,omitempty" yaml:"networks,omitempty"`
	ACLs      []string `json:"acls,omitempty" yaml:"acls,omitempty"`
	// Packets and Bytes are the rule's counters summed over the NICs it is installed on
	// (show only).
	Packets uint64 `json:"packets" yaml:"packets"`
	Bytes   uint64 `json:"bytes" yaml:"bytes"`
}

// NetworkACLsPost creates a network ACL (POST /1.0/network-acls?project=P).
type NetworkACLsPost struct {
	Name        string           `json:"name" yaml:"name"`
	Description string           `json:"description,omitempty" yaml:"description,omitempty"`
	Rules       []NetworkACLRule `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// NetworkACLCounter is one rule's counters on one NIC.
type NetworkACLCounter struct {
	Rule    string `json:"rule" yaml:"rule"`
	NIC     string `json:"nic" yaml:"nic"`
	Packets uint64 `json:"packets" yaml:"packets"`
	Bytes   uint64 `json:"bytes" yaml:"bytes"`
}

// NetworkACL is an ACL with the networks that use it and its counters.
type NetworkACL struct {
	NetworkACLsPost `yaml:",inline"`
	Project         string              `json:"project" yaml:"project"`
	CreatedAt       time.Time           `json:"created_at" yaml:"created_at"`
	UsedBy          []string            `json:"used_by,omitempty" yaml:"used_by,omitempty"` // networks
	Counters        []NetworkACLCounter `json:"counters,omitempty" yaml:"counters,omitempty"`
}

// SegmentationReportPost asks for a segmentation report (POST /1.0/network-segmentation-report).
type SegmentationReportPost struct {
	TCPPorts  []int `json:"tcp_ports,omitempty"`  // default 22, 443, 8080
	TimeoutMS int   `json:"timeout_ms,omitempty"` // per probe, default 2000
}

// SegmentationProbe is one probe's outcome.
type SegmentationProbe struct {
	Proto   string `json:"proto" yaml:"proto"`
	Port    int    `json:"port,omitempty" yaml:"port,omitempty"`
	Reached bool   `json:"reached" yaml:"reached"`
}

// SegmentationCell is one ordered pair of networks (To "host": the source's gateway).
type SegmentationCell struct {
	From        string              `json:"from" yaml:"from"`
	To          string              `json:"to" yaml:"to"`
	Target      string              `json:"target" yaml:"target"`
	Probes      []SegmentationProbe `json:"probes" yaml:"probes"`
	Reachable   bool                `json:"reachable" yaml:"reachable"`
	Explained   []string            `json:"explained_by,omitempty" yaml:"explained_by,omitempty"`
	Unexplained bool                `json:"unexplained,omitempty" yaml:"unexplained,omitempty"`
}

// SegmentationReport is the reachability matrix measured with real packets (PCI DSS
// 11.4.5/11.4.6 evidence). Projects maps each network to its project.
type SegmentationReport struct {
	Timestamp   time.Time          `json:"timestamp" yaml:"timestamp"`
	Host        string             `json:"host" yaml:"host"`
	RulesetHash string             `json:"ruleset_sha256" yaml:"ruleset_sha256"`
	Networks    []string           `json:"networks" yaml:"networks"`
	Projects    map[string]string  `json:"projects,omitempty" yaml:"projects,omitempty"`
	TCPPorts    []int              `json:"tcp_ports" yaml:"tcp_ports"`
	Cells       []SegmentationCell `json:"cells" yaml:"cells"`
}
