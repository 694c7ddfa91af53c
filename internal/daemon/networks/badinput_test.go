package networks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

// TestBadInput: every refusal is a precise 4xx naming the object and the fix, and changes
// nothing: not the store (API listings), not the host (links, ruleset).
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.projects(t, "bank", "insurance")
	c := e.c()
	if _, err := c.CreateNetworkACL(ctx, "bank", api.NetworkACLsPost{Name: "pay-api"}); err != nil {
		t.Fatal(err)
	}
	e.mustNetwork(t, "bank", api.NetworksPost{Name: "payments", Subnet: "10.62.1.0/24", ACLs: []string{"pay-api"}})
	e.mustNetwork(t, "insurance", api.NetworksPost{Name: "claims", Subnet: "10.62.3.0/24"})
	e.mustNetwork(t, "insurance", api.NetworksPost{Name: "overlay", Driver: "vxlan", Subnet: "10.62.4.0/24",
		VXLAN: &api.NetworkVXLAN{VNI: 4242, LocalIP: "192.0.2.1"}})

	vx := func(vni uint32) *api.NetworkVXLAN { return &api.NetworkVXLAN{VNI: vni, LocalIP: "192.0.2.1"} }
	netCases := []struct {
		name, project string
		req           api.NetworksPost
		code          int
		msg           string
	}{
		{"bad name", "bank", api.NetworksPost{Name: "Bad_Name", Subnet: "10.62.9.0/24"}, 400, "network"},
		{"overlap", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.1.128/25"}, 400, `overlaps subnet 10.62.1.0/24 of network "payments"`},
		{"overlap other project", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.0.0/16"}, 400, "overlaps"},
		{"gateway outside", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.9.0/24", Gateway: "10.62.10.1"}, 400, "gateway"},
		{"host bits", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.9.1/24"}, 400, "10.62.9.1/24"},
		{"no subnet", "bank", api.NetworksPost{Name: "n1"}, 400, "subnet"},
		{"unknown driver", "bank", api.NetworksPost{Name: "n1", Driver: "ovs", Subnet: "10.62.9.0/24"}, 400, "use bridge or vxlan"},
		{"vni zero", "bank", api.NetworksPost{Name: "n1", Driver: "vxlan", Subnet: "10.62.9.0/24", VXLAN: vx(0)}, 400, "VNI"},
		{"vni too big", "bank", api.NetworksPost{Name: "n1", Driver: "vxlan", Subnet: "10.62.9.0/24", VXLAN: vx(1 << 24)}, 400, "VNI"},
		{"vni clash", "bank", api.NetworksPost{Name: "n1", Driver: "vxlan", Subnet: "10.62.9.0/24", VXLAN: vx(4242)}, 400, "overlay"},
		{"vxlan without vni", "bank", api.NetworksPost{Name: "n1", Driver: "vxlan", Subnet: "10.62.9.0/24"}, 400, "--vni"},
		{"bad dhcp range", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.9.0/24", DHCP: true, DHCPRange: "10.62.9.5"}, 400, "FIRST-LAST"},
		{"unknown acl", "bank", api.NetworksPost{Name: "n1", Subnet: "10.62.9.0/24", ACLs: []string{"nope"}}, 400, "ACL nope does not exist"},
		{"acl of another project", "insurance", api.NetworksPost{Name: "n1", Subnet: "10.62.9.0/24", ACLs: []string{"pay-api"}}, 400, "project insurance"},
		{"name taken in another project", "insurance", api.NetworksPost{Name: "payments", Subnet: "10.62.9.0/24"}, 409, "in project bank"},
		{"unknown project", "nosuch", api.NetworksPost{Name: "n1", Subnet: "10.62.9.0/24"}, 404, "nosuch"},
	}
	ruleCases := []struct {
		name string
		rule api.NetworkACLRule
		msg  string
	}{
		{"no direction", api.NetworkACLRule{Protocol: "tcp", Ports: []string{"80"}}, "direction"},
		{"bad direction", api.NetworkACLRule{Direction: "sideways", Protocol: "tcp"}, "ingress or egress"},
		{"port out of range", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", Ports: []string{"70000"}}, "70000"},
		{"reversed range", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", Ports: []string{"90-80"}}, "90-80"},
		{"port without tcp/udp", api.NetworkACLRule{Direction: "ingress", Protocol: "icmp", Ports: []string{"80"}}, "tcp or udp"},
		{"bad protocol", api.NetworkACLRule{Direction: "ingress", Protocol: "gre"}, "protocol"},
		{"bad cidr", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", CIDRs: []string{"10.0.0.0/33"}}, "10.0.0.0/33"},
		{"unknown source network", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", Networks: []string{"nosuch"}}, `network "nosuch" does not exist`},
		{"unknown source acl", api.NetworkACLRule{Direction: "ingress", Protocol: "tcp", ACLs: []string{"nosuch"}}, `"nosuch" does not exist`},
		{"numeric id", api.NetworkACLRule{ID: "7", Direction: "ingress", Protocol: "tcp"}, "must not be a number"},
	}

	type snapshot struct{ store, links, rules string }
	snap := func() snapshot {
		var parts []string
		for _, p := range []string{"bank", "insurance"} {
			ns, _ := c.ListNetworks(ctx, p)
			as, _ := c.ListNetworkACLs(ctx, p)
			for i := range ns {
				ns[i].Ports = nil
			}
			b, _ := json.Marshal([]any{ns, as})
			parts = append(parts, string(b))
		}
		return snapshot{strings.Join(parts, "\n"), e.links(t), e.ruleset(t)}
	}
	before := snap()
	for _, tc := range netCases {
		_, err := c.CreateNetwork(ctx, tc.project, tc.req)
		if client.StatusOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %d containing %q", tc.name, err, tc.code, tc.msg)
		}
	}
	for _, tc := range ruleCases {
		_, err := c.AddNetworkACLRule(ctx, "bank", "pay-api", tc.rule)
		if client.StatusOf(err) != 400 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("rule %s: %v; want 400 containing %q", tc.name, err, tc.msg)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"acl bad name", func() error { _, err := c.CreateNetworkACL(ctx, "bank", api.NetworkACLsPost{Name: "A B"}); return err }(), 400, "network ACL"},
		{"acl taken", func() error {
			_, err := c.CreateNetworkACL(ctx, "insurance", api.NetworkACLsPost{Name: "pay-api"})
			return err
		}(), 409, "in project bank"},
		{"rule index out of range", func() error { _, err := c.DeleteNetworkACLRule(ctx, "bank", "pay-api", "3"); return err }(), 404, "out of range"},
		{"rule unknown id", func() error { _, err := c.DeleteNetworkACLRule(ctx, "bank", "pay-api", "nope"); return err }(), 404, `no rule "nope"`},
		{"rule on unknown acl", func() error {
			_, err := c.AddNetworkACLRule(ctx, "bank", "nope", api.NetworkACLRule{Direction: "ingress"})
			return err
		}(), 404, "network ACL nope not found in project bank"},
		{"show network of another project", func() error { _, err := c.GetNetwork(ctx, "bank", "claims"); return err }(), 404, "network claims not found in project bank"},
		{"delete network of another project", c.DeleteNetwork(ctx, "insurance", "payments"), 404, "network payments not found in project insurance"},
		{"delete network named by a rule", func() error {
			if _, err := c.AddNetworkACLRule(ctx, "bank", "pay-api", api.NetworkACLRule{ID: "from-claims", Direction: "ingress", Protocol: "tcp", Networks: []string{"claims"}}); err != nil {
				return err
			}
			before = snap()
			return c.DeleteNetwork(ctx, "insurance", "claims")
		}(), 409, "from-claims"},
		{"delete acl in use", c.DeleteNetworkACL(ctx, "insurance", "pay-api"), 404, "not found in project insurance"},
		{"report bad port", func() error {
			_, err := c.SegmentationReport(ctx, api.SegmentationReportPost{TCPPorts: []int{0}})
			return err
		}(), 400, "tcp port 0"},
	} {
		if client.StatusOf(tc.err) != tc.code || !strings.Contains(tc.err.Error(), tc.msg) {
			t.Errorf("%s: %v; want %d containing %q", tc.name, tc.err, tc.code, tc.msg)
		}
	}
	after := snap()
	if after != before {
		t.Errorf("refused requests changed something:\n--- before\n%+v\n--- after\n%+v", before, after)
	}

	// bank is protected: deleting its network needs a second identity; nothing is deleted.
	err := c.DeleteNetwork(ctx, "bank", "payments")
	var pa *client.PendingApproval
	if !errors.As(err, &pa) {
		t.Fatalf("delete in protected bank: %v; want a pending approval", err)
	}
	bob := e.td.TokenFor(t, "bob", api.RoleAdmin, "")
	if _, err := bob.DecideApproval(ctx, pa.Approval.ID, true, "decommission"); err == nil {
		// Approved and carried out: payments is gone, its bridge too.
		if _, err := c.GetNetwork(ctx, "bank", "payments"); client.StatusOf(err) != 404 {
			t.Errorf("payments after approved delete: %v", err)
		}
		if strings.Contains(e.links(t), e.prefix+"brpayments") {
			t.Error("bridge of the deleted network is still there")
		}
	} else {
		t.Errorf("approve: %v", err)
	}
	_ = dt.Admin
}
