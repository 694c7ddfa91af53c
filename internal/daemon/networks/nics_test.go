package networks_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon/networks"
	"github.com/finvirt/finvirt/internal/network"
)

// TestInstanceNICAPI: the Go API the instances subsystem calls creates a real tap on the
// network's bridge, is idempotent, survives a restart (a lost tap comes back) and detaches
// cleanly, after which the network can be deleted.
func TestInstanceNICAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.projects(t, "securities")
	e.mustNetwork(t, "securities", api.NetworksPost{Name: "trading", Subnet: "10.64.2.0/24"})
	tap, mac, ip, err := networks.AttachInstanceNIC(ctx, e.td.D, "securities", "trading", "trade-1", "trade-1.eth0")
	if err != nil {
		t.Fatal(err)
	}
	if tap != network.TapName(e.prefix, "trade-1.eth0") || mac != network.DeriveMAC("trading", "trade-1", "trade-1.eth0").String() ||
		!netip.MustParsePrefix("10.64.2.0/24").Contains(netip.MustParseAddr(ip)) {
		t.Fatalf("attach = %s %s %s", tap, mac, ip)
	}
	if out := e.host.MustExec(t, "ip", "-d", "-o", "link", "show", tap); !strings.Contains(out, "master "+e.prefix+"brtrading") || !strings.Contains(out, "tun") {
		t.Fatalf("tap: %s", out)
	}
	tap2, mac2, ip2, err := networks.AttachInstanceNIC(ctx, e.td.D, "securities", "trading", "trade-1", "trade-1.eth0")
	if err != nil || tap2 != tap || mac2 != mac || ip2 != ip {
		t.Fatalf("second attach = %s %s %s %v; want the same NIC", tap2, mac2, ip2, err)
	}
	if n, _ := e.c().GetNetwork(ctx, "securities", "trading"); strings.Join(n.NICs, ",") != "trade-1.eth0" {
		t.Errorf("network NICs = %v", n.NICs)
	}

	// Restart after losing the tap: it comes back on the bridge with the same address.
	e.td.Stop()
	e.host.MustExec(t, "ip", "link", "del", tap)
	e.start(t)
	if out := e.host.MustExec(t, "ip", "-o", "link", "show", tap); !strings.Contains(out, "master "+e.prefix+"brtrading") {
		t.Fatalf("tap after restart: %s", out)
	}
	if ls, _ := e.c().NetworkLeases(ctx, "securities", "trading"); len(ls) != 1 || ls[0].IP != ip || ls[0].NIC != "trade-1.eth0" || ls[0].Instance != "trade-1" {
		t.Errorf("leases after restart = %+v", ls)
	}

	if err := networks.DetachInstanceNIC(ctx, e.td.D, "bank", "trade-1.eth0"); err == nil {
		t.Error("another project detached the NIC")
	}
	if err := networks.DetachInstanceNIC(ctx, e.td.D, "securities", "trade-1.eth0"); err != nil {
		t.Fatal(err)
	}
	if err := networks.DetachInstanceNIC(ctx, e.td.D, "securities", "trade-1.eth0"); err != nil {
		t.Errorf("second detach: %v", err)
	}
	if _, err := e.host.Exec("ip", "link", "show", tap); err == nil {
		t.Error("tap still there after detach")
	}
	if ls, _ := e.c().NetworkLeases(ctx, "securities", "trading"); len(ls) != 0 {
		t.Errorf("leases after detach = %+v", ls)
	}
	if err := e.c().DeleteNetwork(ctx, "securities", "trading"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.links(t), e.prefix) || strings.Contains(e.ruleset(t), "table") {
		t.Errorf("left behind after the last delete:\n%s\n%s", e.links(t), e.ruleset(t))
	}
}
