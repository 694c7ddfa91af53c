package network

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// IFNAMSIZ-1: the longest Linux interface name.
const MaxIfName = 15

// MaxVNI is the largest 24-bit VXLAN network identifier.
const MaxVNI = 1<<24 - 1

// ErrInUse is wrapped by errors for deleting a network that still has NICs.
var ErrInUse = errors.New("in use")

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid")

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// BridgeName is the bridge for network name: linkPrefix+"br"+name when it fits in
// IFNAMSIZ, else linkPrefix+"br"+hash so that long names still get a stable device.
func BridgeName(linkPrefix, name string) string {
	if n := linkPrefix + "br" + name; len(n) <= MaxIfName && nameRE.MatchString(name) {
		return n
	}
	return linkPrefix + "br" + shortHash(name)
}

// TapName is the generated tap for a NIC id.
func TapName(linkPrefix, nicID string) string { return linkPrefix + "t" + shortHash(nicID) }

// VXLANName is the vxlan device of a network.
func VXLANName(linkPrefix string, vni uint32) string {
	return linkPrefix + "vx" + strconv.FormatUint(uint64(vni), 10)
}

func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

// DeriveMAC returns a stable, locally administered unicast MAC for a NIC: the same
// network+instance+nic always gets the same address, so a restarted VM keeps its lease.
func DeriveMAC(network, instance, nicID string) net.HardwareAddr {
	sum := sha256.Sum256([]byte(network + "\x00" + instance + "\x00" + nicID))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01 // locally administered, unicast
	return mac
}

// Resolve validates n alone and derives its names and addresses.
func Resolve(n Network, linkPrefix string) (ResolvedNetwork, error) {
	var r ResolvedNetwork
	if !nameRE.MatchString(n.Name) {
		return r, invalid("network name %q: use 1-63 letters, digits, '_', '.', '-'", n.Name)
	}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	p, err := netip.ParsePrefix(n.Subnet)
	if err != nil || !p.Addr().Is4() {
		return r, invalid("network %q: subnet %q is not an IPv4 CIDR (e.g. 10.10.0.0/24)", n.Name, n.Subnet)
	}
	if p.Masked() != p {
		return r, invalid("network %q: subnet %q has host bits set; use %s", n.Name, n.Subnet, p.Masked())
	}
	if p.Bits() > 30 || p.Bits() < 8 {
		return r, invalid("network %q: subnet %q must be between /8 and /30", n.Name, n.Subnet)
	}
	r.Prefix = p
	if n.Gateway == "" {
		r.GatewayIP = p.Addr().Next()
		n.Gateway = r.GatewayIP.String()
	} else {
		g, err := netip.ParseAddr(n.Gateway)
		if err != nil || !g.Is4() {
			return r, invalid("network %q: gateway %q is not an IPv4 address", n.Name, n.Gateway)
		}
		if !p.Contains(g) || g == p.Addr() || g == lastAddr(p) {
			return r, invalid("network %q: gateway %s is outside subnet %s (or is its network/broadcast address); pick a host address inside it", n.Name, g, p)
		}
		r.GatewayIP = g
	}
	if n.Subnet6 != "" {
		p6, err := netip.ParsePrefix(n.Subnet6)
		if err != nil || !p6.Addr().Is6() || p6.Addr().Is4In6() || p6.Masked() != p6 || p6.Bits() > 126 {
			return r, invalid("network %q: subnet6 %q is not an IPv6 CIDR of /126 or wider (e.g. fd00:10::/64)", n.Name, n.Subnet6)
		}
		r.Prefix6 = p6
		if n.Gateway6 == "" {
			r.Gateway6IP = p6.Addr().Next()
			n.Gateway6 = r.Gateway6IP.String()
		} else {
			g6, err := netip.ParseAddr(n.Gateway6)
			if err != nil || !p6.Contains(g6) {
				return r, invalid("network %q: gateway6 %q is not an address inside %s", n.Name, n.Gateway6, p6)
			}
			r.Gateway6IP = g6
		}
	}
	if n.DHCP.RangeStart != "" || n.DHCP.RangeEnd != "" {
		s, err1 := netip.ParseAddr(n.DHCP.RangeStart)
		e, err2 := netip.ParseAddr(n.DHCP.RangeEnd)
		if err1 != nil || err2 != nil || !p.Contains(s) || !p.Contains(e) || e.Less(s) {
			return r, invalid("network %q: DHCP range %q-%q must be two addresses inside %s, start <= end", n.Name, n.DHCP.RangeStart, n.DHCP.RangeEnd, p)
		}
	}
	if n.DHCP.LeaseSecs < 0 {
		return r, invalid("network %q: DHCP lease time %d must be positive", n.Name, n.DHCP.LeaseSecs)
	}
	for _, d := range n.DHCP.DNS {
		if _, err := netip.ParseAddr(d); err != nil {
			return r, invalid("network %q: DNS server %q is not an IP address", n.Name, d)
		}
	}
	if n.MTU != 0 && (n.MTU < 576 || n.MTU > 9000) {
		return r, invalid("network %q: MTU %d must be between 576 and 9000", n.Name, n.MTU)
	}
	if n.Uplink != "" && len(n.Uplink) > MaxIfName {
		return r, invalid("network %q: uplink name %q is longer than %d bytes", n.Name, n.Uplink, MaxIfName)
	}
	switch n.Driver {
	case "bridge":
		if n.VXLAN != nil {
			return r, invalid("network %q: vxlan settings need driver \"vxlan\", not \"bridge\"", n.Name)
		}
	case "vxlan":
		if err := validateVXLAN(n); err != nil {
			return r, err
		}
		if n.VXLAN.Port == 0 {
			v := *n.VXLAN
			v.Port = 4789
			n.VXLAN = &v
		}
	}
	if n.Bridge != "" {
		if err := ValidIfName(n.Bridge); err != nil {
			return r, invalid("network %q: bridge name: %v", n.Name, err)
		}
		r.BridgeName = n.Bridge
	} else {
		r.BridgeName = BridgeName(linkPrefix, n.Name)
	}
	if err := ValidIfName(r.BridgeName); err != nil {
		return r, invalid("network %q: link prefix %q makes bridge name %q too long: %v", n.Name, linkPrefix, r.BridgeName, err)
	}
	r.Network = n
	return r, nil
}

