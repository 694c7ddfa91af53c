// Package networks is the network subsystem of the daemon: virtual networks (a bridge or
// VXLAN segment per network), network ACLs (the library's security groups), NICs of
// instances, IPAM leases persisted in the state store, and the segmentation report, on
// the internal/network library (docs/network.md, docs/networks-api.md).
//
// Network and ACL names are unique on the host, not only in their project: they name
// bridges, firewall chains and the peers of rules (an ACL of bank may admit the network
// claims of insurance). Records live under networks/<project>/<name> and
// acls/<project>/<name>, NICs under nics/<network>/<id>, leases under leases/<network>/<mac>.
package networks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge" // registers the bridge driver
	"github.com/finvirt/finvirt/internal/network/dhcp"
	"github.com/finvirt/finvirt/internal/network/firewall"
	"github.com/finvirt/finvirt/internal/network/ipam"
	_ "github.com/finvirt/finvirt/internal/network/vxlan" // registers the vxlan driver
	"github.com/finvirt/finvirt/internal/store"
)

const (
	networkPrefix = "networks/" // networks/<project>/<name>
	aclPrefix     = "acls/"     // acls/<project>/<name>
	nicPrefix     = "nics/"     // nics/<network>/<id>
	leasePrefix   = "leases/"   // leases/<network>/<mac>
	// usedKey marks a state dir that has ever had a network. A daemon without it never
	// touches host networking at start: reconcile would otherwise delete links and nft
	// tables carrying the prefix on a host that never asked for finvirt networking.
	usedKey = "network-meta/used"

	// DefaultPrefix names bridges (fvbr...), taps, vxlan devices and nft tables.
	DefaultPrefix = "fv"
)

// NetNSEnv names the network namespace the subsystem works in instead of the daemon's
// own, e.g. FINVIRT_NETNS=/run/netns/finvirt-demo: the whole "host" side (bridges,
// ruleset, DHCP servers, forwarding sysctls) then lives there.
const NetNSEnv = "FINVIRT_NETNS"

var (
	nsMu       sync.Mutex
	nsByPrefix = map[string]string{}
)

// UseNetNS makes daemons with NetworkPrefix prefix work inside the network namespace at
// path (/run/netns/<name>) instead of their own; it wins over FINVIRT_NETNS. Tests call
// it with a unique prefix per test so that parallel daemons in one process never share a
// namespace and never touch the host. The returned func undoes it.
func UseNetNS(prefix, path string) (undo func()) {
	nsMu.Lock()
	defer nsMu.Unlock()
	nsByPrefix[prefix] = path
	return func() {
		nsMu.Lock()
		defer nsMu.Unlock()
		delete(nsByPrefix, prefix)
	}
}

func netnsFor(prefix string) network.NetNS {
	nsMu.Lock()
	defer nsMu.Unlock()
	if p, ok := nsByPrefix[prefix]; ok {
		return network.NetNS{Path: p}
	}
	return network.NetNS{Path: os.Getenv(NetNSEnv)}
}

// registry finds the subsystem of a daemon for the exported Go API (AttachInstanceNIC).
var (
	regMu    sync.Mutex
	registry = map[*daemon.Daemon]*subsystem{}
)

func lookup(d *daemon.Daemon) (*subsystem, error) {
	regMu.Lock()
	defer regMu.Unlock()
	s, ok := registry[d]
	if !ok {
		return nil, errors.New("networks: the network subsystem is not part of this daemon (import internal/daemon/networks)")
	}
	return s, nil
}

func init() {
	daemon.Register(func(d *daemon.Daemon) (daemon.Subsystem, error) {
		s := &subsystem{d: d}
		regMu.Lock()
		registry[d] = s
		regMu.Unlock()
		return s, nil
	})
}

type subsystem struct {
	d      *daemon.Daemon
	prefix string
	ns     network.NetNS

	// mu serializes changes: the manager and the store move together, one change at a time.
	mu     sync.Mutex
	m      *network.Manager
	fw     *firewall.Firewall
	dh     *dhcp.Service
	leases *leaseStore
	// startErr is why the start reconcile failed; changes are refused until a restart.
	startErr error
	once     sync.Once
	initErr  error
}

