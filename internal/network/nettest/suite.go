package nettest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/dhcp"
	"github.com/finvirt/finvirt/internal/network/firewall"
	"github.com/finvirt/finvirt/internal/network/ipam"
)

// Config adapts the suite to a driver.
type Config struct {
	Driver string
	// Decorate adds driver settings to a network (vxlan: VNI and local IP); idx is 0,1,2...
	Decorate func(n network.Network, idx int) network.Network
}

// Host is a manager working in a namespace of its own.
type Host struct {
	NS       NS
	FW       *firewall.Firewall
	M        *network.Manager
	Prefix   string
	Store    ipam.LeaseStore
	services []network.Service
}

// NewHost builds a namespace and a manager (firewall with a unique table prefix) in it.
// extra builds more services (DHCP) from the host; they sync after the firewall.
func NewHost(t testing.TB, extra ...func(h *Host) network.Service) *Host {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox (ping)")
	}
	h := &Host{NS: NewNS(t, "host"), Prefix: "fvt" + Suffix(), Store: ipam.NewMemStore()}
	h.FW = firewall.New(h.NS.NetNS(), firewall.WithPrefix(h.Prefix))
	h.services = []network.Service{h.FW}
	for _, e := range extra {
		h.services = append(h.services, e(h))
	}
	h.M = h.newManager(t)
	return h
}