func validateVXLAN(n Network) error {
	v := n.VXLAN
	if v == nil {
		return invalid("network %q: driver vxlan needs vxlan settings (vni, local_ip, peers)", n.Name)
	}
	if v.VNI < 1 || v.VNI > MaxVNI {
		return invalid("network %q: VNI %d out of range 1..%d", n.Name, v.VNI, MaxVNI)
	}
	if a, err := netip.ParseAddr(v.LocalIP); err != nil || !a.Is4() {
		return invalid("network %q: vxlan local_ip %q is not an IPv4 address", n.Name, v.LocalIP)
	}
	for _, p := range v.Peers {
		if a, err := netip.ParseAddr(p); err != nil || !a.Is4() {
			return invalid("network %q: vxlan peer %q is not an IPv4 address", n.Name, p)
		}
	}
	if v.Port < 0 || v.Port > 65535 {
		return invalid("network %q: vxlan port %d out of range 1..65535", n.Name, v.Port)
	}
	if v.Underlay != "" {
		if err := ValidIfName(v.Underlay); err != nil {
			return invalid("network %q: vxlan underlay: %v", n.Name, err)
		}
	}
	return nil
}

// ValidIfName checks a Linux interface name.
func ValidIfName(s string) error {
	if s == "" || len(s) > MaxIfName {
		return fmt.Errorf("interface name %q must be 1..%d bytes (IFNAMSIZ)", s, MaxIfName)
	}
	if strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		return fmt.Errorf("interface name %q contains '/', ':' or whitespace", s)
	}
	return nil
}

