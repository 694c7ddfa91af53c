package bridge_test

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// TestQEMUOpensTap: the tap AttachNIC creates is what QEMU's
// -netdev tap,ifname=...,script=no,downscript=no opens (no kernel is booted: -S keeps the
// guest paused; opening the tap brings its carrier up).
func TestQEMUOpensTap(t *testing.T) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("needs qemu-system-x86_64")
	}
	h := nettest.NewHost(t)
	ctx := context.Background()
	if _, err := h.M.CreateNetwork(ctx, network.Network{Name: "vm", Subnet: "10.86.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	nic, err := h.M.AttachNIC(ctx, network.NIC{ID: "vm1-eth0", Instance: "vm1", Network: "vm"})
	if err != nil {
		t.Fatal(err)
	}
	if out := h.NS.MustExec(t, "ip", "link", "show", nic.Device); !strings.Contains(out, "NO-CARRIER") {
		t.Errorf("tap should have no carrier before QEMU opens it: %s", out)
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS.Name, qemu, "-M", "microvm", "-accel", "tcg", "-m", "64",
		"-nodefaults", "-no-user-config", "-display", "none", "-S",
		"-netdev", "tap,id=n0,ifname="+nic.Device+",script=no,downscript=no,vhost=off",
		"-device", "virtio-net-device,netdev=n0,mac="+nic.MAC)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("qemu exited: %v\n%s", err, out.String())
		default:
		}
		link := h.NS.MustExec(t, "ip", "link", "show", nic.Device)
		if strings.Contains(link, "LOWER_UP") && !strings.Contains(link, "NO-CARRIER") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tap never got a carrier with QEMU attached:\n%s\nqemu: %s", link, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
