package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/finvirt/finvirt/internal/network/ipam"
	"github.com/finvirt/finvirt/internal/revert"
)

// Service follows the whole network state: the firewall renders it into nftables, the
// DHCP service runs one server per DHCP-enabled network. Sync must be idempotent and must
// leave the previous state in place when it fails.
type Service interface {
	Sync(ctx context.Context, s State) error
	// Close stops background work (DHCP servers) without removing kernel state.
	Close() error
}

// Options configure a Manager.
type Options struct {
	NS         NetNS
	LinkPrefix string // default "fv"
	Leases     ipam.LeaseStore
	// Services are synced after every change, in order (firewall first).
	Services []Service
}

// Manager owns the networks, NICs and security groups of one host (one namespace) and keeps
// links, firewall and DHCP in line with them. It keeps no state of its own across restarts:
// the daemon stores the objects and calls Reconcile at start.
type Manager struct {
	mu       sync.Mutex
	opts     Options
	drivers  map[string]Driver
	networks map[string]ResolvedNetwork
	nics     map[string]ResolvedNIC
	groups   map[string]SecurityGroup
	// poolMu guards pools alone, so that services (DHCP handlers) can look up a pool while
	// the manager holds mu during a sync.
	poolMu sync.RWMutex
	pools  map[string]*ipam.Pool
	// dirty: a sync failed part-way, some services hold a state the manager rolled back.
	dirty bool
}

// NewManager returns a Manager with no networks.
func NewManager(opts Options) (*Manager, error) {
	if opts.LinkPrefix == "" {
		opts.LinkPrefix = "fv"
	}
	if len(opts.LinkPrefix) > 4 {
		return nil, fmt.Errorf("%w: link prefix %q: at most 4 bytes so that generated names fit IFNAMSIZ", ErrInvalid, opts.LinkPrefix)
	}
	if opts.Leases == nil {
		opts.Leases = ipam.NewMemStore()
	}
	return &Manager{opts: opts, drivers: map[string]Driver{}, networks: map[string]ResolvedNetwork{},
		nics: map[string]ResolvedNIC{}, groups: map[string]SecurityGroup{}, pools: map[string]*ipam.Pool{}}, nil
}

// Leases is the lease store the manager's pools use.
func (m *Manager) Leases() ipam.LeaseStore { return m.opts.Leases }

func (m *Manager) driver(name string) (Driver, error) {
	if d, ok := m.drivers[name]; ok {
		return d, nil
	}
	d, err := NewDriver(name, Env{NS: m.opts.NS, LinkPrefix: m.opts.LinkPrefix})
	if err != nil {
		return nil, err
	}
	m.drivers[name] = d
	return d, nil
}

func (m *Manager) resolvedNetworks(except string) []ResolvedNetwork {
	var out []ResolvedNetwork
	for _, n := range m.networks {
		if n.Name != except {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// State is a snapshot of everything the services render, sorted for determinism.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateLocked()
}

func (m *Manager) stateLocked() State {
	s := State{Networks: m.resolvedNetworks("")}
	for _, n := range m.nics {
		s.NICs = append(s.NICs, n)
	}
	sort.Slice(s.NICs, func(i, j int) bool { return s.NICs[i].ID < s.NICs[j].ID })
	for _, g := range m.groups {
		s.Groups = append(s.Groups, g)
	}
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].Name < s.Groups[j].Name })
	return s
}

func (m *Manager) syncLocked(ctx context.Context) error {
	s := m.stateLocked()
	for i, svc := range m.opts.Services {
		if err := svc.Sync(ctx, s); err != nil {
			if i > 0 {
				// Earlier services already applied s; the caller restores the old objects
				// and calls resyncLocked to bring those services back.
				m.dirty = true
			}
			return err
		}
	}
	m.dirty = false
	return nil
}

// resyncLocked re-applies the (restored) state after a failed change, best effort: the
// services that took the failed state must not keep it.
func (m *Manager) resyncLocked() {
	if m.dirty {
		m.syncLocked(context.Background())
	}
}

// ResolveNetwork validates n against the manager's other networks without changing anything.
func (m *Manager) ResolveNetwork(n Network) (ResolvedNetwork, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolveLocked(n)
}

func (m *Manager) resolveLocked(n Network) (ResolvedNetwork, error) {
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	r, err := Resolve(n, m.opts.LinkPrefix)
	if err != nil {
		return r, err
	}
	if _, err := m.driver(r.Driver); err != nil {
		return r, err
	}
	return r, CheckAgainst(r, m.resolvedNetworks(r.Name))
}

// CreateNetwork validates n, creates its links and syncs firewall and DHCP; on error
// nothing is left behind.
func (m *Manager) CreateNetwork(ctx context.Context, n Network) (ResolvedNetwork, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.networks[n.Name]; ok {
		return ResolvedNetwork{}, fmt.Errorf("%w: network %q already exists", ErrInvalid, n.Name)
	}
	return m.putNetworkLocked(ctx, n, true)
}

