package instances_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
)

// TestFullInstance: a full-OS guest end to end through the daemon — build a Debian image with
// debootstrap (`finvirt image build --debootstrap bookworm`), launch it (q35 + OVMF, systemd,
// the agent as a service), exec in it through the agent, stop it gracefully, delete it.
// Soak only: debootstrap takes ~1-2 min and a systemd boot ~25 s under TCG.
func TestFullInstance(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("slow (debootstrap + systemd boot under TCG): set FINVIRT_SOAK=1")
	}
	needVM(t)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap not installed (scripts/setup.sh installs it)")
	}
	td := start(t, stateDir(t))
	c := td.Local
	ctx := ctxT(t, 20*time.Minute)
	cleanupInstances(t, c, "default")
	op, err := c.BuildImage(ctx, api.ImagesPost{Name: "deb", Kind: api.ImageFull, Debootstrap: "bookworm", DiskMB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatalf("full image build: %v", err)
	}
	im, err := c.GetImage(ctx, "deb")
	if err != nil || im.Kind != api.ImageFull {
		t.Fatalf("image: %+v %v", im, err)
	}
	t.Logf("full image built in %.1fs", im.BuildSeconds)
	t0 := time.Now()
	op, err = c.CreateInstance(ctx, "", api.InstancesPost{Name: "os1", Image: "deb", VCPUs: 1, Memory: 512 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatalf("launch full instance: %v", err)
	}
	in, err := c.GetInstance(ctx, "", "os1")
	if err != nil || in.Status != api.InstanceRunning || !in.AgentReady {
		t.Fatalf("after launch: %+v %v", in, err)
	}
	t.Logf("full instance launched to agent ready in %s", time.Since(t0).Round(time.Millisecond))
	res := execIn(t, c, "", "os1", "cat", "/etc/debian_version")
	if res.ExitCode != 0 || !strings.HasPrefix(strings.TrimSpace(string(res.Stdout)), "12") {
		t.Fatalf("/etc/debian_version in the guest: %d %q %s", res.ExitCode, res.Stdout, res.Stderr)
	}
	res = execIn(t, c, "", "os1", "systemctl", "is-system-running")
	t.Logf("systemd state: %s", strings.TrimSpace(string(res.Stdout)))
	if s := strings.TrimSpace(string(res.Stdout)); s != "running" && s != "degraded" && s != "starting" {
		t.Fatalf("systemd in the guest: %q %s", s, res.Stderr)
	}
	state(t, c, "", "os1", "stop")
	if err := c.DeleteInstance(ctx, "", "os1", false); err != nil {
		t.Fatal(err)
	}
}