func (h *Host) newManager(t testing.TB) *network.Manager {
	m, err := network.NewManager(network.Options{NS: h.NS.NetNS(), LinkPrefix: "fv", Services: h.services, Leases: h.Store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Ruleset returns `nft list table` of the firewall's tables in the host namespace.
func (h *Host) Ruleset(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, tbl := range h.FW.Tables() {
		if out, err := h.NS.Exec(append([]string{"nft", "list", "table"}, strings.Fields(tbl)...)...); err == nil {
			b.Write(out)
		}
	}
	return b.String()
}

// Links returns `ip -o link` names and masters in the host namespace, sorted by the kernel.
func (h *Host) Links(t testing.TB) string {
	t.Helper()
	out := h.NS.MustExec(t, "ip", "-o", "link", "show")
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		master := ""
		for i := range f {
			if f[i] == "master" && i+1 < len(f) {
				master = f[i+1]
			}
		}
		lines = append(lines, name+" "+master)
	}
	return strings.Join(lines, "\n")
}

// Plug creates an endpoint namespace and attaches it as a NIC with a static address.
func (h *Host) Plug(t testing.TB, n network.ResolvedNetwork, id, ip string, groups ...string) (*Endpoint, network.ResolvedNIC) {
	t.Helper()
	mac := network.DeriveMAC(n.Name, "inst-"+id, id)
	ep := NewEndpoint(t, h.NS, id[:min(len(id), 4)], mac, fmt.Sprintf("%s/%d", ip, n.Prefix.Bits()), n.GatewayIP.String())
	nic, err := h.M.AttachNIC(context.Background(), network.NIC{ID: id, Instance: "inst-" + id, Network: n.Name,
		IP: ip, HostLink: ep.HostLink, SecurityGroups: groups})
	if err != nil {
		t.Fatalf("attach %s: %v", id, err)
	}
	return ep, nic
}

func net3(cfg Config, name, subnet string, idx int) network.Network {
	n := network.Network{Name: name, Driver: cfg.Driver, Subnet: subnet}
	if cfg.Decorate != nil {
		n = cfg.Decorate(n, idx)
	}
	return n
}

// RunSuite is the conformance suite; every driver's tests call it.
func RunSuite(t *testing.T, cfg Config) {
	t.Run("CreateEnsureIdempotent", func(t *testing.T) { testIdempotent(t, cfg) })
	t.Run("IsolationAndACL", func(t *testing.T) { testIsolationACL(t, cfg) })
	t.Run("AntiSpoofing", func(t *testing.T) { testSpoof(t, cfg) })
	t.Run("DeleteRemovesEverything", func(t *testing.T) { testDelete(t, cfg) })
	t.Run("ReconcileAfterCrash", func(t *testing.T) { testReconcile(t, cfg) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, cfg) })
}

func testIdempotent(t *testing.T, cfg Config) {
	h := NewHost(t)
	ctx := context.Background()
	n := net3(cfg, "alpha", "10.51.0.0/24", 0)
	if _, err := h.M.CreateNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	links1, rules1 := h.Links(t), h.Ruleset(t)
	if _, err := h.M.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	if _, err := h.M.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	if got := h.Links(t); got != links1 {
		t.Errorf("links changed by Ensure:\nbefore:\n%s\nafter:\n%s", links1, got)
	}
	if got := h.Ruleset(t); got != rules1 {
		t.Errorf("ruleset changed by Ensure:\nbefore:\n%s\nafter:\n%s", rules1, got)
	}
	if _, err := h.M.CreateNetwork(ctx, n); err == nil {
		t.Error("creating an existing network succeeded")
	}
	info, err := h.M.NetworkInfo(ctx, "alpha")
	if err != nil || !info.BridgeUp || len(info.Addresses) == 0 || info.Addresses[0] != "10.51.0.1/24" {
		t.Errorf("info = %+v, %v; want bridge up with 10.51.0.1/24", info, err)
	}
}

func testIsolationACL(t *testing.T, cfg Config) {
	h := NewHost(t)
	ctx := context.Background()
	claims, err := h.M.CreateNetwork(ctx, net3(cfg, "claims", "10.52.1.0/24", 0))
	if err != nil {
		t.Fatal(err)
	}
	payments, err := h.M.CreateNetwork(ctx, net3(cfg, "payments", "10.52.2.0/24", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "pay-api", Rules: []network.Rule{
		{ID: "claims-8080", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"8080"}, Networks: []string{"claims"}},
	}}); err != nil {
		t.Fatal(err)
	}
	c1, _ := h.Plug(t, claims, "c1", "10.52.1.10")
	c2, _ := h.Plug(t, claims, "c2", "10.52.1.11")
	p1, _ := h.Plug(t, payments, "p1", "10.52.2.10", "pay-api")
	for _, ep := range []*Endpoint{c2, p1} {
		ep.NS.Listen(t, "8080")
		ep.NS.Listen(t, "8081")
	}
	// Same network: ping and TCP work (poll: the bridge port needs a moment to forward).
	Eventually(t, 30*time.Second, "ping c1 -> c2 inside claims", func() bool { return c1.NS.Ping(c2.IP, 1) })
	if !c1.NS.TCP(c2.IP, "8081", 5*time.Second) {
		t.Error("tcp c1 -> c2:8081 inside one network failed")
	}
	// Across networks only the ACL's port passes.
	Eventually(t, 30*time.Second, "tcp claims -> payments:8080 (allowed by ACL)", func() bool { return c1.NS.TCP(p1.IP, "8080", 3*time.Second) })
	if c1.NS.TCP(p1.IP, "8081", 2*time.Second) {
		t.Error("tcp claims -> payments:8081 passed; only 8080 is allowed")
	}
	if c1.NS.Ping(p1.IP, 2) {
		t.Error("ping claims -> payments passed; icmp is not allowed")
	}
	if p1.NS.TCP(c2.IP, "8080", 2*time.Second) {
		t.Error("tcp payments -> claims passed; no rule allows it")
	}
	if c1.NS.TCP(claims.GatewayIP.String(), "22", 2*time.Second) || c1.NS.Ping(claims.GatewayIP.String(), 1) {
		t.Error("endpoint reached the host through its gateway; only DHCP/DNS may")
	}
	stats, err := h.FW.ACLStats(ctx)
	if err != nil || len(stats) != 1 || stats[0].Rule != "claims-8080" || stats[0].NIC != "p1" || stats[0].Packets == 0 {
		t.Errorf("ACLStats = %+v, %v; want claims-8080 on p1 with packets", stats, err)
	}
	// Replacing the group (no rule change) keeps the counters.
	before := stats
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "pay-api", Rules: []network.Rule{
		{ID: "claims-8080", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"8080"}, Networks: []string{"claims"}},
	}}); err != nil {
		t.Fatal(err)
	}
	after, _ := h.FW.ACLStats(ctx)
	if len(after) != 1 || len(before) == 1 && after[0].Packets < before[0].Packets {
		t.Errorf("counters reset by a rebuild: before %+v after %+v", before, after)
	}
}

