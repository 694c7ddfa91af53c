package network

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/finvirt/finvirt/internal/network/ipam"
	"github.com/finvirt/finvirt/internal/revert"
)

func (m *Manager) resolveNICLocked(nic NIC) (ResolvedNIC, ResolvedNetwork, error) {
	var r ResolvedNIC
	if !nameRE.MatchString(nic.ID) {
		return r, ResolvedNetwork{}, invalid("nic id %q: use 1-63 letters, digits, '_', '.', '-'", nic.ID)
	}
	n, ok := m.networks[nic.Network]
	if !ok {
		return r, n, invalid("nic %q: network %q does not exist", nic.ID, nic.Network)
	}
	r.NIC = nic
	if nic.MAC != "" {
		hw, err := ParseMAC(nic.MAC)
		if err != nil {
			return r, n, fmt.Errorf("nic %q: %w", nic.ID, err)
		}
		r.HWAddr = hw
	} else {
		r.HWAddr = DeriveMAC(nic.Network, nic.Instance, nic.ID)
	}
	r.MAC = r.HWAddr.String()
	if nic.IP != "" {
		a, err := netip.ParseAddr(nic.IP)
		if err != nil || !n.Prefix.Contains(a) {
			return r, n, invalid("nic %q: address %q is not inside subnet %s of network %q", nic.ID, nic.IP, n.Prefix, n.Name)
		}
		r.Addr = a
	}
	if nic.IP6 != "" {
		a, err := netip.ParseAddr(nic.IP6)
		if err != nil || !n.Prefix6.IsValid() || !n.Prefix6.Contains(a) {
			return r, n, invalid("nic %q: address %q is not inside subnet6 of network %q", nic.ID, nic.IP6, n.Name)
		}
		r.Addr6 = a
	}
	switch {
	case nic.HostLink != "":
		r.Device = nic.HostLink
	case nic.Tap != "":
		r.Device = nic.Tap
	default:
		r.Device = TapName(m.opts.LinkPrefix, nic.ID)
	}
	if err := ValidIfName(r.Device); err != nil {
		return r, n, invalid("nic %q: %v", nic.ID, err)
	}
	if nic.BandwidthMbit < 0 {
		return r, n, invalid("nic %q: bandwidth %d Mbit/s must not be negative", nic.ID, nic.BandwidthMbit)
	}
	for _, g := range nic.SecurityGroups {
		if _, ok := m.groups[g]; !ok {
			return r, n, invalid("nic %q: security group %q does not exist; create it first", nic.ID, g)
		}
	}
	for _, o := range m.nics {
		if o.ID == nic.ID {
			continue
		}
		if o.Device == r.Device {
			return r, n, invalid("nic %q: device %s is already used by nic %q", nic.ID, r.Device, o.ID)
		}
		if o.Network == nic.Network && o.MAC == r.MAC {
			return r, n, invalid("nic %q: MAC %s is already used by nic %q on network %q", nic.ID, r.MAC, o.ID, n.Name)
		}
	}
	r.Bridge = n.BridgeName
	return r, n, nil
}

// AttachNIC validates nic, assigns its address (static reservation or IPAM), plugs its
// device into the bridge and applies its firewall rules; attaching an already attached NIC
// with the same settings changes nothing.
func (m *Manager) AttachNIC(ctx context.Context, nic NIC) (ResolvedNIC, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, n, err := m.resolveNICLocked(nic)
	if err != nil {
		return r, err
	}
	old, existed := m.nics[nic.ID]
	if existed && (old.Network != nic.Network || old.Device != r.Device) {
		return r, invalid("nic %q is attached to %q as %s; detach it before moving it", nic.ID, old.Network, old.Device)
	}
	rv := revert.New()
	defer rv.Fail()
	rv.Add(m.resyncLocked)
	pool, _ := m.Pool(n.Name)
	_, leaseErr := pool.Lookup(r.MAC)
	hadLease := leaseErr == nil
	if r.Addr.IsValid() {
		if _, err := pool.Reserve(r.MAC, r.Addr); err != nil {
			return r, fmt.Errorf("nic %q: %w", nic.ID, err)
		}
	} else {
		l, err := pool.Allocate(r.MAC)
		if err != nil {
			return r, fmt.Errorf("nic %q: %w", nic.ID, err)
		}
		r.Addr, _ = netip.ParseAddr(l.IP)
	}
	if !hadLease {
		rv.Add(func() { pool.Release(r.MAC) })
	}
	d, _ := m.driver(n.Driver)
	if err := d.AttachNIC(ctx, n, r); err != nil {
		return r, err
	}
	if !existed {
		rv.Add(func() { d.DetachNIC(context.Background(), n, r) })
	}
	m.nics[nic.ID] = r
	rv.Add(func() {
		if existed {
			m.nics[nic.ID] = old
		} else {
			delete(m.nics, nic.ID)
		}
	})
	if err := m.syncLocked(ctx); err != nil {
		return r, err
	}
	rv.Success()
	return r, nil
}

