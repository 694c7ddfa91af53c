// Package bridge is the "bridge" network driver: one Linux bridge per network carrying the
// gateway address, NIC taps enslaved to it, forwarding enabled per bridge (never globally).
// The vxlan driver builds on it.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/revert"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func init() {
	network.Register("bridge", func(env network.Env) (network.Driver, error) { return New(env), nil })
}

// Driver is the bridge driver; Hook lets an embedding driver (vxlan) add links per network.
type Driver struct {
	Env  network.Env
	Name string // driver name matched against Network.Driver
	// Extra, when set, is called by Ensure after the bridge exists (vxlan adds its device).
	Extra func(h *netlink.Handle, n network.ResolvedNetwork, br netlink.Link, r *revert.Reverter) error
	// ExtraStray reports whether a link with the prefix belongs to the embedding driver.
	ExtraStray func(name string, desired []network.ResolvedNetwork) (mine, keep bool)
}

// New returns a bridge driver working in env.NS.
func New(env network.Env) *Driver {
	if env.LinkPrefix == "" {
		env.LinkPrefix = "fv"
	}
	return &Driver{Env: env, Name: "bridge"}
}

func notFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// Create fails when the bridge already exists, then behaves as Ensure.
func (d *Driver) Create(ctx context.Context, n network.ResolvedNetwork) error {
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.LinkByName(n.BridgeName); err == nil {
		return fmt.Errorf("network %q: bridge %s already exists in %s; delete it or use Ensure", n.Name, n.BridgeName, d.Env.NS)
	}
	return d.Ensure(ctx, n)
}

// Ensure creates or repairs the bridge, its addresses, forwarding and MTU.
func (d *Driver) Ensure(ctx context.Context, n network.ResolvedNetwork) error {
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	r := revert.New()
	defer r.Fail()
	br, err := h.LinkByName(n.BridgeName)
	if notFound(err) {
		la := netlink.NewLinkAttrs()
		la.Name = n.BridgeName
		if n.MTU != 0 {
			la.MTU = n.MTU
		}
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return fmt.Errorf("network %q: create bridge %s: %w", n.Name, n.BridgeName, err)
		}
		r.Add(func() { h.LinkDel(&netlink.Bridge{LinkAttrs: la}) })
		if br, err = h.LinkByName(n.BridgeName); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("network %q: look up bridge %s: %w", n.Name, n.BridgeName, err)
	} else if br.Type() != "bridge" {
		return fmt.Errorf("network %q: %s exists and is a %s, not a bridge; remove it or set another bridge name", n.Name, n.BridgeName, br.Type())
	}
	if n.MTU != 0 && br.Attrs().MTU != n.MTU {
		if err := h.LinkSetMTU(br, n.MTU); err != nil {
			return fmt.Errorf("network %q: set MTU %d on %s: %w", n.Name, n.MTU, n.BridgeName, err)
		}
	}
	// Bridges learn a MAC from their first port otherwise; a fixed one keeps ARP caches of
	// guests valid across port changes.
	if err := d.ensureAddrs(h, n, br); err != nil {
		return err
	}
	if d.Extra != nil {
		if err := d.Extra(h, n, br, r); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("network %q: set %s up: %w", n.Name, n.BridgeName, err)
	}
	if err := d.setForwarding(n); err != nil {
		return err
	}
	r.Success()
	return nil
}

func (d *Driver) ensureAddrs(h *netlink.Handle, n network.ResolvedNetwork, br netlink.Link) error {
	want := []*net.IPNet{{IP: n.GatewayIP.AsSlice(), Mask: net.CIDRMask(n.Prefix.Bits(), 32)}}
	if n.Prefix6.IsValid() {
		want = append(want, &net.IPNet{IP: n.Gateway6IP.AsSlice(), Mask: net.CIDRMask(n.Prefix6.Bits(), 128)})
	}
	for _, ipn := range want {
		if err := h.AddrReplace(br, &netlink.Addr{IPNet: ipn}); err != nil {
			return fmt.Errorf("network %q: set gateway %s on %s: %w", n.Name, ipn, n.BridgeName, err)
		}
	}
	// Drop global addresses that are not ours (a stale gateway after a subnet change).
	addrs, err := h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		keep := false
		for _, w := range want {
			if a.IPNet.String() == w.String() {
				keep = true
			}
		}
		if !keep {
			h.AddrDel(br, &a)
		}
	}
	return nil
}

