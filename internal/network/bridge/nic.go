package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/qos"
	"github.com/finvirt/finvirt/internal/revert"
	"github.com/vishvananda/netlink"
)

// AttachNIC creates a persistent tap owned by nic.TapOwner (QEMU later opens it with
// -netdev tap,ifname=...,script=no,downscript=no) or takes nic.HostLink, enslaves it to the
// bridge, sets it up and applies the bandwidth limit. Attaching twice is a no-op.
func (d *Driver) AttachNIC(ctx context.Context, n network.ResolvedNetwork, nic network.ResolvedNIC) error {
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	br, err := h.LinkByName(n.BridgeName)
	if err != nil {
		return fmt.Errorf("nic %q: bridge %s of network %q: %w (ensure the network first)", nic.ID, n.BridgeName, n.Name, err)
	}
	r := revert.New()
	defer r.Fail()
	link, err := h.LinkByName(nic.Device)
	if notFound(err) {
		if nic.HostLink != "" {
			return fmt.Errorf("nic %q: host link %s does not exist in %s", nic.ID, nic.HostLink, d.Env.NS)
		}
		tap := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: nic.Device, MTU: br.Attrs().MTU},
			Mode:      netlink.TUNTAP_MODE_TAP,
			// What QEMU asks for when it opens the tap; single queue must match.
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE,
			Owner: uint32(nic.TapOwner),
		}
		// /dev/net/tun creates the device in the namespace of the calling thread.
		if err := d.Env.NS.Do(func() error { return netlink.LinkAdd(tap) }); err != nil {
			return fmt.Errorf("nic %q: create tap %s: %w", nic.ID, nic.Device, err)
		}
		r.Add(func() {
			if l, err := h.LinkByName(nic.Device); err == nil {
				h.LinkDel(l)
			}
		})
		if link, err = h.LinkByName(nic.Device); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("nic %q: enslave %s to %s: %w", nic.ID, nic.Device, n.BridgeName, err)
		}
		r.Add(func() { h.LinkSetNoMaster(link) })
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("nic %q: set %s up: %w", nic.ID, nic.Device, err)
	}
	if err := qos.Apply(h, link, qos.Limit{Mbit: nic.BandwidthMbit}); err != nil {
		return fmt.Errorf("nic %q: %w", nic.ID, err)
	}
	r.Success()
	return nil
}

// DetachNIC deletes a created tap or releases a host link (and its limit).
func (d *Driver) DetachNIC(ctx context.Context, n network.ResolvedNetwork, nic network.ResolvedNIC) error {
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(nic.Device)
	if notFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if nic.HostLink != "" {
		qos.Clear(h, link)
		if err := h.LinkSetNoMaster(link); err != nil {
			return fmt.Errorf("nic %q: release %s: %w", nic.ID, nic.Device, err)
		}
		return nil
	}
	if err := h.LinkDel(link); err != nil && !notFound(err) {
		return fmt.Errorf("nic %q: delete tap %s: %w", nic.ID, nic.Device, err)
	}
	return nil
}

// Reconcile ensures every desired network of this driver and every NIC on them, then
// removes links carrying the prefix that nothing desired explains. desired holds all
// networks of the host (of every driver) so that one driver never removes another's links.
func (d *Driver) Reconcile(ctx context.Context, desired []network.ResolvedNetwork, nics []network.ResolvedNIC) error {
	byName := map[string]network.ResolvedNetwork{}
	bridges := map[string]bool{}
	for _, n := range desired {
		byName[n.Name] = n
		bridges[n.BridgeName] = true
		if n.Driver != d.Name {
			continue
		}
		if err := d.Ensure(ctx, n); err != nil {
			return err
		}
	}
	devices := map[string]bool{}
	for _, nic := range nics {
		devices[nic.Device] = true
		n, ok := byName[nic.Network]
		if !ok || n.Driver != d.Name {
			continue
		}
		if err := d.AttachNIC(ctx, n, nic); err != nil {
			return err
		}
	}
	h, err := d.Env.NS.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	p := d.Env.LinkPrefix
	for _, l := range links {
		name := l.Attrs().Name
		stray := false
		mine := false
		if d.ExtraStray != nil {
			var keep bool
			if mine, keep = d.ExtraStray(name, desired); mine {
				stray = !keep
			}
		}
		switch {
		case mine:
		case strings.HasPrefix(name, p+"br") && l.Type() == "bridge":
			stray = !bridges[name]
		case strings.HasPrefix(name, p+"t") && l.Type() == "tuntap":
			stray = !devices[name]
		}
		if stray {
			if err := h.LinkDel(l); err != nil && !notFound(err) {
				return fmt.Errorf("reconcile: remove stray link %s: %w", name, err)
			}
		}
	}
	return nil
}