// networkRecord is what the store keeps of a network.
type networkRecord struct {
	api.NetworksPost
	Project   string    `json:"project"`
	CreatedAt time.Time `json:"created_at"`
}

// aclRecord is what the store keeps of an ACL.
type aclRecord struct {
	api.NetworkACLsPost
	Project   string    `json:"project"`
	CreatedAt time.Time `json:"created_at"`
}

// nicRecord is a NIC the daemon attached (an instance's, or a test's veth end).
type nicRecord struct {
	network.NIC
	Project string `json:"project"`
}

func (s *subsystem) Name() string { return "networks" }

// Start builds the manager in its namespace and, on a state dir that has had networks,
// reconciles the kernel with the stored objects: missing bridges, tables and DHCP servers
// come back, strays carrying the prefix go, nothing is duplicated.
func (s *subsystem) Start(ctx context.Context) error {
	s.once.Do(func() { s.initErr = s.init(ctx) })
	return s.initErr
}

// started runs Start's work if it has not run yet: subsystems start in registration order,
// and one that starts before this one (instances re-attaching VMs) may already call
// AttachInstanceNIC.
func (s *subsystem) started() error {
	s.once.Do(func() { s.initErr = s.init(context.Background()) })
	if s.initErr != nil {
		return s.initErr
	}
	return s.ready()
}

func (s *subsystem) init(ctx context.Context) error {
	s.prefix = s.d.Config().NetworkPrefix
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	s.ns = netnsFor(s.prefix)
	s.leases = &leaseStore{st: s.d.Store()}
	s.fw = firewall.New(s.ns, firewall.WithPrefix(s.prefix))
	s.dh = dhcp.New(s.ns, s.leases)
	m, err := network.NewManager(network.Options{NS: s.ns, LinkPrefix: s.prefix, Leases: s.leases,
		Services: []network.Service{s.fw, s.dh}})
	if err != nil {
		return fmt.Errorf("network prefix %q: %w", s.prefix, err)
	}
	s.dh.UsePools(m.Pool)
	s.m = m
	if _, err := s.d.Store().Get(ctx, usedKey); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	s.removeStrayProbes(ctx)
	before := s.kernelObjects()
	if err := s.reconcile(ctx); err != nil {
		// Networking that cannot be restored must not keep the API (and the VMs' other
		// subsystems) down: report it, refuse changes until it is fixed.
		s.startErr = err
		s.d.Logger().Error("network reconcile failed", "err", err)
		s.d.AuditEvent(ctx, "network.reconcile", "networks", "", api.OutcomeFailed, err.Error())
		return nil
	}
	// What the reconcile removed was not explained by any record: audit each stray.
	after := map[string]bool{}
	for _, o := range s.kernelObjects() {
		after[o] = true
	}
	for _, o := range before {
		if !after[o] {
			s.d.AuditEvent(ctx, "network.stray-removed", o, "", api.OutcomeSuccess,
				"found at daemon start carrying the network prefix "+s.prefix+" but named by no network or NIC record")
		}
	}
	return nil
}

// kernelObjects lists the links and nft tables carrying the prefix ("link/NAME",
// "nft/FAMILY NAME"), sorted, best effort.
func (s *subsystem) kernelObjects() []string {
	var out []string
	if h, err := s.ns.Netlink(); err == nil {
		if links, err := h.LinkList(); err == nil {
			for _, l := range links {
				if strings.HasPrefix(l.Attrs().Name, s.prefix) {
					out = append(out, "link/"+l.Attrs().Name)
				}
			}
		}
		h.Close()
	}
	if c, done, err := s.ns.NFT(); err == nil {
		if tables, err := c.ListTables(); err == nil {
			for _, t := range tables {
				if strings.HasPrefix(t.Name, s.prefix) {
					out = append(out, fmt.Sprintf("nft/%s %s", familyName(t.Family), t.Name))
				}
			}
		}
		done()
	}
	sort.Strings(out)
	return out
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return fmt.Sprint(f)
}

