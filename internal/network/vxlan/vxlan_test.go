package vxlan_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
	_ "github.com/finvirt/finvirt/internal/network/vxlan"
)

func decorate(n network.Network, idx int) network.Network {
	n.VXLAN = &network.VXLANConfig{VNI: uint32(1000 + idx), LocalIP: "192.0.2.1"}
	return n
}

func TestConformance(t *testing.T) {
	nettest.RunSuite(t, nettest.Config{Driver: "vxlan", Decorate: decorate})
}

// TestTwoHosts spans one network over two "hosts" (namespaces) joined by a veth underlay:
// an endpoint on host A reaches one on host B by ping and TCP, and an endpoint on another
// VNI does not.
func TestTwoHosts(t *testing.T) {
	ctx := context.Background()
	a, b := nettest.NewHost(t), nettest.NewHost(t)
	ua, ub := "fvu"+nettest.Suffix()[:6], "fvu"+nettest.Suffix()[:6]
	a.NS.MustExec(t, "ip", "link", "add", ua, "type", "veth", "peer", "name", ub)
	a.NS.MustExec(t, "ip", "link", "set", ub, "netns", b.NS.Name)
	a.NS.MustExec(t, "ip", "addr", "add", "172.31.9.1/24", "dev", ua)
	b.NS.MustExec(t, "ip", "addr", "add", "172.31.9.2/24", "dev", ub)
	a.NS.MustExec(t, "ip", "link", "set", ua, "up")
	b.NS.MustExec(t, "ip", "link", "set", ub, "up")

	mk := func(local, peer, underlay, gw string) network.Network {
		return network.Network{Name: "span", Driver: "vxlan", Subnet: "10.60.0.0/24", Gateway: gw,
			VXLAN: &network.VXLANConfig{VNI: 4242, LocalIP: local, Peers: []string{peer}, Underlay: underlay}}
	}
	// Each host routes with its own gateway address: no duplicate IP on the shared segment.
	na, err := a.M.CreateNetwork(ctx, mk("172.31.9.1", "172.31.9.2", ua, "10.60.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.M.CreateNetwork(ctx, mk("172.31.9.2", "172.31.9.1", ub, "10.60.0.254"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.M.NetworkInfo(ctx, "span")
	if err != nil || info.VXLAN == "" || fmt.Sprint(info.VXLANPeers) != "[172.31.9.2]" || info.MTU != 1450 {
		t.Errorf("info = %+v, %v; want vxlan port with peer 172.31.9.2, MTU 1450", info, err)
	}
	// Ensure with the same settings keeps the device (no flap of a live segment).
	vxName := network.VXLANName("fv", 4242)
	idx := strings.Fields(a.NS.MustExec(t, "ip", "-o", "link", "show", vxName))[0]
	if _, err := a.M.EnsureNetwork(ctx, mk("172.31.9.1", "172.31.9.2", ua, "10.60.0.1")); err != nil {
		t.Fatal(err)
	}
	if again := strings.Fields(a.NS.MustExec(t, "ip", "-o", "link", "show", vxName))[0]; again != idx {
		t.Errorf("Ensure recreated %s (index %s -> %s)", vxName, idx, again)
	}
	if fdb := a.NS.MustExec(t, "bridge", "fdb", "show", "dev", vxName); strings.Count(fdb, "dst 172.31.9.2") != 1 {
		t.Errorf("peer FDB entries after two Ensures:\n%s", fdb)
	}
	epA, _ := a.Plug(t, na, "va", "10.60.0.10")
	epB, _ := b.Plug(t, nb, "vb", "10.60.0.20")
	epB.NS.Listen(t, "7000")
	nettest.Eventually(t, 30*time.Second, "ping host A endpoint -> host B endpoint over VXLAN", func() bool {
		return epA.NS.Ping(epB.IP, 1)
	})
	if !epA.NS.TCP(epB.IP, "7000", 5*time.Second) {
		t.Error("tcp A -> B:7000 over VXLAN failed")
	}
	// The inner MTU leaves room for the encapsulation: a 1422-byte ping (1450 on the wire)
	// with DF set passes.
	if out, err := epA.NS.Exec("ip", "link", "set", "eth0", "mtu", "1450"); err != nil {
		t.Fatal(string(out))
	}
	epB.NS.MustExec(t, "ip", "link", "set", "eth0", "mtu", "1450")
	if out, err := epA.NS.Exec("busybox", "ping", "-c", "1", "-W", "3", "-s", "1422", epB.IP); err != nil || !strings.Contains(string(out), "bytes from") {
		t.Errorf("full-MTU ping over VXLAN failed: %v\n%s", err, out)
	}
	// A different VNI on host B is another segment.
	nb2, err := b.M.CreateNetwork(ctx, network.Network{Name: "other", Driver: "vxlan", Subnet: "10.61.0.0/24",
		VXLAN: &network.VXLANConfig{VNI: 4343, LocalIP: "172.31.9.2", Peers: []string{"172.31.9.1"}, Underlay: ub}})
	if err != nil {
		t.Fatal(err)
	}
	epC, _ := b.Plug(t, nb2, "vc", "10.61.0.20")
	if epA.NS.Ping(epC.IP, 2) {
		t.Error("an endpoint on VNI 4343 answered one on VNI 4242")
	}
	// Peers follow the network definition: dropping the peer cuts the segment.
	if _, err := a.M.EnsureNetwork(ctx, network.Network{Name: "span", Driver: "vxlan", Subnet: "10.60.0.0/24",
		VXLAN: &network.VXLANConfig{VNI: 4242, LocalIP: "172.31.9.1", Underlay: ua}}); err != nil {
		t.Fatal(err)
	}
	if info, _ := a.M.NetworkInfo(ctx, "span"); len(info.VXLANPeers) != 0 {
		t.Errorf("peers after removing them: %v", info.VXLANPeers)
	}
}