func testSpoof(t *testing.T, cfg Config) {
	h := NewHost(t)
	ctx := context.Background()
	n, err := h.M.CreateNetwork(ctx, net3(cfg, "spoof", "10.53.0.0/24", 0))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := h.Plug(t, n, "sa", "10.53.0.10")
	b, _ := h.Plug(t, n, "sb", "10.53.0.11")
	b.NS.Listen(t, "9000")
	Eventually(t, 30*time.Second, "ping a -> b", func() bool { return a.NS.Ping(b.IP, 1) })
	// A wrong source IP: configure another address and send from it.
	a.NS.MustExec(t, "ip", "addr", "add", "10.53.0.99/32", "dev", "eth0")
	if out, err := a.NS.Exec("busybox", "ping", "-c", "2", "-W", "2", "-I", "10.53.0.99", b.IP); err == nil {
		t.Errorf("ping with spoofed source IP 10.53.0.99 got replies:\n%s", out)
	}
	a.NS.MustExec(t, "ip", "addr", "del", "10.53.0.99/32", "dev", "eth0")
	// A wrong MAC: every frame, ARP included, must be dropped.
	a.NS.MustExec(t, "ip", "neigh", "flush", "dev", "eth0")
	a.NS.MustExec(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:be:ef")
	if a.NS.Ping(b.IP, 2) || a.NS.TCP(b.IP, "9000", 2*time.Second) {
		t.Error("traffic with a spoofed MAC got through")
	}
	a.NS.MustExec(t, "ip", "link", "set", "eth0", "address", a.MAC.String())
	Eventually(t, 30*time.Second, "ping a -> b after restoring the MAC", func() bool { return a.NS.Ping(b.IP, 1) })
	// ARP with a wrong sender IP: a request to b claiming to be 10.53.0.50. The same
	// request with a's real address is the control that the probe works.
	a.NS.MustExec(t, "ip", "addr", "add", "10.53.0.50/32", "dev", "eth0")
	if out, _ := a.NS.Exec("busybox", "arping", "-c", "2", "-w", "3", "-I", "eth0", "-s", a.IP, b.IP); !strings.Contains(string(out), "Received 1") && !strings.Contains(string(out), "Received 2") {
		t.Fatalf("control arping with the real sender IP got no reply:\n%s", out)
	}
	if out, _ := a.NS.Exec("busybox", "arping", "-c", "2", "-w", "3", "-I", "eth0", "-s", "10.53.0.50", b.IP); !strings.Contains(string(out), "Received 0") {
		t.Errorf("ARP with a spoofed sender IP got an answer:\n%s", out)
	}
	if out, _ := b.NS.Exec("ip", "neigh", "show", "10.53.0.50"); strings.Contains(string(out), "lladdr") {
		t.Errorf("ARP with a spoofed sender IP reached b: %s", out)
	}
	a.NS.MustExec(t, "ip", "addr", "del", "10.53.0.50/32", "dev", "eth0")
	rs := h.Ruleset(t)
	if !strings.Contains(rs, "spoofed-mac") {
		t.Errorf("bridge ruleset lacks the anti-spoofing chain:\n%s", rs)
	}
}

func testDelete(t *testing.T, cfg Config) {
	var dh *dhcp.Service
	h := NewHost(t, func(h *Host) network.Service { dh = dhcp.New(h.NS.NetNS(), h.Store); return dh })
	ctx := context.Background()
	linksBefore := h.Links(t)
	nw := net3(cfg, "gone", "10.54.0.0/24", 0)
	nw.DHCP.Enabled = true
	n, err := h.M.CreateNetwork(ctx, nw)
	if err != nil {
		t.Fatal(err)
	}
	nic, err := h.M.AttachNIC(ctx, network.NIC{ID: "tap1", Instance: "vm1", Network: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.Links(t), nic.Device+" "+n.BridgeName) {
		t.Fatalf("tap %s not on bridge %s:\n%s", nic.Device, n.BridgeName, h.Links(t))
	}
	// What QEMU's -netdev tap,ifname=... expects to open: a persistent tap with vnet_hdr.
	if out := h.NS.MustExec(t, "ip", "-d", "link", "show", nic.Device); !strings.Contains(out, "tap") ||
		!strings.Contains(out, "vnet_hdr on") || !strings.Contains(out, "persist on") {
		t.Errorf("tap %s flags:\n%s", nic.Device, out)
	}
	if got := dh.Running(); len(got) != 1 {
		t.Errorf("DHCP servers %v, want one for gone", got)
	}
	if !nic.Addr.IsValid() || nic.Addr.String() != "10.54.0.2" {
		t.Errorf("IPAM gave %s, want 10.54.0.2 (first host after the gateway)", nic.Addr)
	}
	if err := h.M.DeleteNetwork(ctx, "gone"); err == nil || !strings.Contains(err.Error(), "tap1") {
		t.Errorf("deleting a network in use: err = %v, want one naming nic tap1", err)
	}
	if err := h.M.DetachNIC(ctx, "tap1"); err != nil {
		t.Fatal(err)
	}
	if err := h.M.DeleteNetwork(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if got := h.Links(t); got != linksBefore {
		t.Errorf("links left after delete:\nbefore:\n%s\nafter:\n%s", linksBefore, got)
	}
	if rs := h.Ruleset(t); strings.TrimSpace(rs) != "" {
		t.Errorf("nft tables left after deleting the last network:\n%s", rs)
	}
	if got := dh.Running(); len(got) != 0 {
		t.Errorf("DHCP servers left after delete: %v", got)
	}
}

func testReconcile(t *testing.T, cfg Config) {
	h := NewHost(t)
	ctx := context.Background()
	nets := []network.Network{net3(cfg, "r1", "10.55.1.0/24", 0), net3(cfg, "r2", "10.55.2.0/24", 1)}
	groups := []network.SecurityGroup{{Name: "g", Rules: []network.Rule{
		{ID: "web", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"80", "443", "8000-8100"}, Networks: []string{"r1"}},
		{ID: "out", Direction: network.Egress, Protocol: "udp", Ports: []string{"53"}, CIDRs: []string{"10.55.1.0/24"}},
	}}}
	var nics []network.NIC
	for _, n := range nets {
		if _, err := h.M.CreateNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.M.PutSecurityGroup(ctx, groups[0]); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"ra", "rb"} {
		nic := network.NIC{ID: id, Instance: "vm-" + id, Network: nets[i].Name, SecurityGroups: []string{"g"}}
		r, err := h.M.AttachNIC(ctx, nic)
		if err != nil {
			t.Fatal(err)
		}
		nic.IP = r.Addr.String()
		nics = append(nics, nic)
	}
	links, rules := h.Links(t), h.Ruleset(t)
	// "Crash": forget the manager, damage the host: a stray bridge and tap with the prefix,
	// a missing tap, a stray table with the prefix.
	h.NS.MustExec(t, "ip", "link", "add", "fvbrstray", "type", "bridge")
	h.NS.MustExec(t, "ip", "tuntap", "add", "fvtstray", "mode", "tap")
	h.NS.MustExec(t, "ip", "link", "del", network.TapName("fv", "rb"))
	h.NS.MustExec(t, "nft", "add", "table", "inet", h.Prefix+"_stray")
	h.NS.MustExec(t, "nft", "add", "table", "ip6", h.Prefix)
	m2 := h.newManager(t)
	if err := m2.Reconcile(ctx, nets, nics, groups); err != nil {
		t.Fatal(err)
	}
	if got := h.Links(t); got != links {
		t.Errorf("links after reconcile differ:\nwant:\n%s\ngot:\n%s", links, got)
	}
	if got := h.Ruleset(t); got != rules {
		t.Errorf("ruleset after reconcile differs:\nwant:\n%s\ngot:\n%s", rules, got)
	}
	if out := h.NS.MustExec(t, "nft", "list", "tables"); strings.Contains(out, "_stray") || strings.Contains(out, "ip6 "+h.Prefix) {
		t.Errorf("stray tables survived reconcile:\n%s", out)
	}
	if err := m2.Reconcile(ctx, nets, nics, groups); err != nil {
		t.Fatal(err)
	}
	if got := h.Links(t); got != links {
		t.Errorf("second reconcile changed links:\n%s", got)
	}
}

func testBadInput(t *testing.T, cfg Config) {
	h := NewHost(t)
	ctx := context.Background()
	if _, err := h.M.CreateNetwork(ctx, net3(cfg, "base", "10.56.0.0/24", 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.M.AttachNIC(ctx, network.NIC{ID: "n1", Instance: "vm", Network: "base"}); err != nil {
		t.Fatal(err)
	}
	links, rules := h.Links(t), h.Ruleset(t)
	long := "a-very-long-name-for-a-bridge"
	cases := []struct {
		name string
		do   func() error
		want string
	}{
		{"overlap", func() error { _, err := h.M.CreateNetwork(ctx, net3(cfg, "o", "10.56.0.128/25", 1)); return err }, "overlaps"},
		{"gateway outside", func() error {
			n := net3(cfg, "g", "10.57.0.0/24", 1)
			n.Gateway = "10.58.0.1"
			_, err := h.M.CreateNetwork(ctx, n)
			return err
		}, "outside subnet"},
		{"bad cidr", func() error { _, err := h.M.CreateNetwork(ctx, net3(cfg, "c", "10.57.0.0/33", 1)); return err }, "not an IPv4 CIDR"},
		{"host bits", func() error { _, err := h.M.CreateNetwork(ctx, net3(cfg, "c", "10.57.0.5/24", 1)); return err }, "host bits"},
		{"bridge name too long", func() error {
			n := net3(cfg, "b", "10.57.0.0/24", 1)
			n.Bridge = long
			_, err := h.M.CreateNetwork(ctx, n)
			return err
		}, "IFNAMSIZ"},
		{"bad port", func() error {
			return h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "x", Rules: []network.Rule{{ID: "r", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"70000"}}}})
		}, "port"},
		{"port range backwards", func() error {
			return h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "x", Rules: []network.Rule{{ID: "r", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"90-80"}}}})
		}, "FROM-TO"},
		{"bad rule cidr", func() error {
			return h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "x", Rules: []network.Rule{{ID: "r", Direction: network.Ingress, Protocol: "any", CIDRs: []string{"10.0.0.0/40"}}}})
		}, "not a CIDR"},
		{"unknown network in rule", func() error {
			return h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "x", Rules: []network.Rule{{ID: "r", Direction: network.Ingress, Protocol: "any", Networks: []string{"nope"}}}})
		}, "does not exist"},
		{"delete in use", func() error { return h.M.DeleteNetwork(ctx, "base") }, "n1"},
		{"nic outside subnet", func() error {
			_, err := h.M.AttachNIC(ctx, network.NIC{ID: "n2", Instance: "vm", Network: "base", IP: "10.99.0.5"})
			return err
		}, "not inside subnet"},
		{"nic ip taken", func() error {
			_, err := h.M.AttachNIC(ctx, network.NIC{ID: "n3", Instance: "vm3", Network: "base", IP: "10.56.0.2"})
			return err
		}, "held by"},
		{"nic gateway ip", func() error {
			_, err := h.M.AttachNIC(ctx, network.NIC{ID: "n4", Instance: "vm4", Network: "base", IP: "10.56.0.1"})
			return err
		}, "gateway"},
		{"missing host link", func() error {
			_, err := h.M.AttachNIC(ctx, network.NIC{ID: "n5", Instance: "vm5", Network: "base", HostLink: "fvnosuch"})
			return err
		}, "does not exist"},
	}
	cases = append(cases, driverBadInput(cfg, h)...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one containing %q", err, c.want)
			}
			if got := h.Links(t); got != links {
				t.Errorf("links changed:\nbefore:\n%s\nafter:\n%s", links, got)
			}
			if got := h.Ruleset(t); got != rules {
				t.Errorf("ruleset changed")
			}
		})
	}
}

func driverBadInput(cfg Config, h *Host) []struct {
	name string
	do   func() error
	want string
} {
	if cfg.Driver != "vxlan" {
		return nil
	}
	ctx := context.Background()
	mk := func(vni uint32) func() error {
		return func() error {
			n := net3(cfg, "v", "10.59.0.0/24", 1)
			n.VXLAN.VNI = vni
			_, err := h.M.CreateNetwork(ctx, n)
			return err
		}
	}
	base, _ := h.M.Network("base")
	return []struct {
		name string
		do   func() error
		want string
	}{
		{"vni clash", mk(base.VXLAN.VNI), "already used"},
		{"vni zero", mk(0), "out of range"},
		{"vni too big", mk(1 << 24), "out of range"},
	}
}
