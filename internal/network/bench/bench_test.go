// Package bench measures the network layer against a plain veth pair measured in the same
// run: TCP throughput, per-packet latency, ruleset install time and per-packet cost with
// 10 vs 10,000 ACL entries. Run:
//
//	go test -run XXX -bench . -benchtime 1x ./internal/network/bench/
//
// Figures go to docs/perf/network.md.
package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/firewall"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// vethPair is the baseline: two namespaces joined directly by a veth pair.
func vethPair(b *testing.B) (nettest.NS, nettest.NS, string) {
	a, c := nettest.NewNS(b, "ba"), nettest.NewNS(b, "bb")
	x, y := "fvx"+nettest.Suffix()[:6], "fvy"+nettest.Suffix()[:6]
	a.MustExec(b, "ip", "link", "add", x, "type", "veth", "peer", "name", y)
	a.MustExec(b, "ip", "link", "set", y, "netns", c.Name)
	a.MustExec(b, "ip", "addr", "add", "10.99.0.1/24", "dev", x)
	c.MustExec(b, "ip", "addr", "add", "10.99.0.2/24", "dev", y)
	a.MustExec(b, "ip", "link", "set", x, "up")
	c.MustExec(b, "ip", "link", "set", y, "up")
	return a, c, "10.99.0.2"
}

// oneNetwork is two endpoints on a finvirt bridge network with the firewall in place.
func oneNetwork(b *testing.B, groups ...string) (*nettest.Host, *nettest.Endpoint, *nettest.Endpoint) {
	h := nettest.NewHost(b)
	n, err := h.M.CreateNetwork(context.Background(), network.Network{Name: "bench", Subnet: "10.98.0.0/24"})
	if err != nil {
		b.Fatal(err)
	}
	e1, _ := h.Plug(b, n, "b1", "10.98.0.10")
	e2, _ := h.Plug(b, n, "b2", "10.98.0.11", groups...)
	nettest.Eventually(b, 30*time.Second, "ping on the bench network", func() bool { return e1.NS.Ping(e2.IP, 1) })
	return h, e1, e2
}

func BenchmarkTCPThroughput(b *testing.B) {
	nettest.RequireIperf(b)
	va, vb, vip := vethPair(b)
	_, e1, e2 := oneNetwork(b)
	vb.IperfServer(b, 5201)
	e2.NS.IperfServer(b, 5201)
	var ratios []float64
	for i := 0; i < b.N; i++ {
		base := va.Iperf(b, vip, 5201, 3)
		got := e1.NS.Iperf(b, e2.IP, 5201, 3)
		b.ReportMetric(base/1e6, "veth-Mbit/s")
		b.ReportMetric(got/1e6, "bridge-Mbit/s")
		ratios = append(ratios, got/base)
	}
	b.ReportMetric(median(ratios)*100, "%-of-veth")
}

// udpRTT sends n UDP echoes from src to dst:port and returns the median round trip.
func udpRTT(b *testing.B, src nettest.NS, dst string, port, n int) time.Duration {
	var c *net.UDPConn
	if err := src.NetNS().Do(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(dst), Port: port})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	var rtts []float64
	for i := 0; i < n; i++ {
		t0 := time.Now()
		c.Write(buf)
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err != nil {
			continue
		}
		rtts = append(rtts, float64(time.Since(t0)))
	}
	if len(rtts) < n/2 {
		b.Fatalf("only %d of %d UDP echoes answered", len(rtts), n)
	}
	return time.Duration(median(rtts))
}

func udpEcho(b *testing.B, ns nettest.NS, port int) {
	var c *net.UDPConn
	if err := ns.NetNS().Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			c.WriteToUDP(buf[:n], from)
		}
	}()
}

func BenchmarkLatency(b *testing.B) {
	va, vb, vip := vethPair(b)
	_, e1, e2 := oneNetwork(b)
	udpEcho(b, vb, 7000)
	udpEcho(b, e2.NS, 7000)
	for i := 0; i < b.N; i++ {
		base := udpRTT(b, va, vip, 7000, 2000)
		got := udpRTT(b, e1.NS, e2.IP, 7000, 2000)
		b.ReportMetric(float64(base)/1e3, "veth-rtt-us")
		b.ReportMetric(float64(got)/1e3, "bridge-rtt-us")
		b.ReportMetric(float64(got-base)/1e3, "added-us")
	}
}

func aclGroup(entries int) network.SecurityGroup {
	cidrs := []string{"10.97.0.0/24"}
	for i := 0; len(cidrs) < entries; i++ {
		v := 0x0b000000 + uint32(i)*2
		cidrs = append(cidrs, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String())
	}
	return network.SecurityGroup{Name: "acl", Rules: []network.Rule{{ID: "udp", Direction: network.Ingress, Protocol: "udp", CIDRs: cidrs}}}
}

// BenchmarkACL measures, for 10 and 10,000 peer entries: the time to install the group (one
// atomic batch) and the RTT of UDP echoes that cross the ACL (routed between networks).
func BenchmarkACL(b *testing.B) {
	for _, entries := range []int{10, 10000} {
		b.Run(fmt.Sprintf("entries=%d", entries), func(b *testing.B) {
			ctx := context.Background()
			h := nettest.NewHost(b)
			src, _ := h.M.CreateNetwork(ctx, network.Network{Name: "src", Subnet: "10.97.0.0/24"})
			dst, _ := h.M.CreateNetwork(ctx, network.Network{Name: "dst", Subnet: "10.97.1.0/24"})
			if err := h.M.PutSecurityGroup(ctx, network.SecurityGroup{Name: "acl"}); err != nil {
				b.Fatal(err)
			}
			e1, _ := h.Plug(b, src, "a1", "10.97.0.10")
			e2, _ := h.Plug(b, dst, "a2", "10.97.1.10", "acl")
			udpEcho(b, e2.NS, 7000)
			g := aclGroup(entries)
			var installs []float64
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := h.M.PutSecurityGroup(ctx, g); err != nil {
					b.Fatal(err)
				}
				installs = append(installs, float64(time.Since(t0)))
				rtt := udpRTT(b, e1.NS, e2.IP, 7000, 2000)
				b.ReportMetric(float64(rtt)/1e3, "rtt-us")
			}
			b.ReportMetric(median(installs)/1e6, "install-ms")
			n, _ := h.FW.RuleCount(firewall.InChain("a2"))
			b.ReportMetric(float64(n), "rules-in-nic-chain")
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64{}, v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
