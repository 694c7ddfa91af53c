package bridge_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestNAT: a --nat network reaches an "internet" namespace behind the host's uplink with
// the uplink's address as source; a network without NAT does not get out; forwarding is
// on for the bridge and uplink only, never globally.
func TestNAT(t *testing.T) {
	h := nettest.NewHost(t)
	ctx := context.Background()
	inet := nettest.NewNS(t, "inet")
	up, far := "fvup"+nettest.Suffix()[:6], "fvfar"+nettest.Suffix()[:6]
	h.NS.MustExec(t, "ip", "link", "add", up, "type", "veth", "peer", "name", far)
	h.NS.MustExec(t, "ip", "link", "set", far, "netns", inet.Name)
	h.NS.MustExec(t, "ip", "addr", "add", "203.0.113.2/24", "dev", up)
	h.NS.MustExec(t, "ip", "link", "set", up, "up")
	h.NS.MustExec(t, "ip", "route", "add", "default", "via", "203.0.113.1")
	inet.MustExec(t, "ip", "addr", "add", "203.0.113.1/24", "dev", far)
	inet.MustExec(t, "ip", "link", "set", far, "up")

	seen := make(chan string, 16)
	var l net.Listener
	if err := inet.NetNS().Do(func() error {
		var err error
		l, err = net.Listen("tcp4", ":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Write([]byte("ok"))
			c.Close()
		}
	}()

	natNet, err := h.M.CreateNetwork(ctx, network.Network{Name: "natted", Subnet: "10.96.0.0/24", NAT: true})
	if err != nil {
		t.Fatal(err)
	}
	closed, err := h.M.CreateNetwork(ctx, network.Network{Name: "closed", Subnet: "10.96.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := h.Plug(t, natNet, "na", "10.96.0.10")
	b, _ := h.Plug(t, closed, "nb", "10.96.1.10")
	nettest.Eventually(t, 30*time.Second, "NAT network reaches the internet namespace", func() bool {
		return a.NS.TCP("203.0.113.1", "80", 3*time.Second)
	})
	if src := <-seen; src != "203.0.113.2" {
		t.Errorf("internet saw source %s, want the uplink address 203.0.113.2 (masquerade)", src)
	}
	if b.NS.TCP("203.0.113.1", "80", 2*time.Second) {
		t.Error("a network without NAT reached the uplink")
	}
	if got := strings.TrimSpace(h.NS.MustExec(t, "cat", "/proc/sys/net/ipv4/ip_forward")); got != "0" {
		t.Errorf("global ip_forward = %s in the host namespace, want 0", got)
	}
	for _, dev := range []string{natNet.BridgeName, up} {
		if got := strings.TrimSpace(h.NS.MustExec(t, "cat", "/proc/sys/net/ipv4/conf/"+dev+"/forwarding")); got != "1" {
			t.Errorf("forwarding on %s = %s, want 1", dev, got)
		}
	}
	if rs := h.Ruleset(t); !strings.Contains(rs, "masquerade") || !strings.Contains(rs, "10.96.0.0/24") {
		t.Errorf("nat table lacks the masquerade rule:\n%s", rs)
	}
}
