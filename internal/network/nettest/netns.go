// Package nettest holds the test helpers (namespaces, veth endpoints, probes) and the
// conformance suite every network driver runs. Tests build a whole "host" inside a network
// namespace of their own, so nothing they do reaches the real host's links or ruleset.
package nettest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
)

// Suffix returns a random hex suffix for host-global names.
func Suffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// RequireRoot skips the test unless it runs as root with ip(8) available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, netlink, nftables)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) from iproute2 to build test namespaces")
	}
}

// Run runs a command and fails the test on error.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NS is a test network namespace.
type NS struct {
	Name string
}

// Path is the namespace's bind mount, for network.NetNS.
func (n NS) Path() string { return "/run/netns/" + n.Name }

// NetNS is the namespace as the product sees it.
func (n NS) NetNS() network.NetNS { return network.NetNS{Path: n.Path()} }

// Exec runs a command inside the namespace.
func (n NS) Exec(args ...string) ([]byte, error) {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...).CombinedOutput()
}

// MustExec runs a command inside the namespace and fails the test on error.
func (n NS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Exec(args...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewNS creates a namespace with a unique name (lo up), removed in t.Cleanup.
func NewNS(t testing.TB, tag string) NS {
	t.Helper()
	n := NS{Name: "fvt-" + tag + "-" + Suffix()}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", n.Name).Run() })
	n.MustExec(t, "ip", "link", "set", "lo", "up")
	return n
}

// Endpoint is a namespace standing in for a VM: eth0 inside, HostLink in the host netns.
type Endpoint struct {
	NS       NS
	HostLink string
	MAC      net.HardwareAddr
	IP       string
	Gateway  string
}

// NewEndpoint creates a namespace whose eth0 is one end of a veth pair; the other end
// (HostLink) lives in host. mac, ip ("10.0.0.5/24") and gw are configured on eth0; an
// empty ip leaves the interface unconfigured (DHCP tests).
func NewEndpoint(t testing.TB, host NS, tag string, mac net.HardwareAddr, ipCIDR, gw string) *Endpoint {
	t.Helper()
	ep := &Endpoint{NS: NewNS(t, tag), HostLink: "fvh" + Suffix()[:6], MAC: mac, Gateway: gw}
	peer := "fvp" + Suffix()[:6]
	host.MustExec(t, "ip", "link", "add", ep.HostLink, "type", "veth", "peer", "name", peer)
	host.MustExec(t, "ip", "link", "set", peer, "netns", ep.NS.Name)
	ep.NS.MustExec(t, "ip", "link", "set", peer, "name", "eth0")
	if mac != nil {
		ep.NS.MustExec(t, "ip", "link", "set", "eth0", "address", mac.String())
	}
	ep.NS.MustExec(t, "ip", "link", "set", "eth0", "up")
	if ipCIDR != "" {
		ep.NS.MustExec(t, "ip", "addr", "add", ipCIDR, "dev", "eth0")
		ep.IP = strings.Split(ipCIDR, "/")[0]
		if gw != "" {
			ep.NS.MustExec(t, "ip", "route", "add", "default", "via", gw)
		}
	}
	return ep
}

// Ping sends count ICMP echoes (busybox ping) and reports whether any reply came.
func (n NS) Ping(dst string, count int) bool {
	out, err := n.Exec("busybox", "ping", "-c", fmt.Sprint(count), "-W", "2", dst)
	return err == nil && strings.Contains(string(out), "bytes from")
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
