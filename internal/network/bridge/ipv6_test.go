package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestIPv6: a dual-stack network carries the IPv6 gateway, its NICs reach each other over
// IPv6 (neighbour discovery passes the anti-spoofing chain), and a forged IPv6 source is
// dropped.
func TestIPv6(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	_, err := h.M.CreateNetwork(ctx, network.Network{Name: "dual", Subnet: "10.97.5.0/24", Subnet6: "fd00:97:5::/64"})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := h.M.NetworkInfo(ctx, "dual")
	if !strings.Contains(strings.Join(info.Addresses, " "), "fd00:97:5::1/64") {
		t.Errorf("bridge addresses %v lack fd00:97:5::1/64", info.Addresses)
	}
	var eps []*nettest.Endpoint
	for i, id := range []string{"six1", "six2"} {
		v4 := []string{"10.97.5.10", "10.97.5.11"}[i]
		v6 := []string{"fd00:97:5::10", "fd00:97:5::11"}[i]
		ep := nettest.NewEndpoint(t, h.NS, id, network.DeriveMAC("dual", "vm", id), v4+"/24", "")
		ep.NS.MustExec(t, "ip", "-6", "addr", "add", v6+"/64", "dev", "eth0", "nodad")
		if _, err := h.M.AttachNIC(ctx, network.NIC{ID: id, Instance: "vm", Network: "dual", IP: v4, IP6: v6, HostLink: ep.HostLink}); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	ping6 := func(args ...string) bool {
		out, err := eps[0].NS.Exec(append([]string{"busybox", "ping", "-6", "-c", "1", "-W", "2"}, args...)...)
		return err == nil && strings.Contains(string(out), "bytes from")
	}
	nettest.Eventually(t, 30*time.Second, "ping6 inside the network", func() bool { return ping6("fd00:97:5::11") })
	eps[0].NS.MustExec(t, "ip", "-6", "addr", "add", "fd00:97:5::99/64", "dev", "eth0", "nodad")
	if ping6("-I", "fd00:97:5::99", "fd00:97:5::11") {
		t.Error("ping6 from a forged source address got a reply")
	}
}
