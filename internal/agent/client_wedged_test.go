package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/agent/guest"
)

// stallConn is the guest end of the port: it reads normally until stall, then stops reading
// (a wedged guest), so the host's socket buffer fills.
type stallConn struct {
	net.Conn
	once    sync.Once
	closed  chan struct{}
	mu      sync.Mutex
	isStall bool
}

func (s *stallConn) stall() { s.mu.Lock(); s.isStall = true; s.mu.Unlock() }

func (s *stallConn) Read(b []byte) (int, error) {
	s.mu.Lock()
	st := s.isStall
	s.mu.Unlock()
	if st {
		<-s.closed
		return 0, io.EOF
	}
	return s.Conn.Read(b)
}

func (s *stallConn) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// unixPair returns the two ends of a real AF_UNIX stream socket pair, the host end with the
// smallest send buffer so a peer that stops reading blocks writes at once.
func unixPair(t *testing.T) (host, guestEnd net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "agent-pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// wedgedAgent serves the real guest agent on one end of a socket pair and returns the host
// end's client plus the stall switch.
func wedgedAgent(t *testing.T, o agent.Options) (*agent.Client, *stallConn) {
	t.Helper()
	host, g := unixPair(t)
	sc := &stallConn{Conn: g, closed: make(chan struct{})}
	procs := guest.NewProcs(false)
	srv := guest.NewServer(procs, guest.NewSupervisor(procs, nil))
	srv.Logf = t.Logf
	go srv.ServeConn(sc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := agent.NewClientOptions(ctx, host, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); sc.Close() })
	return c, sc
}

// TestWriteTimeoutWedgedGuest: once the guest stops reading, a push fails with a timeout
// naming the agent instead of blocking the caller forever, and the connection is closed (a
// half-written frame would desynchronise it) so later calls fail at once.
func TestWriteTimeoutWedgedGuest(t *testing.T) {
	c, sc := wedgedAgent(t, agent.Options{Name: "instance web-1 agent", WriteTimeout: 300 * time.Millisecond})
	sc.stall()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := c.Push(ctx, bytes.NewReader(make([]byte, 8<<20)), filepath.Join(t.TempDir(), "f"), 0o600)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("push to a wedged guest: %v (ctx %v)", err, ctx.Err())
	}
	for _, want := range []string{"instance web-1 agent", "write timed out after 300ms", "stopped reading its port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := c.Ping(ctx); !errors.Is(err, agent.ErrClosed) {
		t.Fatalf("call after the write timeout: %v, want ErrClosed", err)
	}
}

// TestWriteAbortedByContext: with a long write timeout, the caller's ctx still ends a write
// blocked on a wedged guest, and the call returns the ctx error.
func TestWriteAbortedByContext(t *testing.T) {
	c, sc := wedgedAgent(t, agent.Options{Name: "instance web-2 agent", WriteTimeout: time.Hour})
	sc.stall()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Push(ctx, bytes.NewReader(make([]byte, 8<<20)), filepath.Join(t.TempDir(), "f"), 0o600)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("push: %v, want the ctx deadline", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("push blocked on a wedged guest past its ctx (60 s)")
	}
}
