package bridge_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// sendNA sends an unsolicited neighbour advertisement (override flag set) for target with
// lladdr as its target link-layer address option, to all nodes, from the endpoint's eth0.
// The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
func sendNA(t *testing.T, ep *nettest.Endpoint, target netip.Addr, lladdr net.HardwareAddr) {
	t.Helper()
	err := ep.NS.NetNS().Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index); err != nil {
			return err
		}
		msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // NA, override
		tg := target.As16()
		msg = append(msg, tg[:]...)
		msg = append(append(msg, 2, 1), lladdr...) // target link-layer address option
		return unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(ifi.Index)})
	})
	if err != nil {
		t.Fatalf("send NA: %v", err)
	}
}

// TestNDSpoofing: a NIC may not announce another NIC's IPv6 address (NA target), nor put a MAC
// other than its own in an NA's link-layer option: the gateway's neighbour entry for the
// victim keeps the victim's MAC. An NA for the sender's own address with a forged MAC is
// dropped too, and with its real MAC passes (the check is not simply "drop all NAs").
func TestNDSpoofing(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	if _, err := h.M.CreateNetwork(ctx, network.Network{Name: "nd", Subnet: "10.97.6.0/24", Subnet6: "fd00:97:6::/64"}); err != nil {
		t.Fatal(err)
	}
	eps := dualStackNICs(t, h, "nd", [][3]string{{"nd1", "10.97.6.10", "fd00:97:6::10"}, {"nd2", "10.97.6.11", "fd00:97:6::11"}})
	attacker, victim := eps[0], eps[1]
	victimIP := netip.MustParseAddr("fd00:97:6::11")
	// The gateway (host side) learns the victim's MAC: the host may open connections to NICs.
	nettest.Eventually(t, 30*time.Second, "the host pings the victim", func() bool {
		out, err := h.NS.Exec("busybox", "ping", "-6", "-c", "1", "-W", "2", victimIP.String())
		return err == nil && strings.Contains(string(out), "bytes from")
	})
	neigh := func(ip string) string {
		return h.NS.MustExec(t, "ip", "-6", "neigh", "show", ip)
	}
	if n := neigh(victimIP.String()); !strings.Contains(n, victim.MAC.String()) {
		t.Fatalf("gateway has no entry for the victim: %q", n)
	}
	sendNA(t, attacker, victimIP, attacker.MAC)                                         // claims the victim's address
	sendNA(t, attacker, victimIP, net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}) // and with a forged MAC
	time.Sleep(500 * time.Millisecond)
	if n := neigh(victimIP.String()); !strings.Contains(n, victim.MAC.String()) {
		t.Fatalf("spoofed NA took over the victim's address at the gateway: %q (victim %s, attacker %s)", n, victim.MAC, attacker.MAC)
	}
	// Control: the attacker's NA for its own address passes and refreshes its entry.
	h.NS.MustExec(t, "ip", "-6", "neigh", "replace", "fd00:97:6::10", "lladdr", "02:00:00:00:00:99", "dev", network.BridgeName("fv", "nd"), "nud", "stale")
	sendNA(t, attacker, netip.MustParseAddr("fd00:97:6::10"), net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x02}) // own address, forged MAC
	time.Sleep(500 * time.Millisecond)
	if n := neigh("fd00:97:6::10"); strings.Contains(n, "02:de:ad:be:ef:02") {
		t.Fatalf("NA with a forged link-layer address was accepted: %q", n)
	}
	sendNA(t, attacker, netip.MustParseAddr("fd00:97:6::10"), attacker.MAC)
	nettest.Eventually(t, 10*time.Second, "own NA accepted", func() bool {
		return strings.Contains(neigh("fd00:97:6::10"), attacker.MAC.String())
	})
}
