package networks_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/daemon/networks"
	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// env is one test's "host": a network namespace of its own, a unique prefix (links and
// nft tables) bound to it, and a state dir that survives daemon restarts.
type env struct {
	host     nettest.NS
	prefix   string
	stateDir string
	td       *dt.Daemon
}

func newEnv(t *testing.T) *env {
	t.Helper()
	nettest.RequireRoot(t)
	for _, b := range []string{"nft", "busybox"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s", b)
		}
	}
	e := &env{host: nettest.NewNS(t, "nh"), prefix: "q" + nettest.Suffix()[:3], stateDir: t.TempDir()}
	t.Cleanup(networks.UseNetNS(e.prefix, e.host.Path()))
	e.start(t)
	return e
}

// start (re)starts the daemon on the same state dir, prefix and namespace.
func (e *env) start(t *testing.T) {
	t.Helper()
	e.td = dt.Start(t, func(c *daemon.Config) { c.NetworkPrefix = e.prefix; c.StateDir = e.stateDir })
}

func (e *env) c() *client.Client { return e.td.Local }

var counterRE = regexp.MustCompile(`packets \d+ bytes \d+`)

// ruleset is `nft list ruleset` of the host namespace with counter values blanked (traffic
// changes them, not the rules).
func (e *env) ruleset(t *testing.T) string {
	t.Helper()
	return counterRE.ReplaceAllString(e.host.MustExec(t, "nft", "list", "ruleset"), "packets N bytes N")
}

// links lists "name master" of the host namespace, sorted by name.
func (e *env) links(t *testing.T) string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(e.host.MustExec(t, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		master := ""
		for i := range f {
			if f[i] == "master" && i+1 < len(f) {
				master = f[i+1]
			}
		}
		out = append(out, name+" "+master)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func (e *env) projects(t *testing.T, names ...string) {
	t.Helper()
	for _, p := range names {
		e.td.MustProject(t, p, p == "bank")
	}
}

func (e *env) mustNetwork(t *testing.T, project string, req api.NetworksPost) api.Network {
	t.Helper()
	n, err := e.c().CreateNetwork(context.Background(), project, req)
	if err != nil {
		t.Fatalf("create network %s: %v", req.Name, err)
	}
	return n
}

// plug creates an endpoint namespace (a stand-in for a VM) and attaches its veth end as a
// NIC through the subsystem's Go API, with a static address (ip "" : IPAM picks one and
// the endpoint stays unconfigured, for DHCP).
func (e *env) plug(t *testing.T, project, net, id, ip string) *nettest.Endpoint {
	t.Helper()
	n, err := e.c().GetNetwork(context.Background(), project, net)
	if err != nil {
		t.Fatal(err)
	}
	bits := strings.Split(n.Subnet, "/")[1]
	mac := network.DeriveMAC(net, "vm-"+id, id)
	cidr := ""
	if ip != "" {
		cidr = fmt.Sprintf("%s/%s", ip, bits)
	}
	ep := nettest.NewEndpoint(t, e.host, id, mac, cidr, n.Gateway)
	if _, err := networks.AttachNIC(context.Background(), e.td.D, project, network.NIC{ID: id, Instance: "vm-" + id,
		Network: net, MAC: mac.String(), IP: ip, HostLink: ep.HostLink}); err != nil {
		t.Fatalf("attach %s: %v", id, err)
	}
	return ep
}
