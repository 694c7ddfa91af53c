package firewall

import (
	"net/netip"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

const (
	ethTypeIP   = 0x0800
	ethTypeARP  = 0x0806
	ethTypeIPv6 = 0x86dd
)

func etherType(t uint16) []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseLLHeader, 12, 2),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(t)}}
}

func llNeq(off, n uint32, data []byte) []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseLLHeader, off, n), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: data}}
}

func nhCmp(op expr.CmpOp, off, n uint32, data []byte) []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseNetworkHeader, off, n), &expr.Cmp{Op: op, Register: 1, Data: data}}
}

// renderBridge builds anti-spoofing in the bridge family: at bridge prerouting, a frame
// entering from a NIC's port must carry the NIC's MAC, ARP must announce the NIC's MAC and
// IP, IPv4 must come from the NIC's IP (or 0.0.0.0 for DHCP), IPv6 from its address or a
// link-local one; any other EtherType is dropped.
func (r *renderer) renderBridge(t *nftables.Table) {
	var portElems []nftables.SetElement
	for _, nic := range r.s.NICs {
		ch := r.chain(t, PortChain(nic.ID))
		drop := func(ex []expr.Any, why string) {
			r.rule(ch, cat(ex, one(&expr.Counter{}, verdict(expr.VerdictDrop))), why)
		}
		if nic.BandwidthMbit > 0 {
			// Egress policing: TBF on the tap only shapes traffic towards the guest and this
			// kernel has no act_police, so traffic from the guest over the NIC's rate is
			// dropped here (TCP backs off to the rate). Burst: 100 ms at the rate.
			rate := uint64(nic.BandwidthMbit) * 1000 * 1000 / 8
			drop([]expr.Any{&expr.Limit{Type: expr.LimitTypePktBytes, Rate: rate, Over: true,
				Unit: expr.LimitTimeSecond, Burst: uint32(max(rate/10, 64*1024))}}, "egress-limit")
		}
		drop(llNeq(6, 6, nic.HWAddr), "spoofed-mac")
		// ARP: sender hardware address at 8, sender protocol address at 14 (Ethernet/IPv4).
		drop(cat(etherType(ethTypeARP), nhCmp(expr.CmpOpNeq, 8, 6, nic.HWAddr)), "spoofed-arp-mac")
		if nic.Addr.IsValid() {
			// 0.0.0.0 is the sender of RFC 5227 address probes.
			ok := r.set(&nftables.Set{Table: t, Name: chainName("s_", nic.ID), KeyType: nftables.TypeIPAddr},
				[]nftables.SetElement{{Key: nic.Addr.AsSlice()}, {Key: []byte{0, 0, 0, 0}}})
			r.rule(ch, cat(etherType(ethTypeARP), []expr.Any{payload(expr.PayloadBaseNetworkHeader, 14, 4),
				&expr.Lookup{SourceRegister: 1, SetName: ok.Name, SetID: ok.ID, Invert: true}},
				one(&expr.Counter{}, verdict(expr.VerdictDrop))), "spoofed-arp-ip")
			r.rule(ch, cat(etherType(ethTypeARP), one(verdict(expr.VerdictReturn))), "")
			r.rule(ch, cat(etherType(ethTypeIP), nhCmp(expr.CmpOpEq, offSaddr, 4, nic.Addr.AsSlice()), one(verdict(expr.VerdictReturn))), "")
		} else {
			r.rule(ch, cat(etherType(ethTypeARP), nhCmp(expr.CmpOpEq, 14, 4, []byte{0, 0, 0, 0}), one(verdict(expr.VerdictReturn))), "")
		}
		// DHCP before the NIC has its address.
		r.rule(ch, cat(etherType(ethTypeIP), nhCmp(expr.CmpOpEq, offSaddr, 4, []byte{0, 0, 0, 0}),
			l4proto(unix.IPPROTO_UDP), dportEq(67), one(verdict(expr.VerdictReturn))), "dhcp")
		r.renderNDGuard(ch, nic, drop)
		if nic.Addr6.IsValid() {
			r.rule(ch, cat(etherType(ethTypeIPv6), nhCmp(expr.CmpOpEq, 8, 16, nic.Addr6.AsSlice()), one(verdict(expr.VerdictReturn))), "")
		}
		// Link-local (fe80::/10) and unspecified (DAD) sources are needed for IPv6 ND.
		ll := netip.MustParseAddr("fe80::").AsSlice()
		r.rule(ch, cat(etherType(ethTypeIPv6), []expr.Any{payload(expr.PayloadBaseNetworkHeader, 8, 2),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ll[:2]}}, one(verdict(expr.VerdictReturn))), "")
		r.rule(ch, cat(etherType(ethTypeIPv6), nhCmp(expr.CmpOpEq, 8, 16, make([]byte, 16)), one(verdict(expr.VerdictReturn))), "")
		drop(nil, "spoofed-ip")
		portElems = append(portElems, nftables.SetElement{Key: ifname(nic.Device), VerdictData: jump(ch.Name)})
	}
	ports := r.set(&nftables.Set{Table: t, Name: "ports", KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, IsMap: true}, portElems)
	pre := r.base(t, "prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, -200)
	r.rule(pre, []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: ports.Name, SetID: ports.ID, IsDestRegSet: true}}, "")
}

