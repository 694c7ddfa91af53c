package qos_test

import (
	"context"
	"testing"

	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/nettest"
	"github.com/finvirt/finvirt/internal/network/qos"
)

// TestBandwidthLimit: traffic towards a NIC limited to 20 Mbit/s stays far below traffic
// towards an unlimited NIC on the same network, measured in the same run.
func TestBandwidthLimit(t *testing.T) {
	nettest.RequireIperf(t)
	h := nettest.NewHost(t)
	ctx := context.Background()
	n, err := h.M.CreateNetwork(ctx, network.Network{Name: "q", Subnet: "10.95.0.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := h.Plug(t, n, "qsrc", "10.95.0.10")
	free, _ := h.Plug(t, n, "qfree", "10.95.0.11")
	lim := nettest.NewEndpoint(t, h.NS, "qlim", network.DeriveMAC("q", "vm", "qlim"), "10.95.0.12/24", "")
	nic, err := h.M.AttachNIC(ctx, network.NIC{ID: "qlim", Instance: "vm", Network: "q", IP: "10.95.0.12",
		HostLink: lim.HostLink, BandwidthMbit: 20})
	if err != nil {
		t.Fatal(err)
	}
	nh, err := h.NS.NetNS().Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(nic.Device)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := qos.Current(nh, l); got != 20 {
		t.Errorf("TBF rate %d Mbit/s, want 20", got)
	}
	free.NS.IperfServer(t, 5201)
	lim.NS.IperfServer(t, 5201)
	unl := src.NS.Iperf(t, free.IP, 5201, 2)
	ltd := src.NS.Iperf(t, lim.IP, 5201, 2)
	t.Logf("unlimited %s, limited (20 Mbit/s) %s", nettest.Mbit(unl), nettest.Mbit(ltd))
	if ltd > 0.5*unl || ltd > 40e6 {
		t.Errorf("limited %s not well below unlimited %s / the 20 Mbit/s limit", nettest.Mbit(ltd), nettest.Mbit(unl))
	}
	// From the guest: the bridge-family limit rule in the NIC's port chain polices it.
	src.NS.IperfServer(t, 5202)
	unlEg := free.NS.Iperf(t, src.IP, 5202, 2)
	ltdEg := lim.NS.Iperf(t, src.IP, 5202, 2)
	t.Logf("egress: unlimited %s, limited (20 Mbit/s) %s", nettest.Mbit(unlEg), nettest.Mbit(ltdEg))
	if ltdEg > 0.5*unlEg || ltdEg > 40e6 {
		t.Errorf("egress limited %s not well below unlimited %s / the 20 Mbit/s limit", nettest.Mbit(ltdEg), nettest.Mbit(unlEg))
	}
	// Removing the limit removes the qdisc.
	if err := qos.Apply(nh, l, qos.Limit{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := qos.Current(nh, l); got != 0 {
		t.Errorf("TBF still set after clearing: %d", got)
	}
	if err := qos.Apply(nh, l, qos.Limit{Mbit: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}
