package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"golang.org/x/sys/unix"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestAppliance boots one appliance and exercises every agent operation against the real guest
// kernel, finishing with a shutdown that must end QEMU by itself.
func TestAppliance(t *testing.T) {
	cfg := agent.Config{
		Hostname: "appl-test",
		Workloads: []agent.Workload{
			{Name: "flaky", Command: "/bin/busybox", Args: []string{"sh", "-c", "echo flaky-run; exit 3"}, Restart: agent.RestartOnFailure, BackoffMS: 200},
			{Name: "server", Command: "/bin/busybox", Args: []string{"sleep", "3600"}},
		},
	}
	vm, c := bootAppliance(t, cfg)
	ctx := testCtx(t, 4*time.Minute)
	parent := t

	t.Run("ping", func(t *testing.T) {
		h, err := c.Ping(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !h.PID1 || h.Hostname != "appl-test" || h.Kernel != appliance.KernelVersion {
			t.Fatalf("health %+v: want pid1, hostname appl-test, kernel %s", h, appliance.KernelVersion)
		}
	})
	t.Run("guest kernel", func(t *testing.T) {
		var out bytes.Buffer
		code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"cat", "/proc/version"}, Stdout: &out})
		if err != nil || code != 0 {
			t.Fatalf("exec: %d %v", code, err)
		}
		if !strings.Contains(out.String(), appliance.KernelVersion) {
			t.Fatalf("/proc/version %q does not name the guest kernel %s", out.String(), appliance.KernelVersion)
		}
		var u unix.Utsname
		unix.Uname(&u)
		if host := unix.ByteSliceToString(u.Release[:]); host == appliance.KernelVersion {
			t.Logf("host runs the guest kernel version too (%s): the check cannot tell them apart", host)
		} else if strings.Contains(out.String(), host) {
			t.Fatalf("/proc/version %q names the host kernel %s", out.String(), host)
		}
	})
	t.Run("exit codes", func(t *testing.T) {
		for _, tc := range []struct {
			script string
			code   int
		}{{"exit 0", 0}, {"exit 7", 7}, {"kill -9 $$", 137}} {
			code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", tc.script}})
			if err != nil || code != tc.code {
				t.Fatalf("%q: code %d err %v, want %d", tc.script, code, err, tc.code)
			}
		}
	})
	t.Run("stdin and concurrent execs", func(t *testing.T) {
		payload := bytes.Repeat([]byte("finvirt stdin line\n"), 20000) // ~380 KiB
		errs := make(chan error, 3)
		for i := 0; i < 3; i++ {
			go func() {
				var out bytes.Buffer
				code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sha256sum"}, Stdin: bytes.NewReader(payload), Stdout: &out})
				if err == nil && code != 0 {
					err = errorf("sha256sum exit %d", code)
				}
				sum := sha256.Sum256(payload)
				if err == nil && !strings.HasPrefix(out.String(), hexs(sum[:])) {
					err = errorf("guest sha256 %q, want %x", out.String(), sum)
				}
				errs <- err
			}()
		}
		for i := 0; i < 3; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("push pull", func(t *testing.T) {
		data := make([]byte, 512*1024+7)
		rand.Read(data)
		if _, err := c.Push(ctx, bytes.NewReader(data), "/tmp/blob", 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"stat", "-c", "%a %s", "/tmp/blob"}, Stdout: &out}); err != nil || code != 0 {
			t.Fatalf("stat: %d %v", code, err)
		}
		if got := strings.TrimSpace(out.String()); got != "600 524295" {
			t.Fatalf("guest sees %q, want mode 600 size 524295", got)
		}
		var back bytes.Buffer
		if _, err := c.Pull(ctx, "/tmp/blob", &back); err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(back.Bytes()) != sha256.Sum256(data) {
			t.Fatal("pulled file differs from pushed file")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		m, err := c.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// -m 256: the kernel reports a little less than 256 MiB.
		if m.MemTotal < 150<<20 || m.MemTotal > 256<<20 || m.MemAvailable == 0 || m.MemAvailable > m.MemTotal {
			t.Fatalf("memory %d/%d implausible for -m 256", m.MemAvailable, m.MemTotal)
		}
		if m.CPUs != 1 || m.CPUTotal == 0 || m.UptimeSec <= 0 {
			t.Fatalf("cpu/uptime implausible: %+v", m)
		}
		found := false
		for _, p := range m.Processes {
			if p.Name == "server" && p.RSSBytes > 0 {
				found = true
			}
		}
		if !found {
			t.Fatalf("no RSS sample for workload server: %+v", m.Processes)
		}
	})
	t.Run("workload restarted on failure", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			ws, err := c.Workloads(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ws[0].Name == "flaky" && ws[0].Restarts >= 2 && ws[0].LastExit == 3 && ws[1].State == "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("flaky was not restarted: %+v", ws)
			}
			time.Sleep(200 * time.Millisecond)
		}
		logs, err := c.WorkloadLogs(ctx, "flaky")
		if err != nil || strings.Count(logs, "flaky-run") < 2 {
			t.Fatalf("logs %q %v", logs, err)
		}
	})
	t.Run("reconnect", func(t *testing.T) {
		// Disconnect in the middle of a running exec, then connect again as a restarted
		// daemon would: the agent must serve the new connection.
		go c.Exec(context.Background(), agent.ExecRequest{Argv: []string{"sh", "-c", "yes finvirt | head -c 2000000"}, Stdout: &bytes.Buffer{}})
		time.Sleep(300 * time.Millisecond)
		c.Close()
		for i := 0; i < 2; i++ {
			c2, err := agent.Dial(ctx, vm.AgentSock)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code, err := c2.Exec(ctx, agent.ExecRequest{Argv: []string{"echo", "back"}, Stdout: &out})
			if err != nil || code != 0 || out.String() != "back\n" {
				t.Fatalf("after reconnect %d: %d %q %v", i, code, out.String(), err)
			}
			if i == 0 {
				c2.Close()
			} else {
				c = c2
				parent.Cleanup(func() { c2.Close() }) // not t: the shutdown subtest uses it
			}
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		if err := c.Shutdown(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := vm.WaitExit(90 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
}
