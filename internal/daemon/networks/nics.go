package networks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/store"
)

// AttachInstanceNIC gives instance (of project) a NIC nicID on networkName, a network of
// the same project: a persistent tap enslaved to the network's bridge, with the network's
// ACLs, anti-spoofing for the returned MAC and an IPAM address. The NIC is stored, so a
// daemon restart restores it. Calling it again for an attached NIC returns the same tap,
// MAC and IP. Errors carry HTTP statuses (daemon.Errorf): 404 unknown network, 400 bad
// input, 409 conflicts. The QEMU driver starts the guest with
// -netdev tap,ifname=<tap>,script=no,downscript=no and -device virtio-net-...,mac=<mac>.
func AttachInstanceNIC(ctx context.Context, d *daemon.Daemon, project, networkName, instance, nicID string) (tap, mac, ip string, err error) {
	r, err := AttachNIC(ctx, d, project, network.NIC{ID: nicID, Instance: instance, Network: networkName})
	if err != nil {
		return "", "", "", err
	}
	return r.Device, r.MAC, r.Addr.String(), nil
}

// DetachInstanceNIC removes the NIC (tap, rules, lease, record); detaching a NIC that is
// not attached is not an error, so instance deletion can call it unconditionally.
func DetachInstanceNIC(ctx context.Context, d *daemon.Daemon, project, nicID string) error {
	s, err := lookup(d)
	if err != nil {
		return err
	}
	if err := s.started(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nics, err := s.nics(ctx, "")
	if err != nil {
		return err
	}
	for _, n := range nics {
		if n.ID != nicID {
			continue
		}
		if n.Project != project {
			return daemon.Forbidden("nic %s belongs to project %s, not %s", nicID, n.Project, project)
		}
		if err := s.m.DetachNIC(ctx, nicID); err != nil && !errors.Is(err, network.ErrInvalid) {
			return netErr(err)
		}
		return s.d.Store().Update(ctx, func(tx store.Tx) error {
			return tx.Delete(nicPrefix + n.Network + "/" + nicID)
		})
	}
	return nil
}

// AttachNIC is AttachInstanceNIC for a NIC with more settings (static IP, MAC, bandwidth,
// an existing host link instead of a tap, as the tests' veth endpoints use). The network's
// ACLs replace nic.SecurityGroups.
func AttachNIC(ctx context.Context, d *daemon.Daemon, project string, nic network.NIC) (network.ResolvedNIC, error) {
	s, err := lookup(d)
	if err != nil {
		return network.ResolvedNIC{}, err
	}
	if err := s.started(); err != nil {
		return network.ResolvedNIC{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.network(ctx, project, nic.Network)
	if err != nil {
		// A project only attaches to its own networks.
		return network.ResolvedNIC{}, err
	}
	if all, err := s.nics(ctx, ""); err != nil {
		return network.ResolvedNIC{}, err
	} else {
		for _, o := range all {
			if o.ID == nic.ID && (o.Network != nic.Network || o.Project != project) {
				return network.ResolvedNIC{}, daemon.Conflict("nic %s is already attached to network %s (project %s): detach it first", nic.ID, o.Network, o.Project)
			}
		}
	}
	nic.SecurityGroups = groupsOf(rec)
	r, err := s.m.AttachNIC(ctx, nic)
	if err != nil {
		return r, netErr(err)
	}
	// Store the final MAC and address so that a restart re-creates exactly this NIC.
	stored := nic
	stored.MAC, stored.IP, stored.SecurityGroups = r.MAC, r.Addr.String(), nil
	b, _ := json.Marshal(nicRecord{NIC: stored, Project: project})
	if err := s.d.Store().Update(ctx, func(tx store.Tx) error { return tx.Put(nicPrefix+nic.Network+"/"+nic.ID, b) }); err != nil {
		s.m.DetachNIC(context.Background(), nic.ID)
		return r, fmt.Errorf("store nic %s: %w", nic.ID, err)
	}
	return r, nil
}

// InstanceNetwork is what a guest needs to configure its NIC on a project's network: the
// subnet (CIDR) and the gateway address (empty when the network has none). A network of
// another project is not found.
func InstanceNetwork(ctx context.Context, d *daemon.Daemon, project, networkName string) (subnet, gateway string, err error) {
	s, err := lookup(d)
	if err != nil {
		return "", "", err
	}
	rec, err := s.network(ctx, project, networkName)
	if err != nil {
		return "", "", err
	}
	gw := rec.Gateway
	if gw == "" {
		// Not given at create: the bridge holds the subnet's first address (network.Validate).
		if p, err := netip.ParsePrefix(rec.Subnet); err == nil {
			gw = p.Masked().Addr().Next().String()
		}
	}
	return rec.Subnet, gw, nil
}

// NetNSPath is the path of the network namespace that holds d's bridges and taps, or "" when
// it is the daemon's own (the hypervisor then opens taps by name).
func NetNSPath(d *daemon.Daemon) string {
	s, err := lookup(d)
	if err != nil {
		return ""
	}
	return s.ns.Path
}