// EnsureNetwork creates or updates n (idempotent).
func (m *Manager) EnsureNetwork(ctx context.Context, n Network) (ResolvedNetwork, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.putNetworkLocked(ctx, n, false)
}

func (m *Manager) putNetworkLocked(ctx context.Context, n Network, create bool) (ResolvedNetwork, error) {
	r, err := m.resolveLocked(n)
	if err != nil {
		return r, err
	}
	old, existed := m.networks[n.Name]
	if existed && old.Driver != r.Driver {
		return r, fmt.Errorf("%w: network %q: driver cannot change from %s to %s; delete and recreate", ErrInvalid, n.Name, old.Driver, r.Driver)
	}
	if existed && old.Prefix != r.Prefix && m.inUseLocked(n.Name) {
		return r, fmt.Errorf("network %q: subnet cannot change while NICs are attached: %w", n.Name, ErrInUse)
	}
	d, _ := m.driver(r.Driver)
	rv := revert.New()
	defer rv.Fail()
	rv.Add(m.resyncLocked)
	if create {
		err = d.Create(ctx, r)
	} else {
		err = d.Ensure(ctx, r)
	}
	if err != nil {
		return r, err
	}
	if !existed {
		rv.Add(func() { d.Delete(context.Background(), r) })
	}
	pool, err := m.newPool(r)
	if err != nil {
		return r, err
	}
	m.networks[n.Name] = r
	oldPool := m.setPool(n.Name, pool)
	rv.Add(func() {
		m.setPool(n.Name, oldPool)
		if existed {
			m.networks[n.Name] = old
		} else {
			delete(m.networks, n.Name)
		}
	})
	if err := m.syncLocked(ctx); err != nil {
		return r, err
	}
	rv.Success()
	return r, nil
}

func (m *Manager) newPool(r ResolvedNetwork) (*ipam.Pool, error) {
	var start, end netip.Addr
	if r.DHCP.RangeStart != "" {
		start, _ = netip.ParseAddr(r.DHCP.RangeStart)
		end, _ = netip.ParseAddr(r.DHCP.RangeEnd)
	}
	return ipam.NewPool(r.Name, r.Prefix, r.GatewayIP, start, end, m.opts.Leases)
}

// Pool is the IPAM pool of a network. It does not wait for a running change.
func (m *Manager) Pool(network string) (*ipam.Pool, bool) {
	m.poolMu.RLock()
	defer m.poolMu.RUnlock()
	p, ok := m.pools[network]
	return p, ok
}

// setPool installs (nil: removes) a pool and returns the previous one.
func (m *Manager) setPool(network string, p *ipam.Pool) *ipam.Pool {
	m.poolMu.Lock()
	defer m.poolMu.Unlock()
	old := m.pools[network]
	if p == nil {
		delete(m.pools, network)
	} else {
		m.pools[network] = p
	}
	return old
}

func (m *Manager) inUseLocked(network string) bool {
	for _, n := range m.nics {
		if n.Network == network {
			return true
		}
	}
	return false
}

// DeleteNetwork removes a network with no NICs: links, its firewall chains, its DHCP server.
func (m *Manager) DeleteNetwork(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.networks[name]
	if !ok {
		return fmt.Errorf("%w: network %q does not exist", ErrInvalid, name)
	}
	var users []string
	for _, n := range m.nics {
		if n.Network == name {
			users = append(users, n.ID)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fmt.Errorf("network %q has NICs %v attached; detach them first: %w", name, users, ErrInUse)
	}
	for _, g := range m.groups {
		for _, rule := range g.Rules {
			for _, rn := range rule.Networks {
				if rn == name {
					return fmt.Errorf("network %q is named by rule %q of security group %q; change that rule first: %w", name, rule.ID, g.Name, ErrInUse)
				}
			}
		}
	}
	delete(m.networks, name)
	if err := m.syncLocked(ctx); err != nil {
		m.networks[name] = r
		m.resyncLocked()
		return err
	}
	d, _ := m.driver(r.Driver)
	if err := d.Delete(ctx, r); err != nil {
		return err
	}
	m.setPool(name, nil)
	return nil
}

// Network returns a network by name.
func (m *Manager) Network(name string) (ResolvedNetwork, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.networks[name]
	return n, ok
}

// NetworkInfo reports the links of a network as they are in the kernel.
func (m *Manager) NetworkInfo(ctx context.Context, name string) (Info, error) {
	m.mu.Lock()
	r, ok := m.networks[name]
	var d Driver
	var err error
	if ok {
		d, err = m.driver(r.Driver)
	}
	m.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("%w: network %q does not exist", ErrInvalid, name)
	}
	if err != nil {
		return Info{}, err
	}
	return d.Info(ctx, r)
}

var errNoNetwork = errors.New("no such network")
