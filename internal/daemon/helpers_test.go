package daemon

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
)

type testDaemon struct {
	d      *Daemon
	dir    string
	socket string
	local  *client.Client // unix socket: local administrator
	cancel context.CancelFunc
	done   chan struct{}
}

// startDaemon runs a real daemon (unix socket + TLS on a random loopback port) in a temp
// state dir and stops it at the end of the test.
func startDaemon(t testing.TB, mutate ...func(*Config)) *testDaemon {
	t.Helper()
	dir := t.TempDir()
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	sockDir, err := os.MkdirTemp("", "fv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := Config{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(sockDir, "s.sock"), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &testDaemon{d: d, dir: dir, socket: cfg.Socket, local: client.NewUnix(cfg.Socket), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(td.done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	select {
	case <-d.Ready():
	case <-td.done:
		t.Fatal("daemon exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("daemon not ready after 30s")
	}
	t.Cleanup(td.stop)
	return td
}

func (td *testDaemon) stop() {
	td.cancel()
	<-td.done
}

// remote returns a TLS client authenticated by token.
func (td *testDaemon) remote(t testing.TB, token string) *client.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(td.d.cfg.StateDir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewRemote("https://"+td.d.Addr(), client.RemoteOptions{Token: token, ServerCert: pem})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenFor issues a token through the local admin and returns a client using it.
func (td *testDaemon) tokenFor(t testing.TB, identity, role, project string) *client.Client {
	t.Helper()
	tok, err := td.local.CreateToken(context.Background(), api.TokensPost{Identity: identity, Role: role, Project: project})
	if err != nil {
		t.Fatalf("token for %s %s@%s: %v", identity, role, project, err)
	}
	return td.remote(t, tok.Secret)
}

func mustProject(t testing.TB, c *client.Client, name string, protected bool) {
	t.Helper()
	if _, err := c.CreateProject(context.Background(), api.ProjectsPost{Name: name, Protected: protected}); err != nil {
		t.Fatalf("create project %s: %v", name, err)
	}
}

func auditCount(t testing.TB, c *client.Client) int {
	t.Helper()
	recs, err := c.AuditList(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func tlsLoad(cert, key string) (tls.Certificate, error) { return tls.LoadX509KeyPair(cert, key) }
