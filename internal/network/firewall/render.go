package firewall

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func userComment(b []byte) string {
	s, _ := userdata.GetString(b, userdata.TypeComment)
	return s
}

type renderer struct {
	c        *nftables.Conn
	s        network.State
	counters map[string]expr.Counter
	inet     *nftables.Table
	err      error
}

func (r *renderer) chain(t *nftables.Table, name string) *nftables.Chain {
	return r.c.AddChain(&nftables.Chain{Name: name, Table: t})
}

func (r *renderer) base(t *nftables.Table, name string, typ nftables.ChainType, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return r.c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &accept})
}

func (r *renderer) rule(ch *nftables.Chain, ex []expr.Any, ud string) {
	rl := &nftables.Rule{Table: ch.Table, Chain: ch, Exprs: ex}
	if ud != "" {
		rl.UserData = comment(ud)
	}
	r.c.AddRule(rl)
}

// elemChunk bounds the elements per netlink message: a message's element list is one
// netlink attribute, whose length field is 16 bits. Even, so that an interval's start and
// end stay together.
const elemChunk = 1000

func (r *renderer) set(s *nftables.Set, els []nftables.SetElement) *nftables.Set {
	first := els
	if len(first) > elemChunk {
		first = els[:elemChunk]
	}
	if err := r.c.AddSet(s, first); err != nil && r.err == nil {
		r.err = fmt.Errorf("set %s: %w", s.Name, err)
	}
	for i := len(first); i < len(els); i += elemChunk {
		end := min(i+elemChunk, len(els))
		if err := r.c.SetAddElements(s, els[i:end]); err != nil && r.err == nil {
			r.err = fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	return s
}

func (r *renderer) render(inet, br, nat *nftables.Table) error {
	r.inet = inet
	r.c.AddTable(inet)
	r.c.AddTable(br)
	r.renderInet(inet)
	r.renderBridge(br)
	r.renderNAT(nat)
	return r.err
}

// nicsByGroup maps a security group to the addresses of the NICs that use it.
func (r *renderer) nicsByGroup() map[string][]netip.Prefix {
	m := map[string][]netip.Prefix{}
	for _, n := range r.s.NICs {
		for _, g := range n.SecurityGroups {
			m[g] = append(m[g], netip.PrefixFrom(n.Addr, 32))
		}
	}
	return m
}

func (r *renderer) renderInet(t *nftables.Table) {
	bridges := r.set(&nftables.Set{Table: t, Name: "bridges", KeyType: nftables.TypeIFName},
		ifElems(r.s.Networks, false))

	// Per-NIC security chains, and the maps that dispatch by NIC address.
	groups := map[string]network.SecurityGroup{}
	for _, g := range r.s.Groups {
		groups[g.Name] = g
	}
	members := r.nicsByGroup()
	netByName := map[string]network.ResolvedNetwork{}
	for _, n := range r.s.Networks {
		netByName[n.Name] = n
	}
	peerSets := map[string]*nftables.Set{}
	portSets := map[string]*nftables.Set{}
	var inElems, egElems []nftables.SetElement
	for _, nic := range r.s.NICs {
		if len(nic.SecurityGroups) == 0 || !nic.Addr.IsValid() {
			continue
		}
		in := r.chain(t, InChain(nic.ID))
		var eg *nftables.Chain
		for _, gname := range nic.SecurityGroups {
			g := groups[gname]
			for _, rule := range g.Rules {
				ch, final := in, verdict(expr.VerdictAccept)
				if rule.Direction == network.Egress {
					if eg == nil {
						eg = r.chain(t, EgChain(nic.ID))
					}
					ch, final = eg, verdict(expr.VerdictReturn)
				}
				off := uint32(offSaddr)
				if rule.Direction == network.Egress {
					off = offDaddr
				}
				ex := ipv4()
				key := g.Name + "/" + rule.ID
				if peers := rulePeers(rule, netByName, members); peers != nil {
					ps, ok := peerSets[key]
					if !ok {
						ps = r.set(&nftables.Set{Table: t, Name: chainName("a_", key), KeyType: nftables.TypeIPAddr, Interval: true},
							intervalElements(prefixesToSpans(peers), 4))
						peerSets[key] = ps
					}
					ex = cat(ex, ipLookup(off, ps, false))
				}
				ex = cat(ex, r.protoPorts(t, rule, key, portSets))
				ctr := r.counters[ch.Name+"|"+key]
				ex = cat(ex, one(&expr.Counter{Packets: ctr.Packets, Bytes: ctr.Bytes}, final))
				r.rule(ch, ex, key)
			}
		}
		inElems = append(inElems, nftables.SetElement{Key: nic.Addr.AsSlice(), VerdictData: jump(in.Name)})
		if eg != nil {
			r.rule(eg, one(verdict(expr.VerdictDrop)), "")
			egElems = append(egElems, nftables.SetElement{Key: nic.Addr.AsSlice(), VerdictData: jump(eg.Name)})
		}
	}
	inMap := r.set(&nftables.Set{Table: t, Name: "in_nics", KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict, IsMap: true}, inElems)
	egMap := r.set(&nftables.Set{Table: t, Name: "eg_nics", KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict, IsMap: true}, egElems)

	// Traffic forwarded out of each network.
	var fromElems []nftables.SetElement
	for _, n := range r.s.Networks {
		ch := r.chain(t, chainName("n_", n.Name))
		r.rule(ch, cat(ctEstablished(), one(verdict(expr.VerdictAccept))), "")
		r.rule(ch, cat(oifIs(n.BridgeName), one(verdict(expr.VerdictAccept))), "same-network")
		r.rule(ch, cat(ipv4(), ipVmap(offSaddr, egMap)), "")
		r.rule(ch, cat(ifInSet(expr.MetaKeyOIFNAME, bridges), ipv4(), ipVmap(offDaddr, inMap)), "")
		r.rule(ch, cat(ifInSet(expr.MetaKeyOIFNAME, bridges), one(&expr.Counter{}, verdict(expr.VerdictDrop))), "isolation")
		if n.NAT {
			r.rule(ch, one(verdict(expr.VerdictAccept)), "nat-uplink")
		}
		r.rule(ch, one(&expr.Counter{}, verdict(expr.VerdictDrop)), "isolation")
		fromElems = append(fromElems, nftables.SetElement{Key: ifname(n.BridgeName), VerdictData: jump(ch.Name)})
	}
	fromMap := r.set(&nftables.Set{Table: t, Name: "from_net", KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, IsMap: true}, fromElems)

	// Traffic from elsewhere (uplink, other host interfaces) into a network.
	toNet := r.chain(t, "to_net")
	r.rule(toNet, cat(ctEstablished(), one(verdict(expr.VerdictAccept))), "")
	r.rule(toNet, cat(ipv4(), ipVmap(offDaddr, inMap)), "")
	r.rule(toNet, one(&expr.Counter{}, verdict(expr.VerdictDrop)), "isolation")

	// Traffic from a network to the host itself: DHCP and DNS only (and IPv6 ND).
	toHost := r.chain(t, "to_host")
	r.rule(toHost, cat(ctEstablished(), one(verdict(expr.VerdictAccept))), "")
	r.rule(toHost, cat(ipv4(), l4proto(unix.IPPROTO_UDP), dportEq(67), one(verdict(expr.VerdictAccept))), "dhcp")
	r.rule(toHost, cat(l4proto(unix.IPPROTO_UDP), dportEq(53), one(verdict(expr.VerdictAccept))), "dns")
	r.rule(toHost, cat(l4proto(unix.IPPROTO_TCP), dportEq(53), one(verdict(expr.VerdictAccept))), "dns")
	r.rule(toHost, cat(l4proto(unix.IPPROTO_ICMPV6), icmp6ND(), one(verdict(expr.VerdictAccept))), "ipv6-nd")
	r.rule(toHost, one(&expr.Counter{}, verdict(expr.VerdictDrop)), "isolation")

	fw := r.base(t, "forward", nftables.ChainTypeFilter, nftables.ChainHookForward, 0)
	r.rule(fw, []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: fromMap.Name, SetID: fromMap.ID, IsDestRegSet: true}}, "")
	r.rule(fw, cat(ifInSet(expr.MetaKeyOIFNAME, bridges), one(jump(toNet.Name))), "")
	in := r.base(t, "input", nftables.ChainTypeFilter, nftables.ChainHookInput, 0)
	r.rule(in, cat(ifInSet(expr.MetaKeyIIFNAME, bridges), one(jump(toHost.Name))), "")
}