// renderNAT masquerades NAT networks towards anything that is not a finvirt subnet, so
// traffic between networks keeps its source address (ACLs by source network still hold).
func (r *renderer) renderNAT(t *nftables.Table) {
	var natNets []netip.Prefix
	var all []netip.Prefix
	for _, n := range r.s.Networks {
		all = append(all, n.Prefix)
		if n.NAT {
			natNets = append(natNets, n.Prefix)
		}
	}
	if len(natNets) == 0 {
		return
	}
	r.c.AddTable(t)
	subnets := r.set(&nftables.Set{Table: t, Name: "subnets", KeyType: nftables.TypeIPAddr, Interval: true},
		intervalElements(prefixesToSpans(all), 4))
	post := r.base(t, "postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, 100)
	for _, p := range natNets {
		r.rule(post, cat(ipInPrefix(offSaddr, p), ipLookup(offDaddr, subnets, true), one(&expr.Counter{}, &expr.Masq{})), "nat "+p.String())
	}
}

// ICMPv6 neighbour discovery, at fixed offsets in the network header: a 40-byte IPv6 header
// then the ICMPv6 message (ND carries no extension headers; RFC 6980 has nodes drop
// fragmented ND).
const (
	ndNextHdr  = 6  // IPv6 next header: 58 = ICMPv6
	ndType     = 40 // ICMPv6 type
	ndTarget   = 48 // NS/NA target address (16 bytes)
	ndOptType  = 64 // first option: 1 = source, 2 = target link-layer address
	ndOptLLA   = 66 // the option's MAC (6 bytes)
	icmp6RA    = 134
	icmp6NS    = 135
	icmp6NA    = 136
	ndOptSLLA  = 1
	ndOptTLLA  = 2
	protoICMP6 = 58
)

func icmp6Type(t byte) []expr.Any {
	return cat(etherType(ethTypeIPv6), nhCmp(expr.CmpOpEq, ndNextHdr, 1, []byte{protoICMP6}), nhCmp(expr.CmpOpEq, ndType, 1, []byte{t}))
}

// renderNDGuard drops neighbour discovery spoofing from a NIC: router advertisements (a
// guest is never the router), NS/NA whose link-layer address option is not the NIC's MAC, and
// NAs that claim a global target address other than the NIC's own (a guest announcing
// another's address to take its traffic). Link-local targets pass: guests choose their
// link-local addresses (EUI-64 or stable-privacy), and those do not route.
func (r *renderer) renderNDGuard(ch *nftables.Chain, nic network.ResolvedNIC, drop func([]expr.Any, string)) {
	drop(icmp6Type(icmp6RA), "rogue-ra")
	drop(cat(icmp6Type(icmp6NS), nhCmp(expr.CmpOpEq, ndOptType, 1, []byte{ndOptSLLA}), nhCmp(expr.CmpOpNeq, ndOptLLA, 6, nic.HWAddr)), "spoofed-nd-lladdr")
	drop(cat(icmp6Type(icmp6NA), nhCmp(expr.CmpOpEq, ndOptType, 1, []byte{ndOptTLLA}), nhCmp(expr.CmpOpNeq, ndOptLLA, 6, nic.HWAddr)), "spoofed-nd-lladdr")
	ll := netip.MustParseAddr("fe80::").AsSlice()
	notLinkLocal := []expr.Any{payload(expr.PayloadBaseNetworkHeader, ndTarget, 2),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ll[:2]}}
	target := cat(icmp6Type(icmp6NA), notLinkLocal)
	if nic.Addr6.IsValid() {
		target = cat(target, nhCmp(expr.CmpOpNeq, ndTarget, 16, nic.Addr6.AsSlice()))
	}
	drop(target, "spoofed-nd-target")
}
