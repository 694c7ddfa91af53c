package qemu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/image"
)

// TestAgentAppliance boots a real appliance image (internal/image, with cmd/finvirt-agent as
// /init) through the driver, execs a command through agent.Dial on the driver's agent socket,
// and stops the guest with the agent shutdown callback, the way the daemon glues the layers.
func TestAgentAppliance(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed")
	}
	if _, err := image.FindKernel(image.KernelDir()); err != nil {
		t.Skip(err)
	}
	tmp := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	agentBin := filepath.Join(tmp, "finvirt-agent")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", agentBin, "./cmd/finvirt-agent")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	store, err := image.OpenStore(filepath.Join(tmp, "images"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 4*time.Minute)
	im, err := store.BuildAppliance(ctx, "agent-test", image.ApplianceSpec{Agent: agentBin, Binaries: []string{"/bin/busybox"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(tmp, "instance.initrd")
	if err := image.WriteInstanceInitrd(im.InitrdPath(), agent.Config{Hostname: "drv-agent"}, initrd); err != nil {
		t.Fatal(err)
	}

	dir := stateDir(t)
	d := newDriver(t, dir)
	spec := compute.Spec{Name: "agent", Profile: compute.ProfileAppliance, VCPUs: 1, MemoryMiB: 256,
		Kernel: im.VmlinuxPath(), Initrd: initrd, Cmdline: "mitigations=off nokaslr panic=-1"}
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, "agent"); err != nil {
		t.Fatal(err)
	}
	info, err := d.Info(ctx, "agent")
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.Dial(ctx, info.AgentSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/busybox", "hostname"}, Stdout: &out})
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "drv-agent" {
		t.Fatalf("exec hostname = %d %q, %v", code, out.String(), err)
	}
	err = d.Stop(ctx, "agent", compute.StopOptions{
		AgentShutdown: func(ctx context.Context) error { return c.Shutdown(ctx, 10*time.Second) },
		Timeout:       60 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := d.State(ctx, "agent"); st.State != compute.StateStopped || !strings.Contains(st.Reason, "agent") {
		t.Fatalf("after agent stop: %+v", st)
	}
}
