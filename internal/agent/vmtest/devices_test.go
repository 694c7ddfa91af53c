package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
)

// TestVolumesNetworkPowerButton boots an appliance with a virtio disk found by serial, one NIC
// with a static address and one configured by DHCP (QEMU's user-mode network), and powers it
// off with the ACPI power button (QMP system_powerdown); data written to the volume must be on
// the disk image afterwards, so the power-off path synced and unmounted it.
func TestVolumesNetworkPowerButton(t *testing.T) {
	for _, bin := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (e2fsprogs)", bin)
		}
	}
	setup(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("from the host\n"), 0o644)
	img := filepath.Join(dir, "data.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", src, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	cfg := agent.Config{
		Hostname: "dev-test",
		NICs: []agent.NIC{
			{MAC: "52:54:00:fa:00:01", Address: "10.0.3.15/24", Gateway: "10.0.3.2"},
			{MAC: "52:54:00:fa:00:02", DHCP: true},
		},
		Volumes: []agent.Volume{{Serial: "data0", MountPoint: "/data"}},
	}
	vm, c := bootAppliance(t, cfg,
		"-drive", "file="+img+",if=none,id=vol0,format=raw",
		"-device", "virtio-blk-device,drive=vol0,serial=data0",
		"-netdev", "user,id=n0,net=10.0.3.0/24", "-device", "virtio-net-device,netdev=n0,mac=52:54:00:fa:00:01",
		"-netdev", "user,id=n1", "-device", "virtio-net-device,netdev=n1,mac=52:54:00:fa:00:02",
	)
	ctx := testCtx(t, 3*time.Minute)
	run := func(script string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", script}, Stdout: &out, Stderr: &errb})
		if err != nil || code != 0 {
			t.Fatalf("%q: code %d err %v stderr %s", script, code, err, errb.String())
		}
		return out.String()
	}
	// Volumes and NICs are configured after the agent starts serving: wait for them.
	waitFor(t, 60*time.Second, func() bool {
		return strings.Contains(run("cat /proc/mounts"), "/data ext4") && strings.Contains(run("ip -4 addr"), "10.0.2.15")
	})
	if got := run("cat /data/hello.txt"); got != "from the host\n" {
		t.Fatalf("volume content %q", got)
	}
	addrs := run("ip -4 addr")
	if !strings.Contains(addrs, "inet 10.0.3.15/24") || !strings.Contains(addrs, "inet 10.0.2.15/24") {
		t.Fatalf("addresses:\n%s", addrs)
	}
	if routes := run("ip route"); !strings.Contains(routes, "default via 10.0.3.2") {
		t.Fatalf("routes:\n%s", routes)
	}
	run("echo written-in-guest > /data/new.txt")

	// The power button: evdev + button modules turn system_powerdown into KEY_POWER.
	if reply, err := vm.QMP("system_powerdown"); err != nil || !strings.Contains(reply, "return") {
		t.Fatalf("system_powerdown: %q %v", reply, err)
	}
	if err := vm.WaitExit(90 * time.Second); err != nil {
		t.Fatalf("power button did not power off: %v", err)
	}
	out, err := exec.Command("debugfs", "-R", "cat /new.txt", img).Output()
	if err != nil || string(out) != "written-in-guest\n" {
		t.Fatalf("volume after power-off: %q %v", out, err)
	}
	if out, err := exec.Command("e2fsck", "-n", "-f", img).CombinedOutput(); err != nil {
		t.Fatalf("filesystem not clean after power-off: %v\n%s", err, out)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQ35 boots the same appliance on -M q35, where the agent port sits on virtio-serial-pci
// and the virtio PCI transport must be loaded, and powers it off with the agent.
func TestQ35(t *testing.T) {
	vm, c := bootMachine(t, "q35", agent.Config{Hostname: "q35-test"},
		"-drive", "file="+emptyDisk(t)+",if=none,id=vol0,format=raw",
		"-device", "virtio-blk-pci,drive=vol0,serial=blank0")
	ctx := testCtx(t, 2*time.Minute)
	var out bytes.Buffer
	waitFor(t, 60*time.Second, func() bool {
		out.Reset()
		code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"cat", "/sys/block/vda/serial"}, Stdout: &out})
		return err == nil && code == 0
	})
	if out.String() != "blank0" {
		t.Fatalf("virtio-blk-pci serial %q", out.String())
	}
	if err := c.Shutdown(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vm.WaitExit(90 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func emptyDisk(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
