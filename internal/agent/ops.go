package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/agent/proto"
)

// Re-exported protocol types, so callers need not import proto.
type (
	Health         = proto.Health
	Metrics        = proto.Metrics
	WorkloadStatus = proto.Workload
	ProcStat       = proto.ProcStat
)

// Ping returns the agent's health: uptime, kernel, hostname and workload states.
func (c *Client) Ping(ctx context.Context) (*Health, error) {
	r, err := c.do(ctx, proto.Request{Op: proto.OpPing}, nil, nil)
	if err != nil {
		return nil, err
	}
	if r.Health == nil {
		return nil, fmt.Errorf("agent ping: answer has no health")
	}
	return r.Health, nil
}

// WaitReady pings until the agent answers or ctx ends.
func (c *Client) WaitReady(ctx context.Context) (*Health, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := c.Ping(pctx)
		cancel()
		if err == nil {
			return h, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("agent not ready: %w (last error: %v)", ctx.Err(), err)
		case <-c.done:
			return nil, c.closedErr()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ExecRequest describes a command to run in the guest.
type ExecRequest struct {
	Argv   []string // Argv[0] is a path or a name looked up in PATH (/bin:/sbin:/usr/bin:...)
	Env    []string // KEY=VALUE; PATH defaults as above
	Cwd    string
	Stdin  io.Reader // nil: /dev/null
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded
}

// Exec runs a command in the guest and returns its exit code (128+N when killed by signal N).
// Cancelling ctx kills the command's process group in the guest.
func (c *Client) Exec(ctx context.Context, req ExecRequest) (int, error) {
	if len(req.Argv) == 0 {
		return -1, fmt.Errorf("agent exec: Argv is empty")
	}
	sink := func(ch uint8, b []byte) {
		switch {
		case ch == proto.ChanStdout && req.Stdout != nil:
			req.Stdout.Write(b)
		case ch == proto.ChanStderr && req.Stderr != nil:
			req.Stderr.Write(b)
		}
	}
	r, err := c.do(ctx, proto.Request{Op: proto.OpExec, Argv: req.Argv, Env: req.Env, Cwd: req.Cwd, Stdin: req.Stdin != nil}, sink, req.Stdin)
	if err != nil {
		return -1, err
	}
	return r.ExitCode, nil
}

// Push writes the contents of r to guestPath (created or atomically replaced) with mode, and
// returns the byte count after checking the guest's sha256 of what it stored.
func (c *Client) Push(ctx context.Context, r io.Reader, guestPath string, mode os.FileMode) (int64, error) {
	h := sha256.New()
	var n countingHash
	n.h = h
	resp, err := c.do(ctx, proto.Request{Op: proto.OpPush, Path: guestPath, Mode: uint32(mode.Perm()), Size: -1}, nil, io.TeeReader(r, &n))
	if err != nil {
		return 0, err
	}
	if resp.Bytes != n.n || resp.SHA256 != hex.EncodeToString(h.Sum(nil)) {
		return resp.Bytes, fmt.Errorf("agent push %s: guest stored %d bytes (sha256 %.12s), host sent %d (sha256 %.12x)", guestPath, resp.Bytes, resp.SHA256, n.n, h.Sum(nil))
	}
	return resp.Bytes, nil
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// Pull copies guestPath to w and returns the byte count, checking the guest's sha256.
func (c *Client) Pull(ctx context.Context, guestPath string, w io.Writer) (int64, error) {
	h := sha256.New()
	var n int64
	var werr error
	sink := func(ch uint8, b []byte) {
		h.Write(b)
		n += int64(len(b))
		if werr == nil {
			_, werr = w.Write(b)
		}
	}
	resp, err := c.do(ctx, proto.Request{Op: proto.OpPull, Path: guestPath}, sink, nil)
	if err != nil {
		return n, err
	}
	if werr != nil {
		return n, fmt.Errorf("agent pull %s: writing locally: %w", guestPath, werr)
	}
	if resp.Bytes != n || resp.SHA256 != hex.EncodeToString(h.Sum(nil)) {
		return n, fmt.Errorf("agent pull %s: received %d bytes, guest sent %d (hash mismatch)", guestPath, n, resp.Bytes)
	}
	return n, nil
}

// Metrics samples guest CPU, memory, load and workload process usage.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	r, err := c.do(ctx, proto.Request{Op: proto.OpMetrics}, nil, nil)
	if err != nil {
		return nil, err
	}
	if r.Metrics == nil {
		return nil, fmt.Errorf("agent metrics: answer has no metrics")
	}
	return r.Metrics, nil
}

// Workloads returns the state of the supervised workloads.
func (c *Client) Workloads(ctx context.Context) ([]WorkloadStatus, error) {
	r, err := c.do(ctx, proto.Request{Op: proto.OpWorkloads}, nil, nil)
	return r.Workloads, err
}

// RestartWorkload restarts the named workload now.
func (c *Client) RestartWorkload(ctx context.Context, name string) error {
	_, err := c.do(ctx, proto.Request{Op: proto.OpWorkloadRestart, Name: name}, nil, nil)
	return err
}

// WorkloadLogs returns the last 64 KiB of a workload's output.
func (c *Client) WorkloadLogs(ctx context.Context, name string) (string, error) {
	r, err := c.do(ctx, proto.Request{Op: proto.OpWorkloadLogs, Name: name}, nil, nil)
	return r.Logs, err
}

// Shutdown asks the guest to stop its workloads (SIGTERM, then SIGKILL after timeout) and
// power off. It returns once the agent accepted; watch the QEMU process (or Done) for the end.
func (c *Client) Shutdown(ctx context.Context, timeout time.Duration) error {
	if timeout < 0 {
		return fmt.Errorf("agent shutdown: negative timeout %v", timeout)
	}
	_, err := c.do(ctx, proto.Request{Op: proto.OpShutdown, TimeoutMS: timeout.Milliseconds()}, nil, nil)
	return err
}
