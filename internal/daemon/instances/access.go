package instances

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/store"
)

// MaxExecOutput caps each buffered exec stream.
const MaxExecOutput = 8 << 20

// dialLock serialises dials per instance: QEMU's agent chardev serves one client at a time,
// so a second concurrent dial would wait behind the first connection forever.
func (s *Subsystem) dialLock(id string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dials == nil {
		s.dials = map[string]*sync.Mutex{}
	}
	m := s.dials[id]
	if m == nil {
		m = &sync.Mutex{}
		s.dials[id] = m
	}
	return m
}

// agentFor returns the instance's agent connection, dialling it once and sharing it: the
// agent multiplexes concurrent requests on one connection.
func (s *Subsystem) agentFor(ctx context.Context, id string) (*agent.Client, error) {
	l := s.dialLock(id)
	l.Lock()
	defer l.Unlock()
	s.mu.Lock()
	c := s.agents[id]
	s.mu.Unlock()
	if c != nil {
		select {
		case <-c.Done():
			s.dropAgent(id)
		default:
			return c, nil
		}
	}
	info, err := s.drv.Info(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err = dialAgent(ctx, info.AgentSocket, info.Spec.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.agents[id] = c
	s.mu.Unlock()
	return c, nil
}

// dialAgent is agent.Dial bounded by ctx as a whole (the client bounds each write itself,
// agent.Options.WriteTimeout; closing the connection when ctx ends also ends the hello), with
// errors that name the instance rather than the socket path.
func dialAgent(ctx context.Context, socket, instance string) (*agent.Client, error) {
	var d net.Dialer
	var conn net.Conn
	for {
		var err error
		if conn, err = d.DialContext(ctx, "unix", socket); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("agent: dial %s: %w (last error: %v)", socket, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, err := agent.NewClientOptions(ctx, conn, agent.Options{Name: "instance " + instance})
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("agent: no answer to hello on %s: %w", socket, ctx.Err())
	}
	return c, err
}

// waitAgent dials the agent and pings it until it answers; it returns the guest kernel.
// As in dialAgent, the connection is closed if ctx ends while a write is blocked.
func (s *Subsystem) waitAgent(ctx context.Context, id string) (string, error) {
	c, err := s.agentFor(ctx, id)
	if err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	h, err := c.WaitReady(ctx)
	if !stop() {
		s.dropAgent(id)
		return "", fmt.Errorf("agent not ready: %w", ctx.Err())
	}
	if err != nil {
		return "", err
	}
	return h.Kernel, nil
}

func (s *Subsystem) dropAgent(id string) {
	s.mu.Lock()
	c := s.agents[id]
	delete(s.agents, id)
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// running returns the record of an instance that can be reached through its agent, or a 409
// that says what to do.
func (s *Subsystem) running(ctx context.Context, project, name, what string) (api.Instance, error) {
	in, err := s.getRecord(ctx, project, name)
	if err != nil {
		return in, err
	}
	switch in.Status {
	case api.InstanceRunning:
		return in, nil
	case api.InstancePaused:
		return in, daemon.Conflict("cannot %s instance %s in project %s: it is paused: resume it first ('finvirt resume %s%s')", what, name, project, name, projectFlag(project))
	}
	return in, daemon.Conflict("cannot %s instance %s in project %s: it is %s, not running: start it first ('finvirt start %s%s')", what, name, project, in.Status, name, projectFlag(project))
}

// agentErr maps an agent failure to an API error: what the guest refused is the caller's
// problem (400/404); a lost connection is 502.
func agentErr(in api.Instance, what string, err error) error {
	return agentErrStatus(in, what, err, http.StatusNotFound)
}

// agentErrStatus is agentErr with the status for "no such file" (a missing program to exec is
// a bad request, a missing file to pull is not found).
func agentErrStatus(in api.Instance, what string, err error, missing int) error {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return daemon.Errorf(http.StatusGatewayTimeout, "%s in instance %s timed out: %v", what, in.Name, err)
	case errors.Is(err, agent.ErrClosed):
		return daemon.Errorf(http.StatusBadGateway, "%s in instance %s: the guest agent connection closed: %v", what, in.Name, err)
	case strings.Contains(msg, "no such file") || strings.Contains(msg, "not found"):
		return daemon.Errorf(missing, "%s in instance %s: %v", what, in.Name, err)
	case strings.HasPrefix(msg, "agent "):
		return daemon.BadRequest("%s in instance %s: %v", what, in.Name, err)
	}
	return daemon.Errorf(http.StatusBadGateway, "%s in instance %s: %v", what, in.Name, err)
}

// capped keeps the first max bytes written and drops the rest.
type capped struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.truncated = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (s *Subsystem) handleExec(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	var req api.InstanceExecPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return daemon.BadRequest("exec in instance %s: command is empty: give the program and its arguments", name)
	}
	if req.Timeout < 0 || req.Timeout > 86400 {
		return daemon.BadRequest("exec in instance %s: timeout %d is out of range: give 0 (300 s default) to 86400 seconds", name, req.Timeout)
	}
	in, err := s.running(r.Context(), project, name, "exec in")
	if err != nil {
		return err
	}
	timeout := 300 * time.Second
	if req.Timeout > 0 {
		timeout = time.Duration(req.Timeout) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	c, err := s.agentFor(ctx, in.ID)
	if err != nil {
		return agentErr(in, "exec", err)
	}
	var env []string
	for k, v := range req.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	stdout, stderr := &capped{max: MaxExecOutput}, &capped{max: MaxExecOutput}
	er := agent.ExecRequest{Argv: req.Command, Env: env, Cwd: req.Cwd, Stdout: stdout, Stderr: stderr}
	if len(req.Stdin) > 0 {
		er.Stdin = bytes.NewReader(req.Stdin)
	}
	code, err := c.Exec(ctx, er)
	if err != nil {
		return agentErrStatus(in, "exec "+req.Command[0], err, http.StatusBadRequest)
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusOK, func(store.Tx) error { return nil }); err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, api.InstanceExecResult{ExitCode: code, Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes(), Truncated: stdout.truncated || stderr.truncated})
}

func guestPath(r *http.Request, name string) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" || !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return "", daemon.BadRequest("instance %s: path %q must be an absolute, clean guest path (?path=/etc/x)", name, p)
	}
	return p, nil
}

