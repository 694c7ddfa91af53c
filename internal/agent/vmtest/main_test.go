package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/image"
)

// shared state built once per test binary: the agent, the image store and one appliance.
var (
	setupOnce sync.Once
	setupErr  error
	workDir   string
	store     *image.Store
	appliance *image.Image
	skipWhy   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// buildStatic builds a Go main package as a static binary.
func buildStatic(pkg, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// setup builds the agent and the test appliance (agent + busybox-static) once.
func setup(t testing.TB) {
	t.Helper()
	setupOnce.Do(func() {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			skipWhy = "qemu-system-x86_64 not installed"
			return
		}
		if _, err := os.Stat("/bin/busybox"); err != nil {
			skipWhy = "busybox-static not installed (/bin/busybox)"
			return
		}
		if _, err := image.FindKernel(image.KernelDir()); err != nil {
			skipWhy = err.Error()
			return
		}
		workDir, setupErr = os.MkdirTemp("", "finvirt-vmtest-")
		if setupErr != nil {
			return
		}
		agentBin := filepath.Join(workDir, "finvirt-agent")
		if setupErr = buildStatic("./cmd/finvirt-agent", agentBin); setupErr != nil {
			return
		}
		store, setupErr = image.OpenStore(filepath.Join(workDir, "store"))
		if setupErr != nil {
			return
		}
		appliance, setupErr = store.BuildAppliance(context.Background(), "test-appliance",
			image.ApplianceSpec{Agent: agentBin, Binaries: []string{"/bin/busybox"}}, nil)
	})
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// bootAppliance boots the test appliance with cfg and returns the VM and a connected client.
func bootAppliance(t *testing.T, cfg agent.Config, extra ...string) (*VM, *agent.Client) {
	return bootMachine(t, "microvm", cfg, extra...)
}

func bootMachine(t *testing.T, machine string, cfg agent.Config, extra ...string) (*VM, *agent.Client) {
	t.Helper()
	setup(t)
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd")
	if err := image.WriteInstanceInitrd(appliance.InitrdPath(), cfg, initrd); err != nil {
		t.Fatal(err)
	}
	vm, err := Start(VMOptions{Kernel: appliance.VmlinuxPath(), Initrd: initrd, Machine: machine, Agent: true, QMP: true, Extra: extra}, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", vm.Console())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := agent.Dial(ctx, vm.AgentSock)
	if err != nil {
		t.Fatalf("agent did not answer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return vm, c
}
