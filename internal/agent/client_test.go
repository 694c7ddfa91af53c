package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/agent/guest"
	"github.com/finvirt/finvirt/internal/agent/proto"
)

// These tests run the real guest server in-process over a socket pair with the real client: the
// protocol, streams, flow control and reconnect logic without a VM. The same operations are
// checked inside a real guest by the QEMU tests in internal/agent/vmtest.

type pipeEnd struct{ net.Conn }

func startServer(t *testing.T) (*guest.Server, func() net.Conn) {
	t.Helper()
	procs := guest.NewProcs(false)
	sup := guest.NewSupervisor(procs, nil)
	srv := guest.NewServer(procs, sup)
	srv.Logf = t.Logf
	connect := func() net.Conn {
		a, b := net.Pipe()
		go srv.ServeConn(b)
		t.Cleanup(func() { a.Close(); b.Close() })
		return a
	}
	return srv, connect
}

func dial(t *testing.T, connect func() net.Conn) *agent.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := agent.NewClient(ctx, connect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExecInProcess(t *testing.T) {
	_, connect := startServer(t)
	c := dial(t, connect)
	ctx := ctxT(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64*1024) // 1 MiB: many frames, needs flow control
	tests := []struct {
		name     string
		req      agent.ExecRequest
		code     int
		stdout   string
		stderr   string
		checkOut func([]byte) bool
	}{
		{name: "exit code", req: agent.ExecRequest{Argv: []string{"sh", "-c", "exit 7"}}, code: 7},
		{name: "stdout and stderr", req: agent.ExecRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, stdout: "out\n", stderr: "err\n"},
		{name: "env and cwd", req: agent.ExecRequest{Argv: []string{"sh", "-c", "echo $FOO; pwd"}, Env: []string{"FOO=bar"}, Cwd: "/"}, stdout: "bar\n/\n"},
		{name: "stdin", req: agent.ExecRequest{Argv: []string{"cat"}, Stdin: strings.NewReader("hello stdin")}, stdout: "hello stdin"},
		{name: "big stdin round trip", req: agent.ExecRequest{Argv: []string{"cat"}, Stdin: bytes.NewReader(big)}, checkOut: func(b []byte) bool { return bytes.Equal(b, big) }},
		{name: "killed by signal", req: agent.ExecRequest{Argv: []string{"sh", "-c", "kill -9 $$"}}, code: 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			tc.req.Stdout, tc.req.Stderr = &out, &errb
			code, err := c.Exec(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("exit code %d, want %d", code, tc.code)
			}
			if tc.checkOut != nil {
				if !tc.checkOut(out.Bytes()) {
					t.Fatalf("stdout mismatch (%d bytes)", out.Len())
				}
			} else if out.String() != tc.stdout || errb.String() != tc.stderr {
				t.Fatalf("stdout %q stderr %q, want %q %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
		})
	}
	if _, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"no-such-binary-xyz"}}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing binary: err = %v", err)
	}
}

func TestConcurrentExecAndCancel(t *testing.T) {
	_, connect := startServer(t)
	c := dial(t, connect)
	ctx := ctxT(t)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func(i int) {
			var out bytes.Buffer
			code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"sh", "-c", "sleep 0.2; echo $N"}, Env: []string{"N=" + string(rune('a'+i))}, Stdout: &out})
			if err == nil && (code != 0 || out.String() != string(rune('a'+i))+"\n") {
				err = &mismatch{out.String()}
			}
			errs <- err
		}(i)
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Exec(cctx, agent.ExecRequest{Argv: []string{"sleep", "30"}}); err == nil {
		t.Fatal("cancelled exec returned no error")
	}
	if time.Since(start) > 20*time.Second {
		t.Fatal("cancel did not return promptly")
	}
	// The connection still works after a cancel.
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

type mismatch struct{ got string }

func (m *mismatch) Error() string { return "unexpected output " + m.got }

