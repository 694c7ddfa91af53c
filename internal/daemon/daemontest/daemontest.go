// Package daemontest starts real finvirt daemons for tests of the daemon and of its
// subsystem packages, and checks RBAC matrices against them.
package daemontest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
)

// Daemon is a running test daemon.
type Daemon struct {
	D      *daemon.Daemon
	Dir    string // temp dir holding the state dir
	Socket string
	Local  *client.Client // unix socket: the local administrator
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs a real daemon (unix socket + TLS on a random loopback port) in a temp state
// dir; it stops at the end of the test.
func Start(t testing.TB, mutate ...func(*daemon.Config)) *Daemon {
	t.Helper()
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "fv") // unix socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg := daemon.Config{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(sockDir, "s.sock"), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MasterKeyPath: filepath.Join(dir, "master.key")}
	for _, m := range mutate {
		m(&cfg)
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &Daemon{D: d, Dir: dir, Socket: cfg.Socket, Local: client.NewUnix(cfg.Socket), cancel: cancel, done: make(chan struct{})}
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
	case <-time.After(60 * time.Second):
		t.Fatal("daemon not ready after 60s")
	}
	t.Cleanup(td.Stop)
	return td
}

// Stop shuts the daemon down (idempotent).
func (td *Daemon) Stop() {
	td.cancel()
	<-td.done
}

// Remote returns a TLS client authenticated by token ("" for anonymous).
func (td *Daemon) Remote(t testing.TB, token string) *client.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(td.D.Config().StateDir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewRemote("https://"+td.D.Addr(), client.RemoteOptions{Token: token, ServerCert: pem})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RemoteCert returns a TLS client authenticated by a client certificate.
func (td *Daemon) RemoteCert(t testing.TB, cert tls.Certificate) *client.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(td.D.Config().StateDir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewRemote("https://"+td.D.Addr(), client.RemoteOptions{ServerCert: pem, ClientCert: &cert})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TokenFor issues a token through the local admin and returns a client using it.
func (td *Daemon) TokenFor(t testing.TB, identity, role, project string) *client.Client {
	t.Helper()
	tok, err := td.Local.CreateToken(context.Background(), api.TokensPost{Identity: identity, Role: role, Project: project})
	if err != nil {
		t.Fatalf("token for %s %s@%s: %v", identity, role, project, err)
	}
	return td.Remote(t, tok.Secret)
}

// MustProject creates a project or fails the test.
func (td *Daemon) MustProject(t testing.TB, name string, protected bool) {
	t.Helper()
	if _, err := td.Local.CreateProject(context.Background(), api.ProjectsPost{Name: name, Protected: protected}); err != nil {
		t.Fatalf("create project %s: %v", name, err)
	}
}

// Role names used by StandardRoles and RBAC rows.
const (
	Admin      = "admin"
	Auditor    = "auditor"
	OpBank     = "op-bank"
	ViewerBank = "viewer-bank"
	OpSec      = "op-sec"
	Anonymous  = "anonymous"
)

// AllRoles are the authenticated roles of StandardRoles.
var AllRoles = []string{Admin, Auditor, OpBank, ViewerBank, OpSec}

// StandardRoles creates projects bank and securities (if missing) and one identity per
// role: admin, auditor, operator of bank, viewer of bank, operator of securities, plus an
// anonymous client.
func (td *Daemon) StandardRoles(t testing.TB) map[string]*client.Client {
	t.Helper()
	for _, p := range []string{"bank", "securities"} {
		if _, err := td.Local.GetProject(context.Background(), p); err != nil {
			td.MustProject(t, p, false)
		}
	}
	return map[string]*client.Client{
		Admin:      td.TokenFor(t, "rbac-admin", api.RoleAdmin, ""),
		Auditor:    td.TokenFor(t, "rbac-auditor", api.RoleAuditor, ""),
		OpBank:     td.TokenFor(t, "rbac-op-bank", api.RoleOperator, "bank"),
		ViewerBank: td.TokenFor(t, "rbac-viewer-bank", api.RoleViewer, "bank"),
		OpSec:      td.TokenFor(t, "rbac-op-sec", api.RoleOperator, "securities"),
		Anonymous:  td.Remote(t, ""),
	}
}

// RBACRow is one route of an RBAC matrix with the roles allowed to call it. Choose bodies
// and paths so that an allowed call is refused after authorization (400/404/409) or is
// harmless: the check only distinguishes 401/403 from everything else.
type RBACRow struct {
	Method, Path, Body string
	Allowed            []string
}

// CheckRBAC runs every row as every role: allowed roles must not get 401/403, the others
// must get 403, anonymous must get 401. It also fails for routes under any of the given
// path prefixes that no row covers, so a new route cannot skip the matrix.
func (td *Daemon) CheckRBAC(t *testing.T, roles map[string]*client.Client, rows []RBACRow, prefixes ...string) {
	t.Helper()
	covered := map[string]bool{}
	for _, row := range rows {
		for _, rt := range td.D.Routes() {
			if rt.Method == row.Method && patternMatches(rt.Path, strings.SplitN(row.Path, "?", 2)[0]) {
				covered[rt.Pattern()] = true
			}
		}
		for role, c := range roles {
			allowed := contains(row.Allowed, role)
			row, role, c := row, role, c
			t.Run(role+" "+row.Method+" "+row.Path, func(t *testing.T) {
				status := StatusOf(t, c, row.Method, row.Path, row.Body)
				switch {
				case role == Anonymous:
					if status != http.StatusUnauthorized {
						t.Fatalf("anonymous got %d, want 401", status)
					}
				case allowed && (status == 401 || status == 403):
					t.Fatalf("%s denied (%d), want allowed", role, status)
				case !allowed && status != 403:
					t.Fatalf("%s got %d, want 403", role, status)
				}
			})
		}
	}
	for _, rt := range td.D.Routes() {
		for _, p := range prefixes {
			if strings.HasPrefix(rt.Path, p) && !covered[rt.Pattern()] {
				t.Errorf("route %s is missing from the RBAC matrix", rt.Pattern())
			}
		}
	}
}

func patternMatches(pattern, path string) bool {
	pp, cp := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(pp) != len(cp) {
		return false
	}
	for i := range pp {
		if !strings.HasPrefix(pp[i], "{") && pp[i] != cp[i] {
			return false
		}
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// StatusOf sends a raw JSON body and returns the HTTP status (202 for a four-eyes
// approval).
func StatusOf(t testing.TB, c *client.Client, method, path, body string) int {
	t.Helper()
	var in any
	if body != "" {
		in = rawJSON(body)
	}
	err := c.Do(context.Background(), method, path, in, nil)
	if err == nil {
		return 200
	}
	var pa *client.PendingApproval
	if errors.As(err, &pa) {
		return 202
	}
	if s := client.StatusOf(err); s != 0 {
		return s
	}
	t.Fatalf("%s %s: %v", method, path, err)
	return 0
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// Row builds an RBACRow.
func Row(method, path, body string, allowed ...string) RBACRow {
	return RBACRow{Method: method, Path: path, Body: body, Allowed: allowed}
}
