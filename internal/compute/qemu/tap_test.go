package qemu

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestOpenTap: a tap that exists only in another network namespace is opened from outside it
// (its carrier comes up while the file is open); an unknown name or a device that is not a
// tap is refused without creating anything.
func TestOpenTap(t *testing.T) {
	nettest.RequireRoot(t)
	ns := nettest.NewNS(t, "tp")
	ns.MustExec(t, "ip", "tuntap", "add", "dev", "fvtap0", "mode", "tap", "vnet_hdr")
	ns.MustExec(t, "ip", "link", "set", "fvtap0", "up")
	ns.MustExec(t, "ip", "link", "add", "fvbr0", "type", "bridge")
	f, err := openTap(ns.Path(), "fvtap0")
	if err != nil {
		t.Fatal(err)
	}
	if out := ns.MustExec(t, "ip", "link", "show", "fvtap0"); strings.Contains(out, "NO-CARRIER") {
		t.Errorf("open tap has no carrier: %s", out)
	}
	f.Close()
	if out := ns.MustExec(t, "ip", "link", "show", "fvtap0"); !strings.Contains(out, "NO-CARRIER") {
		t.Errorf("closed tap still has carrier: %s", out)
	}
	for _, bad := range []struct{ name, want string }{
		{"fvnope0", "does not exist"},
		{"fvbr0", "not a tap"},
	} {
		if _, err := openTap(ns.Path(), bad.name); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("openTap %s: %v, want %q", bad.name, err, bad.want)
		}
	}
	if out, _ := exec.Command("ip", "netns", "exec", ns.Name, "ip", "-o", "link").CombinedOutput(); strings.Contains(string(out), "fvnope0") {
		t.Errorf("refused open created a device: %s", out)
	}
	if _, err := os.Stat("/sys/class/net/fvtap0"); err == nil {
		t.Errorf("the tap leaked into the test process's namespace")
	}
}
