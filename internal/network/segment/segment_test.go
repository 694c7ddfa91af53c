package segment_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/nettest"
	"github.com/finvirt/finvirt/internal/network/segment"
)

func TestReport(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	var eps []segment.Endpoint
	var claimsEP *nettest.Endpoint
	nets := map[string]network.ResolvedNetwork{}
	for i, name := range []string{"claims", "payments", "ledger"} {
		n, err := h.M.CreateNetwork(ctx, network.Network{Name: name, Subnet: "10.90." + string(rune('1'+i)) + ".0/24"})
		if err != nil {
			t.Fatal(err)
		}
		nets[name] = n
	}
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "pay-api", Rules: []network.Rule{
		{ID: "claims-8080", Direction: network.Ingress, Protocol: "tcp", Ports: []string{"8080"}, Networks: []string{"claims"}},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"claims", "payments", "ledger"} {
		n := nets[name]
		ip := n.Prefix.Addr().Next().Next().Next().String() // .3
		var groups []string
		if name == "payments" {
			groups = []string{"pay-api"}
		}
		ep, nic := h.Plug(t, n, "s"+name[:3], ip, groups...)
		if name == "payments" {
			ep.NS.Listen(t, "8080")
		}
		if name == "claims" {
			claimsEP = ep
		}
		eps = append(eps, segment.Endpoint{Network: name, NIC: nic.ID, IP: ep.IP, NS: ep.NS.NetNS()})
	}
	// Wait until the bridge ports forward (same check the suite uses), then probe.
	pay := eps[1]
	nettest.Eventually(t, 30*time.Second, "claims reaches payments:8080", func() bool {
		return claimsEP.NS.TCP(pay.IP, "8080", 2*time.Second)
	})
	digest, err := h.FW.Digest(ctx)
	if err != nil || len(digest) != 64 {
		t.Fatalf("digest %q, %v", digest, err)
	}
	rep, err := segment.Run(ctx, h.M.State(), eps, segment.Options{TCPPorts: []int{22, 8080}, Timeout: 1500 * time.Millisecond, RulesetDigest: digest})
	if err != nil {
		t.Fatal(err)
	}
	var reachable []string
	for _, c := range rep.Cells {
		if c.Reachable {
			reachable = append(reachable, c.From+">"+c.To+":"+strings.Join(c.Explained, "+"))
			for _, p := range c.Probes {
				if p.Reached && !(p.Proto == "tcp" && p.Port == 8080) {
					t.Errorf("%s -> %s: %s/%d reached", c.From, c.To, p.Proto, p.Port)
				}
			}
		}
		if c.Unexplained {
			t.Errorf("unexplained cell %+v", c)
		}
	}
	if got := strings.Join(reachable, " "); got != "claims>payments:pay-api/claims-8080" {
		t.Errorf("reachable cells = %q, want only claims>payments explained by pay-api/claims-8080", got)
	}
	if len(rep.Cells) != 9 {
		t.Errorf("%d cells, want 6 pairs + 3 host cells", len(rep.Cells))
	}
	txt := rep.Text()
	if !strings.Contains(txt, digest) || !strings.Contains(txt, "tcp/8080") || !strings.Contains(txt, "claims -> payments") {
		t.Errorf("text report:\n%s", txt)
	}
	t.Logf("\n%s", txt)
	b, _ := rep.JSON()
	var back segment.Report
	if err := json.Unmarshal(b, &back); err != nil || back.RulesetHash != digest || back.Timestamp.IsZero() || back.Host == "" {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
	// The digest changes with the ruleset and not with traffic (counters are excluded).
	if d2, _ := h.FW.Digest(ctx); d2 != digest {
		t.Error("digest changed with traffic alone")
	}
	if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "pay-api"}); err != nil {
		t.Fatal(err)
	}
	if d3, _ := h.FW.Digest(ctx); d3 == digest {
		t.Error("digest unchanged after removing a rule")
	}
}