func (s *subsystem) reconcile(ctx context.Context) error {
	nets, err := s.networks(ctx, "")
	if err != nil {
		return err
	}
	acls, err := s.acls(ctx, "")
	if err != nil {
		return err
	}
	nics, err := s.nics(ctx, "")
	if err != nil {
		return err
	}
	byName := map[string]networkRecord{}
	var desired []network.Network
	for _, n := range nets {
		byName[n.Name] = n
		desired = append(desired, toNetwork(n))
	}
	var groups []network.SecurityGroup
	for _, a := range acls {
		groups = append(groups, toGroup(a))
	}
	var want []network.NIC
	for _, n := range nics {
		nic := n.NIC
		nic.SecurityGroups = byName[n.Network].ACLs
		want = append(want, nic)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.Reconcile(ctx, desired, want, groups)
}

// Stop ends the DHCP servers; bridges, taps and rules stay so that running VMs keep their
// networking while the daemon restarts.
func (s *subsystem) Stop() {
	if s.m != nil {
		s.m.Close()
	}
	regMu.Lock()
	delete(registry, s.d)
	regMu.Unlock()
}

func (s *subsystem) ready() error {
	if s.startErr != nil {
		return daemon.Errorf(http.StatusServiceUnavailable, "networking could not be restored at daemon start (%v): fix the cause and restart the daemon", s.startErr)
	}
	return nil
}

func toNetwork(r networkRecord) network.Network {
	n := network.Network{Name: r.Name, Project: r.Project, Driver: r.Driver, Subnet: r.Subnet, Gateway: r.Gateway,
		NAT: r.NAT, Uplink: r.Uplink, MTU: r.MTU}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	n.DHCP.Enabled = r.DHCP
	n.DHCP.Dynamic = r.DHCPDynamic
	if r.DHCPRange != "" {
		n.DHCP.RangeStart, n.DHCP.RangeEnd, _ = strings.Cut(r.DHCPRange, "-")
	}
	if v := r.VXLAN; v != nil {
		n.VXLAN = &network.VXLANConfig{VNI: v.VNI, LocalIP: v.LocalIP, Peers: v.Peers, Underlay: v.Underlay, Port: v.Port}
	}
	return n
}

func toGroup(a aclRecord) network.SecurityGroup {
	g := network.SecurityGroup{Name: a.Name, Project: a.Project}
	for _, r := range a.Rules {
		g.Rules = append(g.Rules, network.Rule{ID: r.ID, Direction: network.Direction(r.Direction), Protocol: r.Protocol,
			Ports: r.Ports, CIDRs: r.CIDRs, Networks: r.Networks, Groups: r.ACLs})
	}
	return g
}

// list decodes every record under prefix into T.
func list[T any](ctx context.Context, st store.Store, prefix string) ([]T, error) {
	entries, err := st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(entries))
	for _, e := range entries {
		var v T
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return nil, fmt.Errorf("record %s: %w", e.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// networks lists the networks of project ("": all projects).
func (s *subsystem) networks(ctx context.Context, project string) ([]networkRecord, error) {
	p := networkPrefix
	if project != "" {
		p += project + "/"
	}
	return list[networkRecord](ctx, s.d.Store(), p)
}

func (s *subsystem) acls(ctx context.Context, project string) ([]aclRecord, error) {
	p := aclPrefix
	if project != "" {
		p += project + "/"
	}
	return list[aclRecord](ctx, s.d.Store(), p)
}

func (s *subsystem) nics(ctx context.Context, networkName string) ([]nicRecord, error) {
	p := nicPrefix
	if networkName != "" {
		p += networkName + "/"
	}
	return list[nicRecord](ctx, s.d.Store(), p)
}

// findNetwork finds a network by its host-wide name, in any project.
func (s *subsystem) findNetwork(ctx context.Context, name string) (networkRecord, bool, error) {
	nets, err := s.networks(ctx, "")
	if err != nil {
		return networkRecord{}, false, err
	}
	for _, n := range nets {
		if n.Name == name {
			return n, true, nil
		}
	}
	return networkRecord{}, false, nil
}

// network reads a network of project, 404 naming the fix when it is elsewhere or absent.
func (s *subsystem) network(ctx context.Context, project, name string) (networkRecord, error) {
	n, ok, err := s.findNetwork(ctx, name)
	if err != nil {
		return n, err
	}
	if !ok || n.Project != project {
		return n, daemon.NotFound("network %s not found in project %s: see 'finvirt network list --project %s'", name, project, project)
	}
	return n, nil
}

func (s *subsystem) findACL(ctx context.Context, name string) (aclRecord, bool, error) {
	all, err := s.acls(ctx, "")
	if err != nil {
		return aclRecord{}, false, err
	}
	for _, a := range all {
		if a.Name == name {
			return a, true, nil
		}
	}
	return aclRecord{}, false, nil
}

func (s *subsystem) acl(ctx context.Context, project, name string) (aclRecord, error) {
	a, ok, err := s.findACL(ctx, name)
	if err != nil {
		return a, err
	}
	if !ok || a.Project != project {
		return a, daemon.NotFound("network ACL %s not found in project %s: see 'finvirt network acl list --project %s'", name, project, project)
	}
	return a, nil
}

// netErr maps the library's errors to statuses; its messages already name the object and
// the fix.
func netErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, network.ErrInvalid):
		// The library's messages start with the sentinel's "invalid: "; the 400 says it.
		msg := strings.Replace(err.Error(), network.ErrInvalid.Error()+": ", "", 1)
		return daemon.BadRequest("%s", msg)
	case errors.Is(err, network.ErrInUse):
		return daemon.Conflict("%v", err)
	}
	return err
}