func TestPushPullInProcess(t *testing.T) {
	_, connect := startServer(t)
	c := dial(t, connect)
	ctx := ctxT(t)
	dir := t.TempDir()
	data := make([]byte, 700*1024+13)
	rand.Read(data)
	dst := filepath.Join(dir, "sub", "file.bin")
	n, err := c.Push(ctx, bytes.NewReader(data), dst, 0o640)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("push: %d, %v", n, err)
	}
	st, err := os.Stat(dst)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("pushed file: %v %v", st, err)
	}
	var got bytes.Buffer
	if _, err := c.Pull(ctx, dst, &got); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
		t.Fatal("pulled content differs")
	}
	empty := filepath.Join(dir, "empty")
	if n, err := c.Push(ctx, strings.NewReader(""), empty, 0o600); err != nil || n != 0 {
		t.Fatalf("empty push: %d %v", n, err)
	}
	got.Reset()
	if n, err := c.Pull(ctx, empty, &got); err != nil || n != 0 || got.Len() != 0 {
		t.Fatalf("empty pull: %d %v", n, err)
	}
	for _, bad := range []struct{ name, path string }{{"relative", "rel/path"}, {"directory", dir}} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := c.Push(ctx, strings.NewReader("x"), bad.path, 0o644); err == nil {
				t.Fatal("push accepted")
			}
		})
	}
	if _, err := c.Pull(ctx, dir, &got); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("pull of a directory: %v", err)
	}
	if _, err := c.Pull(ctx, filepath.Join(dir, "missing"), &got); err == nil {
		t.Fatal("pull of a missing file succeeded")
	}
}

func TestReconnectAfterGarbage(t *testing.T) {
	srv, _ := startServer(t)
	// One long-lived byte stream like the virtio port: the host side is replaced while the
	// guest keeps reading, and the new host must get in sync despite a half-written frame.
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	go srv.ServeConn(b)
	ctx := ctxT(t)
	c1, err := agent.NewClient(ctx, &noClose{a})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A half frame, as if the old host died mid-write.
	f, _ := proto.Encode(proto.Frame{Type: proto.TypeRequest, ID: 5, Payload: bytes.Repeat([]byte("x"), 2000)})
	a.Write(f[:700])
	c1.Close()
	a.SetReadDeadline(time.Time{})
	c2, err := agent.NewClient(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	var out bytes.Buffer
	if code, err := c2.Exec(ctx, agent.ExecRequest{Argv: []string{"echo", "again"}, Stdout: &out}); err != nil || code != 0 || out.String() != "again\n" {
		t.Fatalf("after reconnect: %d %q %v", code, out.String(), err)
	}
}

// noClose lets a client be closed without closing the shared stream under it.
type noClose struct{ net.Conn }

func (n *noClose) Close() error { n.Conn.SetReadDeadline(time.Now()); return nil }

func TestMetricsAndWorkloadsInProcess(t *testing.T) {
	srv, connect := startServer(t)
	srv.Supervisor.Start([]agent.Workload{
		{Name: "flaky", Command: "/bin/sh", Args: []string{"-c", "echo run; sleep 0.2; exit 3"}, Restart: agent.RestartOnFailure, BackoffMS: 100},
		{Name: "steady", Command: "/bin/sleep", Args: []string{"60"}},
	})
	t.Cleanup(func() { srv.Supervisor.Stop(5 * time.Second) })
	c := dial(t, connect)
	ctx := ctxT(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := c.Workloads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 2 && ws[0].Restarts >= 2 && ws[1].State == guest.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workloads did not reach the expected state: %+v", ws)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.MemTotal == 0 || m.CPUTotal == 0 || m.CPUs == 0 {
		t.Fatalf("implausible metrics %+v", m)
	}
	found := false
	for _, p := range m.Processes {
		if p.Name == "steady" && p.RSSBytes > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no RSS for workload steady in %+v", m.Processes)
	}
	logs, err := c.WorkloadLogs(ctx, "flaky")
	if err != nil || !strings.Contains(logs, "run\nrun\n") {
		t.Fatalf("logs %q %v", logs, err)
	}
	if err := c.RestartWorkload(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no workload named") {
		t.Fatalf("restart unknown: %v", err)
	}
	if err := c.Shutdown(ctx, time.Second); err == nil {
		t.Fatal("shutdown accepted without a PowerOff hook")
	}
}
