package instances_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/daemon/networks"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestInstanceNICs wires an instance to a project network at the spec level (the guest is not
// started; TestGuestNetworkIsolation boots guests on NICs): the daemon's network subsystem
// works in a test namespace. Checked: the instance record lists the NIC (tap, MAC, static
// address in the subnet), the VM definition has the tap, MAC and the namespace that holds the
// tap, the tap exists on the network's bridge in the namespace, another project's network is
// refused, and deleting the instance removes the tap.
func TestInstanceNICs(t *testing.T) {
	td, ns, sd, prefix := startInNetNS(t, "ni")
	c := td.Local
	ctx := ctxT(t, 3*time.Minute)
	cleanupInstances(t, c, "default", "other")
	td.MustProject(t, "other", false)
	if _, err := c.CreateNetwork(ctx, "default", api.NetworksPost{Name: "payments", Subnet: "10.77.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	buildImage(t, c, "busy")
	no := false
	post := api.InstancesPost{Name: "vm", Image: "busy", VCPUs: 1, Memory: 192 << 20, Networks: []string{"payments"}, Start: &no}

	// Another project's network is not found; the failed launch leaves nothing.
	op, err := c.CreateInstance(ctx, "other", post)
	if err == nil {
		_, err = c.WaitOperation(ctx, op.ID, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "payments") {
		t.Fatalf("launch on another project's network: %v", err)
	}
	if l, _ := c.ListInstances(ctx, "other"); len(l) != 0 {
		t.Fatalf("failed launch left %+v", l)
	}

	op, err = c.CreateInstance(ctx, "default", post)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatal(err)
	}
	in, err := c.GetInstance(ctx, "default", "vm")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.NICs) != 1 || in.NICs[0].Tap == "" || in.NICs[0].MAC == "" || !strings.HasPrefix(in.NICs[0].Address, "10.77.1.") || !strings.HasSuffix(in.NICs[0].Address, "/24") || in.NICs[0].ID != in.ID+".0" {
		t.Fatalf("instance NICs: %+v", in.NICs)
	}
	nic := in.NICs[0]
	b, err := os.ReadFile(filepath.Join(sd, "instances", in.ID, "spec.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec compute.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if len(spec.NICs) != 1 || spec.NICs[0].Tap != nic.Tap || spec.NICs[0].MAC != nic.MAC || spec.NICs[0].NetNS != ns.Path() {
		t.Fatalf("VM spec NICs %+v, want tap %s mac %s", spec.NICs, nic.Tap, nic.MAC)
	}
	link := ns.MustExec(t, "ip", "-o", "link", "show", nic.Tap)
	if !strings.Contains(link, "master "+prefix+"br") {
		t.Fatalf("tap %s not on the network's bridge: %s", nic.Tap, link)
	}
	if err := c.DeleteInstance(ctx, "default", "vm", true); err != nil {
		t.Fatal(err)
	}
	if out := ns.MustExec(t, "ip", "-o", "link", "show"); strings.Contains(out, nic.Tap+":") || strings.Contains(out, nic.Tap+"@") {
		t.Fatalf("tap %s left after delete: %s", nic.Tap, out)
	}
}

// startInNetNS starts a daemon (needs a VM host and root) whose network subsystem works in a
// fresh test namespace named after tag, with a unique network prefix.
func startInNetNS(t *testing.T, tag string) (td *dt.Daemon, ns nettest.NS, sd, prefix string) {
	t.Helper()
	needVM(t)
	nettest.RequireRoot(t)
	ns = nettest.NewNS(t, tag)
	prefix = tag[:1] + nettest.Suffix()[:3]
	t.Cleanup(networks.UseNetNS(prefix, ns.Path()))
	sd = stateDir(t)
	td = dt.Start(t, func(c *daemon.Config) { c.StateDir = sd; c.NetworkPrefix = prefix })
	return td, ns, sd, prefix
}
