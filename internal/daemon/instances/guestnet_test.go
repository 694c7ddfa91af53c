package instances_test

import (
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
)

// TestGuestNetworkIsolation boots three appliances on real guest NICs: pay1 and pay2 on
// network payments, clm1 on network claims, whose only way into payments is the pay-api ACL
// (tcp/8080 from network claims). From inside the guests (busybox ping and nc to busybox httpd over
// virtio-net): inside payments everything passes; from claims only tcp/8080 reaches pay2,
// ping and tcp/9090 do not; nothing from payments reaches claims. The network subsystem works
// in a test namespace, so the QEMU driver opens each tap there and QEMU inherits the fd.
func TestGuestNetworkIsolation(t *testing.T) {
	td, _, _, _ := startInNetNS(t, "gn")
	c := td.Local
	ctx := ctxT(t, 6*time.Minute)
	cleanupInstances(t, c, "default")

	if _, err := c.CreateNetwork(ctx, "default", api.NetworksPost{Name: "claims", Subnet: "10.79.2.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNetworkACL(ctx, "default", api.NetworkACLsPost{Name: "pay-api", Rules: []api.NetworkACLRule{
		{Direction: "ingress", Protocol: "tcp", Ports: []string{"8080"}, Networks: []string{"claims"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateNetwork(ctx, "default", api.NetworksPost{Name: "payments", Subnet: "10.79.1.0/24", ACLs: []string{"pay-api"}}); err != nil {
		t.Fatal(err)
	}
	buildImage(t, c, "busy")
	addr := map[string]string{}
	// pay2's workload serves tcp/8080 (the API the ACL opens) and tcp/9090 (not opened).
	const serve = "for p in 8080 9090; do mkdir -p /tmp/w$p && echo served-$p > /tmp/w$p/index.html; done; " +
		"/bin/busybox httpd -f -p 8080 -h /tmp/w8080 & exec /bin/busybox httpd -f -p 9090 -h /tmp/w9090"
	for _, vm := range []struct{ name, net, cmd string }{{"pay1", "payments", ""}, {"pay2", "payments", serve}, {"clm1", "claims", ""}} {
		in := launch(t, c, "", api.InstancesPost{Name: vm.name, Image: "busy", Networks: []string{vm.net}, Command: vm.cmd})
		if len(in.NICs) != 1 || in.NICs[0].Address == "" {
			t.Fatalf("%s NICs: %+v", vm.name, in.NICs)
		}
		addr[vm.name], _, _ = strings.Cut(in.NICs[0].Address, "/")
	}
	sh := func(vm, script string) api.InstanceExecResult {
		t.Helper()
		return execIn(t, c, "", vm, "/bin/busybox", "sh", "-c", script)
	}
	ping := func(from, to string) bool {
		t.Helper()
		return sh(from, "/bin/busybox ping -c 2 -W 2 "+addr[to]).ExitCode == 0
	}
	get := func(from, to, port string) bool {
		t.Helper()
		// nc, not wget: the static busybox's wget looks up the "http" service through NSS,
		// which a static binary cannot load.
		res := sh(from, "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 4 "+addr[to]+" "+port)
		return strings.Contains(string(res.Stdout), "served-"+port)
	}
	// The first packets also settle ARP; give a slow TCG guest one retry to bring its NIC up.
	if !ping("pay1", "pay2") && !ping("pay1", "pay2") {
		t.Fatal("pay1 cannot ping pay2 on the same network")
	}
	cases := []struct {
		what string
		ok   bool
		got  func() bool
	}{
		{"pay1 -> pay2 tcp/9090 (same network)", true, func() bool { return get("pay1", "pay2", "9090") }},
		{"pay1 -> pay2 tcp/8080 (same network)", true, func() bool { return get("pay1", "pay2", "8080") }},
		{"clm1 -> pay2 tcp/8080 (pay-api ACL)", true, func() bool { return get("clm1", "pay2", "8080") }},
		{"clm1 -> pay2 tcp/9090 (no rule)", false, func() bool { return get("clm1", "pay2", "9090") }},
		{"clm1 -> pay2 ping (no rule)", false, func() bool { return ping("clm1", "pay2") }},
		{"pay1 -> clm1 ping (claims admits nothing)", false, func() bool { return ping("pay1", "clm1") }},
	}
	for _, tc := range cases {
		if got := tc.got(); got != tc.ok {
			t.Errorf("%s: reachable=%v, want %v", tc.what, got, tc.ok)
		}
	}
	// The verdicts are the firewall's: the ACL rule counted the allowed connection.
	acl, err := c.GetNetworkACL(ctx, "default", "pay-api")
	if err != nil {
		t.Fatal(err)
	}
	if len(acl.Rules) != 1 || acl.Rules[0].Packets == 0 {
		t.Errorf("pay-api rule counters after an allowed connection: %+v", acl.Rules)
	}
}