// setForwarding turns on IPv4 forwarding for this bridge (and the NAT uplink) only: the
// kernel forwards a packet when its input device has forwarding on, so the global
// ip_forward switch stays as the host administrator set it.
func (d *Driver) setForwarding(n network.ResolvedNetwork) error {
	devs := []string{n.BridgeName}
	if n.NAT {
		up, err := d.Uplink(n)
		if err != nil {
			return err
		}
		devs = append(devs, up)
	}
	return d.Env.NS.Do(func() error {
		for _, dev := range devs {
			p := "/proc/sys/net/ipv4/conf/" + dev + "/forwarding"
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
				return fmt.Errorf("network %q: enable forwarding on %s: %w", n.Name, dev, err)
			}
		}
		return nil
	})
}

// Uplink returns the NAT uplink: Network.Uplink or the device of the IPv4 default route.
func (d *Driver) Uplink(n network.ResolvedNetwork) (string, error) {
	if n.Uplink != "" {
		return n.Uplink, nil
	}
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return "", err
	}
	defer h.Close()
	routes, err := h.RouteGet(net.IPv4(192, 0, 2, 1)) // TEST-NET-1: any off-link address
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("network %q: NAT needs an uplink: no default route in %s; set uplink", n.Name, d.Env.NS)
	}
	l, err := h.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", err
	}
	return l.Attrs().Name, nil
}

// Delete removes the taps (and vxlan device) on the bridge and the bridge; host links
// (given veth ends) are only released.
func (d *Driver) Delete(ctx context.Context, n network.ResolvedNetwork) error {
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := h.LinkByName(n.BridgeName)
	if notFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		name := l.Attrs().Name
		// Created taps and the vxlan device go with the bridge; foreign ports stay.
		if l.Attrs().MasterIndex == br.Attrs().Index && (strings.HasPrefix(name, d.Env.LinkPrefix+"t") || strings.HasPrefix(name, d.Env.LinkPrefix+"vx")) {
			if err := h.LinkDel(l); err != nil && !notFound(err) {
				return fmt.Errorf("network %q: delete tap %s: %w", n.Name, l.Attrs().Name, err)
			}
		}
	}
	if err := h.LinkDel(br); err != nil && !notFound(err) {
		return fmt.Errorf("network %q: delete bridge %s: %w", n.Name, n.BridgeName, err)
	}
	return nil
}

// Info reports the bridge's observed state.
func (d *Driver) Info(ctx context.Context, n network.ResolvedNetwork) (network.Info, error) {
	var info network.Info
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return info, err
	}
	defer h.Close()
	br, err := h.LinkByName(n.BridgeName)
	if err != nil {
		return info, fmt.Errorf("network %q: bridge %s: %w", n.Name, n.BridgeName, err)
	}
	info.Bridge = n.BridgeName
	info.BridgeUp = br.Attrs().Flags&net.FlagUp != 0
	info.MTU = br.Attrs().MTU
	addrs, _ := h.AddrList(br, netlink.FAMILY_ALL)
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			info.Addresses = append(info.Addresses, a.IPNet.String())
		}
	}
	links, _ := h.LinkList()
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			info.Ports = append(info.Ports, l.Attrs().Name)
			if vx, ok := l.(*netlink.Vxlan); ok {
				info.VXLAN = vx.Name
				fdb, _ := h.NeighList(vx.Index, unix.AF_BRIDGE)
				for _, f := range fdb {
					if f.IP != nil && f.HardwareAddr.String() == "00:00:00:00:00:00" {
						info.VXLANPeers = append(info.VXLANPeers, f.IP.String())
					}
				}
			}
		}
	}
	return info, nil
}
