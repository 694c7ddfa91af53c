package firewall

import (
	"encoding/binary"
	"net/netip"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Small builders for the nft expressions the renderer uses; each returns the expressions of
// one nft match, so a rule reads like its nft text.

func ifname(s string) []byte {
	b := make([]byte, 16)
	copy(b, s)
	return b
}

func metaIs(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data},
	}
}

func iifIs(name string) []expr.Any { return metaIs(expr.MetaKeyIIFNAME, ifname(name)) }
func oifIs(name string) []expr.Any { return metaIs(expr.MetaKeyOIFNAME, ifname(name)) }

func ifInSet(key expr.MetaKey, s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

func ipv4() []expr.Any { return metaIs(expr.MetaKeyNFPROTO, []byte{unix.NFPROTO_IPV4}) }

func l4proto(p byte) []expr.Any { return metaIs(expr.MetaKeyL4PROTO, []byte{p}) }

func ctEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// payload loads len bytes at off of base into register 1.
func payload(base expr.PayloadBase, off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: base, Offset: off, Len: n}
}

const (
	offSaddr = 12
	offDaddr = 16
)

func ipLookup(off uint32, s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		payload(expr.PayloadBaseNetworkHeader, off, 4),
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

func ipVmap(off uint32, s *nftables.Set) []expr.Any {
	return []expr.Any{
		payload(expr.PayloadBaseNetworkHeader, off, 4),
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, DestRegister: 0, IsDestRegSet: true},
	}
}

func ipEq(off uint32, a netip.Addr, neq bool) []expr.Any {
	op := expr.CmpOpEq
	if neq {
		op = expr.CmpOpNeq
	}
	return []expr.Any{payload(expr.PayloadBaseNetworkHeader, off, 4), &expr.Cmp{Op: op, Register: 1, Data: a.AsSlice()}}
}

func ipInPrefix(off uint32, p netip.Prefix) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	return []expr.Any{
		payload(expr.PayloadBaseNetworkHeader, off, 4),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func dportLookup(s *nftables.Set) []expr.Any {
	return []expr.Any{
		payload(expr.PayloadBaseTransportHeader, 2, 2),
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	}
}

func dportEq(p uint16) []expr.Any {
	return []expr.Any{payload(expr.PayloadBaseTransportHeader, 2, 2),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)}}
}

func verdict(k expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: k} }

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e ...expr.Any) []expr.Any { return e }

// span is an inclusive IPv4 range as integers.
type span struct{ from, to uint64 }

func u32(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(binary.BigEndian.Uint32(b[:]))
}

// prefixesToSpans merges overlapping or adjacent prefixes: the kernel rejects overlapping
// intervals, and merged spans keep the set small.
func prefixesToSpans(ps []netip.Prefix) []span {
	var ss []span
	for _, p := range ps {
		p = p.Masked()
		from := u32(p.Addr())
		ss = append(ss, span{from, from + (uint64(1) << (32 - p.Bits())) - 1})
	}
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

// intervalElements encodes spans for an interval set: each span is a start key and an
// end-exclusive key flagged IntervalEnd (omitted when the span reaches the top).
func intervalElements(ss []span, width int) []nftables.SetElement {
	var els []nftables.SetElement
	for _, s := range ss {
		els = append(els, nftables.SetElement{Key: be(s.from, width)})
		if end := s.to + 1; end < uint64(1)<<(8*width) {
			els = append(els, nftables.SetElement{Key: be(end, width), IntervalEnd: true})
		}
	}
	return els
}

func be(v uint64, width int) []byte {
	b := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}
