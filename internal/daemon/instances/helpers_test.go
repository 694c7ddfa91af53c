package instances_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/image"
)

var skipVM string // why VM tests cannot run here ("" = they can)

// TestMain builds the static guest agent once; the daemon builds it into test images
// ($FINVIRT_AGENT), as a release daemon uses the finvirt-agent next to its own binary.
func TestMain(m *testing.M) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		skipVM = "qemu-system-x86_64 is not installed"
	} else if _, err := image.FindKernel(image.KernelDir()); err != nil {
		skipVM = "no guest kernel: " + err.Error()
	} else if _, err := os.Stat("/bin/busybox"); err != nil {
		skipVM = "busybox-static is not installed (/bin/busybox)"
	}
	dir, err := os.MkdirTemp("", "fvi-agent")
	if err != nil {
		panic(err)
	}
	_, file, _, _ := runtime.Caller(0)
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(dir, "finvirt-agent"), "./cmd/finvirt-agent")
	build.Dir = filepath.Join(filepath.Dir(file), "..", "..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build finvirt-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Setenv("FINVIRT_AGENT", filepath.Join(dir, "finvirt-agent"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needVM(t *testing.T) {
	t.Helper()
	if skipVM != "" {
		t.Skip(skipVM)
	}
}

// stateDir is a short state dir (unix socket paths are limited to 108 bytes) whose QEMUs are
// SIGKILLed at cleanup even when the test failed half-way: the daemon leaves VMs running by
// design.
func stateDir(t *testing.T) string { return benchStateDir(t) }

func benchStateDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "fvi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killUnder(dir)
		os.RemoveAll(dir)
	})
	return dir
}

func killUnder(dir string) {
	for range 50 {
		pids := qemuPids(dir)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// qemuPids lists the processes whose command line names a path under dir.
func qemuPids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(b), dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func start(t *testing.T, state string) *dt.Daemon { return startB(t, state) }

func startB(t testing.TB, state string) *dt.Daemon {
	t.Helper()
	return dt.Start(t, func(c *daemon.Config) { c.StateDir = state })
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// buildImage builds the busybox appliance through the API.
func buildImage(t *testing.T, c *client.Client, name string) api.Image {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	op, err := c.BuildImage(ctx, api.ImagesPost{Name: name, Binaries: []string{"/bin/busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatal(err)
	}
	im, err := c.GetImage(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// launch creates and boots an instance and waits for the agent (60 s boot deadline, more
// under load: another engineer's QEMU tests share the 2 cores).
func launch(t *testing.T, c *client.Client, project string, req api.InstancesPost) api.Instance {
	t.Helper()
	if req.VCPUs == 0 {
		req.VCPUs = 1
	}
	if req.Memory == 0 {
		req.Memory = 192 << 20
	}
	ctx := ctxT(t, 150*time.Second)
	op, err := c.CreateInstance(ctx, project, req)
	if err != nil {
		t.Fatalf("launch %s: %v", req.Name, err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatalf("launch %s: %v", req.Name, err)
	}
	in, err := c.GetInstance(ctx, project, req.Name)
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != api.InstanceRunning || !in.AgentReady || in.PID == 0 {
		t.Fatalf("after launch: %+v", in)
	}
	return in
}

func state(t *testing.T, c *client.Client, project, name, action string) {
	t.Helper()
	ctx := ctxT(t, 150*time.Second)
	op, err := c.SetInstanceState(ctx, project, name, api.InstanceStatePut{Action: action})
	if err != nil {
		t.Fatalf("%s %s: %v", action, name, err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatalf("%s %s: %v", action, name, err)
	}
}

func execIn(t *testing.T, c *client.Client, project, name string, argv ...string) api.InstanceExecResult {
	t.Helper()
	res, err := c.Exec(ctxT(t, 60*time.Second), project, name, api.InstanceExecPost{Command: argv})
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	return res
}

// waitFor polls the instance until cond holds.
func waitFor(t *testing.T, c *client.Client, project, name string, d time.Duration, what string, cond func(api.Instance) bool) api.Instance {
	t.Helper()
	deadline := time.Now().Add(d)
	var in api.Instance
	for time.Now().Before(deadline) {
		var err error
		in, err = c.GetInstance(context.Background(), project, name)
		if err == nil && cond(in) {
			return in
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/%s: not %s within %s: %+v", project, name, what, d, in)
	return in
}

func wantStatus(t *testing.T, err error, status int, contains string) {
	t.Helper()
	if client.StatusOf(err) != status {
		t.Fatalf("got %v (status %d), want %d", err, client.StatusOf(err), status)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

// cleanupInstances force-deletes every instance so no QEMU outlives the test.
func cleanupInstances(t *testing.T, c *client.Client, projects ...string) {
	t.Cleanup(func() {
		for _, p := range projects {
			list, _ := c.ListInstances(context.Background(), p)
			for _, in := range list {
				c.DeleteInstance(context.Background(), p, in.Name, true)
			}
		}
	})
}
