package firewall_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/firewall"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// bigRule returns a rule with n single-address peers (non-adjacent, so no merging) and
// extra added.
func bigRule(n int, extra ...string) network.Rule {
	cidrs := append([]string{}, extra...)
	for i := 0; len(cidrs) < n; i++ {
		v := 0x0b000000 + uint32(i)*2 // 11.0.0.0, 11.0.0.2, ...
		cidrs = append(cidrs, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String())
	}
	return network.Rule{ID: "big", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"8080"}, CIDRs: cidrs}
}

// TestLargeRuleSetUsesSets installs 10,000 peer addresses: the NIC's chain keeps one rule
// (the addresses live in an interval set), and the set really filters.
func TestLargeRuleSetUsesSets(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	a, err := h.M.CreateNetwork(ctx, network.Network{Name: "a", Subnet: "10.80.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.M.CreateNetwork(ctx, network.Network{Name: "b", Subnet: "10.80.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "big", Rules: []network.Rule{bigRule(10000, "10.80.1.10")}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000-entry group installed in %s", time.Since(start))
	allowed, _ := h.Plug(t, a, "ok1", "10.80.1.10")
	denied, _ := h.Plug(t, a, "no1", "10.80.1.11")
	srv, _ := h.Plug(t, b, "srv", "10.80.2.10", "big")
	srv.NS.Listen(t, "8080")
	n, err := h.FW.RuleCount(firewall.InChain("srv"))
	if err != nil || n != 1 {
		t.Errorf("rules in the NIC chain = %d, %v; want 1 (set-based)", n, err)
	}
	for _, ch := range []string{"forward", "to_net"} {
		if n, _ := h.FW.RuleCount(ch); n > 5 {
			t.Errorf("chain %s has %d rules", ch, n)
		}
	}
	out := h.NS.MustExec(t, "nft", "list", "table", "inet", h.Prefix)
	if c := strings.Count(out, "11.0."); c < 9000 {
		t.Errorf("set holds %d of the addresses, want 10000", c)
	}
	nettest.Eventually(t, 30*time.Second, "allowed peer reaches 8080", func() bool { return allowed.NS.TCP(srv.IP, "8080", 3*time.Second) })
	if denied.NS.TCP(srv.IP, "8080", 2*time.Second) {
		t.Error("a peer outside the 10,000-entry set reached 8080")
	}
}

// TestAtomicFailure: a change the kernel rejects leaves the ruleset exactly as it was.
func TestAtomicFailure(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	if _, err := h.M.CreateNetwork(ctx, network.Network{Name: "a", Subnet: "10.81.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	before := h.Ruleset(t)
	st := h.M.State()
	// A NIC without a MAC renders a zero-length comparison the kernel refuses, late in the
	// batch, after the table delete and many adds.
	st.NICs = append(st.NICs, network.ResolvedNIC{NIC: network.NIC{ID: "broken", Network: "a"}, Device: "fvtbroken",
		Addr: netip.MustParseAddr("10.81.1.50")})
	if err := h.FW.Sync(ctx, st); err == nil {
		t.Fatal("sync of a broken state succeeded")
	}
	if after := h.Ruleset(t); after != before {
		t.Errorf("failed sync changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestEgressRules: a NIC with an egress rule may leave its network only where allowed.
func TestEgressRules(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	a, _ := h.M.CreateNetwork(ctx, network.Network{Name: "a", Subnet: "10.82.1.0/24"})
	b, _ := h.M.CreateNetwork(ctx, network.Network{Name: "b", Subnet: "10.82.2.0/24"})
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "open", Rules: []network.Rule{
		{ID: "any-in", Direction: network.Ingress, Protocol: "tcp"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "out", Rules: []network.Rule{
		{ID: "to-9000", Direction: network.Egress, Protocol: "tcp", Ports: []string{"9000-9001"}, Networks: []string{"b"}},
	}}); err != nil {
		t.Fatal(err)
	}
	cl, _ := h.Plug(t, a, "cl", "10.82.1.10", "out")
	sv, _ := h.Plug(t, b, "sv", "10.82.2.10", "open")
	for _, p := range []string{"9000", "9001", "9002"} {
		sv.NS.Listen(t, p)
	}
	nettest.Eventually(t, 30*time.Second, "egress-allowed 9001", func() bool { return cl.NS.TCP(sv.IP, "9001", 3*time.Second) })
	if cl.NS.TCP(sv.IP, "9002", 2*time.Second) {
		t.Error("egress to 9002 passed; only 9000-9001 allowed")
	}
	stats, _ := h.FW.ACLStats(ctx)
	var seen []string
	for _, s := range stats {
		if s.Packets > 0 {
			seen = append(seen, fmt.Sprintf("%s/%s@%s", s.Group, s.Rule, s.NIC))
		}
	}
	if strings.Join(seen, ",") != "open/any-in@sv,out/to-9000@cl" {
		t.Errorf("rules with traffic = %v", seen)
	}
}

// TestGroupPeersAndICMP: a rule naming a security group admits exactly that group's
// members; an icmp rule admits echo but not tcp.
func TestGroupPeersAndICMP(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	a, _ := h.M.CreateNetwork(ctx, network.Network{Name: "a", Subnet: "10.83.1.0/24"})
	b, _ := h.M.CreateNetwork(ctx, network.Network{Name: "b", Subnet: "10.83.2.0/24"})
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "db", Rules: []network.Rule{
		{ID: "pg-from-app", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"5432"}, Groups: []string{"app"}},
		{ID: "ping", Direction: network.Ingress, Protocol: "icmp", Networks: []string{"a"}},
	}}); err != nil {
		t.Fatal(err)
	}
	member, _ := h.Plug(t, a, "mem", "10.83.1.10", "app")
	other, _ := h.Plug(t, a, "oth", "10.83.1.11")
	db, _ := h.Plug(t, b, "db", "10.83.2.10", "db")
	db.NS.Listen(t, "5432")
	db.NS.Listen(t, "22")
	nettest.Eventually(t, 30*time.Second, "group member reaches 5432", func() bool { return member.NS.TCP(db.IP, "5432", 3*time.Second) })
	if other.NS.TCP(db.IP, "5432", 2*time.Second) {
		t.Error("a NIC outside group app reached 5432")
	}
	if !other.NS.Ping(db.IP, 2) {
		t.Error("icmp rule for network a did not admit ping")
	}
	if member.NS.TCP(db.IP, "22", 2*time.Second) {
		t.Error("tcp/22 passed; only icmp and 5432 from app are allowed")
	}
	// Leaving the group takes effect at once: re-attach the member without it.
	if err := h.M.DetachNIC(ctx, "mem"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.M.AttachNIC(ctx, network.NIC{ID: "mem", Instance: "inst-mem", Network: "a", IP: "10.83.1.10", HostLink: member.HostLink}); err != nil {
		t.Fatal(err)
	}
	nettest.Eventually(t, 30*time.Second, "re-attached NIC pings db (control)", func() bool { return member.NS.Ping(db.IP, 1) })
	if member.NS.TCP(db.IP, "5432", 2*time.Second) {
		t.Error("former group member still reaches 5432")
	}
}
