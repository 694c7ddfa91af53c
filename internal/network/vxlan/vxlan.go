// Package vxlan is the "vxlan" network driver: the bridge driver plus a VXLAN device with
// the network's VNI enslaved to the bridge. Peers are unicast: each gets an all-zero FDB
// entry (appended, so BUM traffic is replicated to every peer), learning is off, so
// nothing depends on multicast in the underlay.
package vxlan

import (
	"fmt"
	"net"
	"strings"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/revert"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func init() {
	network.Register("vxlan", func(env network.Env) (network.Driver, error) { return New(env), nil })
}

// VXLAN encapsulation overhead on an IPv4 underlay (outer IP+UDP+VXLAN+inner Ethernet).
const overhead = 50

// New returns the vxlan driver.
func New(env network.Env) network.Driver {
	d := bridge.New(env)
	d.Name = "vxlan"
	d.Extra = func(h *netlink.Handle, n network.ResolvedNetwork, br netlink.Link, r *revert.Reverter) error {
		return ensureVXLAN(h, env.LinkPrefix, n, br, r)
	}
	d.ExtraStray = func(name string, desired []network.ResolvedNetwork) (bool, bool) {
		if !strings.HasPrefix(name, env.LinkPrefix+"vx") {
			return false, false
		}
		for _, n := range desired {
			if n.VXLAN != nil && network.VXLANName(env.LinkPrefix, n.VXLAN.VNI) == name {
				return true, true
			}
		}
		return true, false
	}
	return d
}

func ensureVXLAN(h *netlink.Handle, prefix string, n network.ResolvedNetwork, br netlink.Link, r *revert.Reverter) error {
	v := n.VXLAN
	name := network.VXLANName(prefix, v.VNI)
	local := net.ParseIP(v.LocalIP).To4()
	want := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
		VxlanId: int(v.VNI), SrcAddr: local, Port: v.Port, Learning: false}
	if v.Underlay != "" {
		ul, err := h.LinkByName(v.Underlay)
		if err != nil {
			return fmt.Errorf("network %q: vxlan underlay %s: %w", n.Name, v.Underlay, err)
		}
		want.VtepDevIndex = ul.Attrs().Index
		if n.MTU == 0 {
			want.MTU = ul.Attrs().MTU - overhead
		}
	}
	if n.MTU != 0 {
		want.MTU = n.MTU
	}
	l, err := h.LinkByName(name)
	if err == nil {
		cur, ok := l.(*netlink.Vxlan)
		// A device with other immutable settings is replaced, not patched.
		if !ok || cur.VxlanId != want.VxlanId || !cur.SrcAddr.Equal(local) || cur.Port != want.Port || cur.Learning ||
			(want.VtepDevIndex != 0 && cur.VtepDevIndex != want.VtepDevIndex) {
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("network %q: replace vxlan %s: %w", n.Name, name, err)
			}
			l = nil
		}
	}
	if l == nil || err != nil {
		if err := h.LinkAdd(want); err != nil {
			return fmt.Errorf("network %q: create vxlan %s (VNI %d): %w", n.Name, name, v.VNI, err)
		}
		r.Add(func() { h.LinkDel(want) })
		if l, err = h.LinkByName(name); err != nil {
			return err
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(l, br); err != nil {
			return err
		}
	}
	if want.MTU != 0 && l.Attrs().MTU != want.MTU {
		if err := h.LinkSetMTU(l, want.MTU); err != nil {
			return fmt.Errorf("network %q: MTU %d on %s: %w", n.Name, want.MTU, name, err)
		}
		if br.Attrs().MTU > want.MTU {
			h.LinkSetMTU(br, want.MTU)
		}
	}
	if err := syncPeers(h, l, n); err != nil {
		return err
	}
	return h.LinkSetUp(l)
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// syncPeers makes the all-zero FDB entries exactly the configured peers.
func syncPeers(h *netlink.Handle, l netlink.Link, n network.ResolvedNetwork) error {
	want := map[string]bool{}
	for _, p := range n.VXLAN.Peers {
		want[net.ParseIP(p).To4().String()] = true
	}
	fdb, err := h.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, f := range fdb {
		if f.IP == nil || f.HardwareAddr.String() != zeroMAC.String() {
			continue
		}
		ip := f.IP.String()
		if !want[ip] {
			h.NeighDel(&f)
			continue
		}
		have[ip] = true
	}
	for p := range want {
		if have[p] {
			continue
		}
		e := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
			Flags: netlink.NTF_SELF, IP: net.ParseIP(p).To4(), HardwareAddr: zeroMAC}
		if err := h.NeighAppend(e); err != nil {
			return fmt.Errorf("network %q: vxlan peer %s: %w", n.Name, p, err)
		}
	}
	return nil
}