// icmp6ND matches ICMPv6 router/neighbour solicitation and advertisement (types 133-136).
func icmp6ND() []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseTransportHeader, 0, 1),
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{136}}}
}

func (r *renderer) protoPorts(t *nftables.Table, rule network.Rule, key string, portSets map[string]*nftables.Set) []expr.Any {
	switch rule.Protocol {
	case "icmp":
		return l4proto(unix.IPPROTO_ICMP)
	case "tcp", "udp":
		p := byte(unix.IPPROTO_TCP)
		if rule.Protocol == "udp" {
			p = unix.IPPROTO_UDP
		}
		ex := l4proto(p)
		if len(rule.Ports) == 0 {
			return ex
		}
		var spans []span
		for _, s := range rule.Ports {
			pr, _ := network.ParsePort(s)
			spans = append(spans, span{uint64(pr.From), uint64(pr.To)})
		}
		spans = mergeSpans(spans)
		if len(spans) == 1 && spans[0].from == spans[0].to {
			return cat(ex, dportEq(uint16(spans[0].from)))
		}
		ps, ok := portSets[key]
		if !ok {
			ps = r.set(&nftables.Set{Table: t, Name: chainName("o_", key), KeyType: nftables.TypeInetService, Interval: true,
				KeyByteOrder: binaryutil.BigEndian}, intervalElements(spans, 2))
			portSets[key] = ps
		}
		return cat(ex, dportLookup(ps))
	}
	return nil
}

func mergeSpans(ss []span) []span {
	sort.Slice(ss, func(i, j int) bool { return ss[i].from < ss[j].from })
	var out []span
	for _, s := range ss {
		if n := len(out); n > 0 && s.from <= out[n-1].to+1 {
			if s.to > out[n-1].to {
				out[n-1].to = s.to
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// rulePeers returns the prefixes a rule names, or nil for "anywhere".
func rulePeers(rule network.Rule, nets map[string]network.ResolvedNetwork, members map[string][]netip.Prefix) []netip.Prefix {
	if len(rule.CIDRs)+len(rule.Networks)+len(rule.Groups) == 0 {
		return nil
	}
	out := []netip.Prefix{}
	for _, c := range rule.CIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(c); err == nil {
			out = append(out, netip.PrefixFrom(a, 32))
		}
	}
	for _, n := range rule.Networks {
		if rn, ok := nets[n]; ok {
			out = append(out, rn.Prefix)
		}
	}
	for _, g := range rule.Groups {
		out = append(out, members[g]...)
	}
	return out
}

func ifElems(ns []network.ResolvedNetwork, natOnly bool) []nftables.SetElement {
	var els []nftables.SetElement
	for _, n := range ns {
		if !natOnly || n.NAT {
			els = append(els, nftables.SetElement{Key: ifname(n.BridgeName)})
		}
	}
	return els
}