// DetachNIC removes the NIC's device (or releases the host link), its rules and its lease.
func (m *Manager) DetachNIC(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.nics[id]
	if !ok {
		return invalid("nic %q is not attached", id)
	}
	delete(m.nics, id)
	if err := m.syncLocked(ctx); err != nil {
		m.nics[id] = r
		m.resyncLocked()
		return err
	}
	n := m.networks[r.Network]
	d, _ := m.driver(n.Driver)
	if err := d.DetachNIC(ctx, n, r); err != nil {
		return err
	}
	pool, _ := m.Pool(r.Network)
	return pool.Release(r.MAC)
}

// NICs lists attached NICs sorted by id.
func (m *Manager) NICs() []ResolvedNIC {
	return m.State().NICs
}

// PutSecurityGroup creates or replaces a group; NICs using it get the new rules in the same
// atomic firewall update.
func (m *Manager) PutSecurityGroup(ctx context.Context, g SecurityGroup) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	nets := map[string]bool{}
	for n := range m.networks {
		nets[n] = true
	}
	groups := map[string]bool{}
	for n := range m.groups {
		groups[n] = true
	}
	if err := ValidateGroup(g, nets, groups); err != nil {
		return err
	}
	old, existed := m.groups[g.Name]
	m.groups[g.Name] = g
	if err := m.syncLocked(ctx); err != nil {
		if existed {
			m.groups[g.Name] = old
		} else {
			delete(m.groups, g.Name)
		}
		m.resyncLocked()
		return err
	}
	return nil
}

// DeleteSecurityGroup removes a group no NIC or rule uses.
func (m *Manager) DeleteSecurityGroup(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[name]
	if !ok {
		return invalid("security group %q does not exist", name)
	}
	for _, n := range m.nics {
		for _, sg := range n.SecurityGroups {
			if sg == name {
				return fmt.Errorf("security group %q is used by nic %q: %w", name, n.ID, ErrInUse)
			}
		}
	}
	for _, o := range m.groups {
		for _, r := range o.Rules {
			for _, sg := range r.Groups {
				if sg == name && o.Name != name {
					return fmt.Errorf("security group %q is named by rule %q of group %q: %w", name, r.ID, o.Name, ErrInUse)
				}
			}
		}
	}
	delete(m.groups, name)
	if err := m.syncLocked(ctx); err != nil {
		m.groups[name] = g
		m.resyncLocked()
		return err
	}
	return nil
}

// Reconcile replaces the manager's state by the desired one (the daemon's stored objects),
// validating everything first, then makes links, firewall and DHCP match it: missing pieces
// are recreated, strays carrying the prefix removed, nothing duplicated. It is what the
// daemon calls at start, after a crash.
func (m *Manager) Reconcile(ctx context.Context, networks []Network, nics []NIC, groups []SecurityGroup) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh := &Manager{opts: m.opts, drivers: m.drivers, networks: map[string]ResolvedNetwork{},
		nics: map[string]ResolvedNIC{}, groups: map[string]SecurityGroup{}, pools: map[string]*ipam.Pool{}}
	sort.Slice(networks, func(i, j int) bool { return networks[i].Name < networks[j].Name })
	for _, n := range networks {
		r, err := fresh.resolveLocked(n)
		if err != nil {
			return err
		}
		p, err := fresh.newPool(r)
		if err != nil {
			return err
		}
		fresh.networks[n.Name] = r
		fresh.pools[n.Name] = p
	}
	netNames := map[string]bool{}
	for n := range fresh.networks {
		netNames[n] = true
	}
	groupNames := map[string]bool{}
	for _, g := range groups {
		groupNames[g.Name] = true
	}
	for _, g := range groups {
		if err := ValidateGroup(g, netNames, groupNames); err != nil {
			return err
		}
		fresh.groups[g.Name] = g
	}
	for _, nic := range nics {
		r, n, err := fresh.resolveNICLocked(nic)
		if err != nil {
			return err
		}
		pool := fresh.pools[n.Name]
		if r.Addr.IsValid() {
			_, err = pool.Reserve(r.MAC, r.Addr)
		} else {
			var l ipam.Lease
			l, err = pool.Allocate(r.MAC)
			r.Addr, _ = netip.ParseAddr(l.IP)
		}
		if err != nil {
			return fmt.Errorf("nic %q: %w", nic.ID, err)
		}
		fresh.nics[nic.ID] = r
	}
	all := fresh.resolvedNetworks("")
	var allNICs []ResolvedNIC
	for _, n := range fresh.nics {
		allNICs = append(allNICs, n)
	}
	for _, name := range Drivers() {
		// Every registered driver reconciles, even one with no networks left, so that its
		// strays go too.
		d, err := fresh.driver(name)
		if err != nil {
			return err
		}
		if err := d.Reconcile(ctx, all, allNICs); err != nil {
			return err
		}
	}
	m.networks, m.nics, m.groups = fresh.networks, fresh.nics, fresh.groups
	m.poolMu.Lock()
	m.pools = fresh.pools
	m.poolMu.Unlock()
	return m.syncLocked(ctx)
}

// Close stops the services' background work (kernel state stays for the next Reconcile).
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first error
	for _, s := range m.opts.Services {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