// CheckAgainst reports conflicts of r with the already existing networks.
func CheckAgainst(r ResolvedNetwork, others []ResolvedNetwork) error {
	for _, o := range others {
		if o.Name == r.Name {
			continue
		}
		if o.Prefix.Overlaps(r.Prefix) {
			return invalid("network %q: subnet %s overlaps subnet %s of network %q; choose a disjoint range", r.Name, r.Prefix, o.Prefix, o.Name)
		}
		if r.Prefix6.IsValid() && o.Prefix6.IsValid() && o.Prefix6.Overlaps(r.Prefix6) {
			return invalid("network %q: subnet6 %s overlaps subnet6 %s of network %q", r.Name, r.Prefix6, o.Prefix6, o.Name)
		}
		if o.BridgeName == r.BridgeName {
			return invalid("network %q: bridge name %s is already used by network %q", r.Name, r.BridgeName, o.Name)
		}
		if r.VXLAN != nil && o.VXLAN != nil && r.VXLAN.VNI == o.VXLAN.VNI {
			return invalid("network %q: VNI %d is already used by network %q; pick another VNI", r.Name, r.VXLAN.VNI, o.Name)
		}
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << hostBits) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// BroadcastAddr is the last address of an IPv4 prefix.
func BroadcastAddr(p netip.Prefix) netip.Addr { return lastAddr(p) }

// PortRange is an inclusive tcp/udp port range.
type PortRange struct{ From, To uint16 }

// ParsePort parses "80" or "8000-8100".
func ParsePort(s string) (PortRange, error) {
	a, b, isRange := strings.Cut(s, "-")
	from, err := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	if err != nil || from == 0 {
		return PortRange{}, fmt.Errorf("port %q: want 1..65535 or FROM-TO", s)
	}
	to := from
	if isRange {
		to, err = strconv.ParseUint(strings.TrimSpace(b), 10, 16)
		if err != nil || to == 0 || to < from {
			return PortRange{}, fmt.Errorf("port range %q: want FROM-TO with 1 <= FROM <= TO <= 65535", s)
		}
	}
	return PortRange{uint16(from), uint16(to)}, nil
}

// ValidateGroup checks a security group; networks and groups name what rules may refer to.
func ValidateGroup(g SecurityGroup, networks map[string]bool, groups map[string]bool) error {
	if !nameRE.MatchString(g.Name) {
		return invalid("security group name %q: use 1-63 letters, digits, '_', '.', '-'", g.Name)
	}
	ids := map[string]bool{}
	for i, r := range g.Rules {
		where := fmt.Sprintf("security group %q rule %d (%q)", g.Name, i, r.ID)
		if r.ID == "" || len(r.ID) > 63 {
			return invalid("%s: rule id must be 1..63 bytes", where)
		}
		if ids[r.ID] {
			return invalid("%s: duplicate rule id", where)
		}
		ids[r.ID] = true
		if r.Direction != Ingress && r.Direction != Egress {
			return invalid("%s: direction %q must be ingress or egress", where, r.Direction)
		}
		switch r.Protocol {
		case "tcp", "udp":
		case "icmp", "any", "":
			if len(r.Ports) > 0 {
				return invalid("%s: ports need protocol tcp or udp, not %q", where, r.Protocol)
			}
		default:
			return invalid("%s: protocol %q must be tcp, udp, icmp or any", where, r.Protocol)
		}
		for _, p := range r.Ports {
			if _, err := ParsePort(p); err != nil {
				return invalid("%s: %v", where, err)
			}
		}
		for _, c := range r.CIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				if a, err2 := netip.ParseAddr(c); err2 == nil && a.Is4() {
					continue
				}
				return invalid("%s: %q is not a CIDR or address", where, c)
			}
			if !p.Addr().Is4() {
				return invalid("%s: %q: only IPv4 peers are supported in rules", where, c)
			}
		}
		for _, n := range r.Networks {
			if networks != nil && !networks[n] {
				return invalid("%s: network %q does not exist", where, n)
			}
		}
		for _, sg := range r.Groups {
			if groups != nil && !groups[sg] && sg != g.Name {
				return invalid("%s: security group %q does not exist", where, sg)
			}
		}
	}
	return nil
}

// ParseMAC parses and checks a NIC MAC (unicast).
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, invalid("MAC %q is not a 6-byte Ethernet address", s)
	}
	if hw[0]&1 == 1 {
		return nil, invalid("MAC %q is a multicast address; use a unicast one", s)
	}
	return hw, nil
}