// leaseStore is ipam.LeaseStore over the daemon's state store: leases survive restarts
// in the same bbolt database as the objects they belong to.
type leaseStore struct{ st store.Store }

func leaseKey(networkName, owner string) string {
	return leasePrefix + networkName + "/" + strings.ToLower(owner)
}

func (l *leaseStore) Get(networkName, owner string) (ipam.Lease, error) {
	e, err := l.st.Get(context.Background(), leaseKey(networkName, owner))
	if errors.Is(err, store.ErrNotFound) {
		return ipam.Lease{}, fmt.Errorf("network %q owner %q: %w", networkName, owner, ipam.ErrNotFound)
	}
	if err != nil {
		return ipam.Lease{}, err
	}
	var v ipam.Lease
	return v, json.Unmarshal(e.Value, &v)
}

func (l *leaseStore) Put(v ipam.Lease) error {
	b, _ := json.Marshal(v)
	return store.Put(context.Background(), l.st, leaseKey(v.Network, v.Owner), b)
}

func (l *leaseStore) Delete(networkName, owner string) error {
	return l.st.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Delete(leaseKey(networkName, owner)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
}

func (l *leaseStore) List(networkName string) ([]ipam.Lease, error) {
	return list[ipam.Lease](context.Background(), l.st, leasePrefix+networkName+"/")
}

// probeNSDir is where named network namespaces live (the iproute2 convention).
var probeNSDir = "/run/netns"

func (s *subsystem) probeNSName(networkName string) string {
	return s.prefix + "-probe-" + networkName
}

// removeStrayProbes deletes probe namespaces a report left behind when the daemon died
// during it; deleting a namespace destroys its veth pair, so the host ends go with it.
func (s *subsystem) removeStrayProbes(ctx context.Context) {
	matches, _ := filepath.Glob(filepath.Join(probeNSDir, s.prefix+"-probe-*"))
	for _, m := range matches {
		if err := deleteNamedNS(filepath.Base(m)); err == nil {
			s.d.AuditEvent(ctx, "network.probe-removed", "netns/"+filepath.Base(m), "", api.OutcomeSuccess,
				"a segmentation report was interrupted; its probe namespace was removed")
		}
	}
}

// ProjectObjects implements daemon.ProjectUser: a project with networks or ACLs cannot be
// deleted (they are not counted in its quota).
func (s *subsystem) ProjectObjects(tx store.Tx, project string) (string, error) {
	nets, err := tx.Count(networkPrefix + project + "/")
	if err != nil {
		return "", err
	}
	acls, err := tx.Count(aclPrefix + project + "/")
	if err != nil {
		return "", err
	}
	var held []string
	if nets > 0 {
		held = append(held, fmt.Sprintf("%d networks", nets))
	}
	if acls > 0 {
		held = append(held, fmt.Sprintf("%d network ACLs", acls))
	}
	return strings.Join(held, " and "), nil
}