func (s *Subsystem) handlePush(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	p, err := guestPath(r, name)
	if err != nil {
		return err
	}
	mode := uint64(0o644)
	if m := r.URL.Query().Get("mode"); m != "" {
		if mode, err = strconv.ParseUint(m, 8, 32); err != nil || mode > 0o7777 {
			return daemon.BadRequest("instance %s: mode %q must be octal permissions, e.g. 0644", name, m)
		}
	}
	in, err := s.running(r.Context(), project, name, "push a file to")
	if err != nil {
		return err
	}
	c, err := s.agentFor(r.Context(), in.ID)
	if err != nil {
		return agentErr(in, "push", err)
	}
	n, err := c.Push(r.Context(), r.Body, p, os.FileMode(mode))
	if err != nil {
		return agentErr(in, "push "+p, err)
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusOK, func(store.Tx) error { return nil }); err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, api.InstanceFile{Path: p, Bytes: n})
}

// handlePull reads the file into a temporary file first: the agent checks the sha256 only at
// the end, and a corrupt transfer must become an error, not a 200 with bad bytes.
func (s *Subsystem) handlePull(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	p, err := guestPath(r, name)
	if err != nil {
		return err
	}
	in, err := s.running(r.Context(), project, name, "pull a file from")
	if err != nil {
		return err
	}
	c, err := s.agentFor(r.Context(), in.ID)
	if err != nil {
		return agentErr(in, "pull", err)
	}
	f, err := os.CreateTemp(s.filesDir(in.ID), "pull-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := c.Pull(r.Context(), p, f)
	if err != nil {
		return agentErr(in, "pull "+p, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, f)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// MaxConsoleLog is the most of the serial log one request returns (its tail).
const MaxConsoleLog = 1 << 20

func (s *Subsystem) handleConsole(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	lines := 0
	if l := r.URL.Query().Get("lines"); l != "" {
		if lines, err = strconv.Atoi(l); err != nil || lines < 1 {
			return daemon.BadRequest("console of instance %s: lines %q must be a positive number", name, l)
		}
	}
	info, err := s.drv.Info(r.Context(), in.ID)
	if err != nil {
		return daemon.NotFound("instance %s has no console log (its VM is gone: %v)", name, err)
	}
	b, err := readTail(info.SerialLog, MaxConsoleLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if lines > 0 {
		all := strings.SplitAfter(string(b), "\n")
		if len(all) > 0 && all[len(all)-1] == "" {
			all = all[:len(all)-1]
		}
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		b = []byte(strings.Join(all, ""))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if _, err = w.Write(b); err != nil || r.URL.Query().Get("follow") != "true" {
		return err
	}
	return followLog(r.Context(), w, info.SerialLog)
}

// followLog streams what is appended to the serial log until the client goes away or the log
// is removed (the instance was deleted), like tail -f. A read-only console: the appliance has
// no shell on its serial port (use exec for that).
func followLog(ctx context.Context, w http.ResponseWriter, p string) error {
	fl, _ := w.(http.Flusher)
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return nil
	}
	if fl != nil {
		fl.Flush()
	}
	buf := make([]byte, 32<<10)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			if fl != nil {
				fl.Flush()
			}
			continue
		}
		if err != nil && err != io.EOF {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := os.Stat(p); err != nil {
				return nil
			}
		}
	}
}

func readTail(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, max))
}

func (s *Subsystem) handleMetrics(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	in, err := s.running(r.Context(), rq.Project(), r.PathValue("name"), "read the metrics of")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	c, err := s.agentFor(ctx, in.ID)
	if err != nil {
		return agentErr(in, "metrics", err)
	}
	m, err := c.Metrics(ctx)
	if err != nil {
		return agentErr(in, "metrics", err)
	}
	return daemon.WriteJSON(w, http.StatusOK, m)
}
