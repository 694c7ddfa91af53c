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
	eps := dualStackNICs(t, h, "dual", [][3]string{{"six1", "10.97.5.10", "fd00:97:5::10"}, {"six2", "10.97.5.11", "fd00:97:5::11"}})
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

// dualStackNICs attaches one endpoint per {id, IPv4, IPv6} to network net (a /24 and a /64).
func dualStackNICs(t *testing.T, h *nettest.Host, net string, nics [][3]string) []*nettest.Endpoint {
	t.Helper()
	var eps []*nettest.Endpoint
	for _, n := range nics {
		id, v4, v6 := n[0], n[1], n[2]
		ep := nettest.NewEndpoint(t, h.NS, id, network.DeriveMAC(net, "vm", id), v4+"/24", "")
		ep.NS.MustExec(t, "ip", "-6", "addr", "add", v6+"/64", "dev", "eth0", "nodad")
		if _, err := h.M.AttachNIC(context.Background(), network.NIC{ID: id, Instance: "vm", Network: net, IP: v4, IP6: v6, HostLink: ep.HostLink}); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return eps
}
