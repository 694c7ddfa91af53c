package networks_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon/networks"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestNetworksEndToEnd: three isolated networks of three projects through the API, VM
// stand-ins (veth + namespace) on them, one intended ACL, DHCP, a daemon restart that
// restores what was lost and removes a stray without duplicating anything, the in-use 409
// and the segmentation report, all with real netlink/nftables inside the test's namespace.
func TestNetworksEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.projects(t, "bank", "securities", "insurance")
	c := e.c()
	if _, err := c.CreateNetworkACL(ctx, "bank", api.NetworkACLsPost{Name: "pay-api", Description: "payments API"}); err != nil {
		t.Fatal(err)
	}
	e.mustNetwork(t, "insurance", api.NetworksPost{Name: "claims", Subnet: "10.61.3.0/24"})
	e.mustNetwork(t, "securities", api.NetworksPost{Name: "trading", Subnet: "10.61.2.0/24"})
	pay := e.mustNetwork(t, "bank", api.NetworksPost{Name: "payments", Subnet: "10.61.1.0/24", DHCP: true, ACLs: []string{"pay-api"}})
	if pay.Bridge != e.prefix+"brpayments" || pay.Gateway != "10.61.1.1" || pay.Status != "up" {
		t.Fatalf("payments = %+v", pay)
	}
	acl, err := c.AddNetworkACLRule(ctx, "bank", "pay-api", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", Ports: []string{"8080"}, Networks: []string{"claims"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(acl.Rules) != 1 || acl.Rules[0].ID != "rule-1" || len(acl.UsedBy) != 1 {
		t.Fatalf("acl = %+v", acl)
	}

	c1 := e.plug(t, "insurance", "claims", "c1", "10.61.3.10")
	c2 := e.plug(t, "insurance", "claims", "c2", "10.61.3.11")
	p1 := e.plug(t, "bank", "payments", "p1", "10.61.1.10")
	t1 := e.plug(t, "securities", "trading", "t1", "10.61.2.10")
	for _, ep := range []*nettest.Endpoint{c2, p1, t1} {
		ep.NS.Listen(t, "8080")
		ep.NS.Listen(t, "8081")
	}
	// A project only attaches to its own networks.
	if _, _, _, err := networks.AttachInstanceNIC(ctx, e.td.D, "securities", "payments", "x", "x0"); err == nil || !strings.Contains(err.Error(), "not found in project securities") {
		t.Errorf("securities attached to bank's network: %v", err)
	}

	traffic := func(when string) {
		t.Helper()
		nettest.Eventually(t, 30*time.Second, when+": ping c1 -> c2 inside claims", func() bool { return c1.NS.Ping(c2.IP, 1) })
		nettest.Eventually(t, 30*time.Second, when+": tcp claims -> payments:8080 (the ACL)", func() bool { return c1.NS.TCP(p1.IP, "8080", 3*time.Second) })
		if c1.NS.Ping(p1.IP, 1) {
			t.Errorf("%s: ping claims -> payments passed; only tcp/8080 is allowed", when)
		}
		if c1.NS.TCP(p1.IP, "8081", 2*time.Second) {
			t.Errorf("%s: tcp claims -> payments:8081 passed; only 8080 is allowed", when)
		}
		if t1.NS.TCP(p1.IP, "8080", 2*time.Second) || t1.NS.Ping(c2.IP, 1) {
			t.Errorf("%s: trading reached another network", when)
		}
		if p1.NS.TCP(c2.IP, "8080", 2*time.Second) {
			t.Errorf("%s: payments -> claims passed; no rule allows it", when)
		}
	}
	traffic("before restart")
	acl, err = c.GetNetworkACL(ctx, "bank", "pay-api")
	if err != nil || len(acl.Counters) != 1 || acl.Counters[0].NIC != "p1" || acl.Rules[0].Packets == 0 {
		t.Errorf("acl show counters = %+v, %v; want packets on rule-1 of p1", acl, err)
	}

	// DHCP: a NIC without a static address gets its IPAM address from the daemon's DHCP
	// server; the lease (with expiry) is visible through the API.
	p2 := e.plug(t, "bank", "payments", "p2", "")
	var dc *nclient4.Client
	if err := p2.NS.NetNS().Do(func() error {
		var err error
		dc, err = nclient4.New("eth0", nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(5))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	var lease *nclient4.Lease
	nettest.Eventually(t, 60*time.Second, "DHCP lease for p2", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		lease, err = dc.Request(cctx)
		return err == nil
	})
	leases, err := c.NetworkLeases(ctx, "bank", "payments")
	if err != nil {
		t.Fatal(err)
	}
	var got *api.NetworkLease
	for i := range leases {
		if leases[i].NIC == "p2" {
			got = &leases[i]
		}
	}
	if got == nil || !net.ParseIP(got.IP).Equal(lease.ACK.YourIPAddr) || got.Expires.IsZero() || len(leases) != 2 {
		t.Fatalf("leases = %+v; want p1 and p2 with p2 at %s and an expiry", leases, lease.ACK.YourIPAddr)
	}

	// In use: 409 naming the NICs; nothing changes.
	if err := c.DeleteNetwork(ctx, "insurance", "claims"); client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "c1") {
		t.Errorf("delete claims in use: %v", err)
	}
	if err := c.DeleteNetworkACL(ctx, "bank", "pay-api"); client.StatusOf(err) != 202 && client.StatusOf(err) != 409 {
		// bank is protected: four-eyes first, the 409 comes when it is carried out.
		var pa *client.PendingApproval
		if !errors.As(err, &pa) {
			t.Errorf("delete pay-api in use: %v", err)
		}
	}

	// Restart: the ruleset and links come back identical. Before starting again, lose
	// trading's bridge and the anti-spoofing table, and leave a stray bridge and a stray
	// table carrying the prefix.
	rules, links := e.ruleset(t), e.links(t)
	e.td.Stop()
	e.host.MustExec(t, "ip", "link", "del", e.prefix+"brtrading")
	e.host.MustExec(t, "ip", "link", "add", e.prefix+"brstray", "type", "bridge")
	e.host.MustExec(t, "nft", "add", "table", "inet", e.prefix+"_old")
	e.host.MustExec(t, "nft", "delete", "table", "bridge", e.prefix)
	// ... and the probe namespace of a report the daemon died in.
	ghost := e.prefix + "-probe-ghost"
	nettest.Run(t, "ip", "netns", "add", ghost)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ghost).Run() })
	e.start(t)
	recs, err := e.c().AuditList(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	strays := map[string]bool{}
	for _, r := range recs {
		if r.Action == "network.stray-removed" {
			strays[r.Target] = true
		}
	}
	if !strays["link/"+e.prefix+"brstray"] || !strays["nft/inet "+e.prefix+"_old"] || len(strays) != 2 {
		t.Errorf("audited strays = %v; want the stray bridge and table", strays)
	}
	if _, err := os.Stat("/run/netns/" + ghost); !os.IsNotExist(err) {
		t.Errorf("stray probe namespace %s survived the restart: %v", ghost, err)
	}
	if got := e.ruleset(t); got != rules {
		t.Errorf("ruleset after restart differs:\n--- before\n%s\n--- after\n%s", rules, got)
	}
	if got := e.links(t); got != links {
		t.Errorf("links after restart differ:\n--- before\n%s\n--- after\n%s", links, got)
	}
	// trading's endpoint was enslaved to the old bridge: the reconcile re-plugged it.
	nettest.Eventually(t, 30*time.Second, "trading gateway after restart", func() bool {
		return strings.Contains(e.host.MustExec(t, "ip", "-o", "link", "show", t1.HostLink), "master "+e.prefix+"brtrading")
	})
	traffic("after restart")
	if leases2, _ := e.c().NetworkLeases(ctx, "bank", "payments"); len(leases2) != 2 {
		t.Errorf("leases after restart = %+v", leases2)
	}
	// The DHCP server is back and hands p2 the same address.
	nettest.Eventually(t, 60*time.Second, "DHCP after restart", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l2, err := dc.Request(cctx)
		return err == nil && l2.ACK.YourIPAddr.Equal(lease.ACK.YourIPAddr)
	})

	// The segmentation report: exactly the one intended cell is open.
	rules, links = e.ruleset(t), e.links(t)
	t0 := time.Now()
	rep, err := e.c().SegmentationReport(ctx, api.SegmentationReportPost{TCPPorts: []int{22, 8080}, TimeoutMS: 1500})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("segmentation report in %s", time.Since(t0).Round(time.Millisecond))
	if strings.Join(rep.Networks, ",") != "claims,payments,trading" || rep.RulesetHash == "" || rep.Projects["payments"] != "bank" {
		t.Fatalf("report = %+v", rep)
	}
	for _, cell := range rep.Cells {
		want := cell.From == "claims" && cell.To == "payments"
		if cell.Reachable != want || cell.Unexplained {
			t.Errorf("cell %s -> %s reachable=%v unexplained=%v probes=%+v; want reachable=%v", cell.From, cell.To, cell.Reachable, cell.Unexplained, cell.Probes, want)
		}
		if want {
			var open []string
			for _, p := range cell.Probes {
				if p.Reached {
					open = append(open, fmt.Sprintf("%s/%d", p.Proto, p.Port))
				}
			}
			if strings.Join(open, ",") != "tcp/8080" || strings.Join(cell.Explained, ",") != "pay-api/rule-1" {
				t.Errorf("claims -> payments open %v explained %v; want tcp/8080 by pay-api/rule-1", open, cell.Explained)
			}
		}
	}
	if len(rep.Cells) != 9 {
		t.Errorf("%d cells, want 6 between networks + 3 to the host", len(rep.Cells))
	}
	if got := e.ruleset(t); got != rules {
		t.Errorf("the report left rules behind:\n%s", got)
	}
	if got := e.links(t); got != links {
		t.Errorf("the report left links behind:\n%s", got)
	}
}
