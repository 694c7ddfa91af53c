package vmtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/image"
)

// TestFullImage builds a Debian root disk (debootstrap, ~1-2 min plus a ~25 s systemd boot under
// TCG), boots it through the agent initramfs (switch root), and talks to the agent running as a
// systemd service. Soak only: FINVIRT_SOAK=1.
func TestFullImage(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("slow (debootstrap + systemd boot): set FINVIRT_SOAK=1")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap not installed")
	}
	setup(t)
	ctx := testCtx(t, 15*time.Minute)
	name := "full-" + strings.ToLower(filepath.Base(t.TempDir()))
	var last string
	im, err := store.BuildFull(ctx, name, image.FullSpec{Agent: filepath.Join(workDir, "finvirt-agent"), DiskMB: 1024},
		func(p int, m string) { last = m })
	if err != nil {
		t.Fatalf("BuildFull (at %q): %v", last, err)
	}
	t.Cleanup(func() { store.Delete(name) })
	t.Logf("full image built in %.1fs, disk %d MiB", im.BuildSeconds, im.Disk.Size>>20)
	dir := t.TempDir()
	overlay := filepath.Join(dir, "root.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", im.DiskPath(), overlay).CombinedOutput(); err != nil {
		t.Fatalf("overlay: %v %s", err, out)
	}
	initrd := filepath.Join(dir, "initrd")
	if err := image.WriteInstanceInitrd(im.InitrdPath(), agent.Config{Hostname: "full-test"}, initrd); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(VMOptions{Kernel: im.VmlinuxPath(), Initrd: initrd, Agent: true, MemoryMB: 512,
		Cmdline: image.FullCmdline,
		Extra:   []string{"-drive", "file=" + overlay + ",if=none,id=root,format=qcow2", "-device", "virtio-blk-device,drive=root"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", vm.Console())
		}
	})
	dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := agent.Dial(dctx, vm.AgentSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("agent ready %.1fs after QEMU start", time.Since(vm.Started).Seconds())
	h, err := c.Ping(ctx)
	if err != nil || h.PID1 {
		t.Fatalf("health %+v %v: want the agent as a service, not PID 1", h, err)
	}
	var out bytes.Buffer
	if code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"cat", "/etc/debian_version"}, Stdout: &out}); err != nil || code != 0 || !strings.HasPrefix(out.String(), "12") {
		t.Fatalf("debian_version %q %d %v", out.String(), code, err)
	}
	out.Reset()
	if code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"readlink", "/proc/1/exe"}, Stdout: &out}); err != nil || code != 0 || !strings.Contains(out.String(), "systemd") {
		t.Fatalf("PID 1 is %q (%d %v), want systemd", out.String(), code, err)
	}
	if err := c.Shutdown(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(3 * time.Minute); err != nil {
		t.Fatal(err)
	}
}
