package daemon

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
)

// TestRBACMatrix drives every route as every role over TLS and checks allow/deny against a
// matrix written out here by hand (not derived from the route table), so a wrong
// permission on a route fails the test. Bodies are chosen so that an allowed request is
// refused after authorization (400/404/409) or harmless, and nothing important changes.
func TestRBACMatrix(t *testing.T) {
	td := startDaemon(t)
	ctx := context.Background()
	mustProject(t, td.local, "bank", true)
	mustProject(t, td.local, "securities", false)
	// A pending approval on bank, for the approve/reject rows.
	err := td.local.DeleteProject(ctx, "bank")
	var pa *client.PendingApproval
	if !errorsAs(err, &pa) {
		t.Fatalf("delete of protected project did not ask for approval: %v", err)
	}
	roles := map[string]*client.Client{
		"admin":       td.tokenFor(t, "root-admin", api.RoleAdmin, ""),
		"auditor":     td.tokenFor(t, "carol", api.RoleAuditor, ""),
		"op-bank":     td.tokenFor(t, "alice", api.RoleOperator, "bank"),
		"viewer-bank": td.tokenFor(t, "victor", api.RoleViewer, "bank"),
		"op-sec":      td.tokenFor(t, "sam", api.RoleOperator, "securities"),
		"anonymous":   td.remote(t, ""),
	}
	const (
		A  = "admin"
		Au = "auditor"
		O  = "op-bank"
		V  = "viewer-bank"
		S  = "op-sec"
	)
	all := []string{A, Au, O, V, S}
	appr := "/1.0/approvals/" + pa.Approval.ID
	tests := []struct {
		method, path, body string
		allowed            []string
	}{
		{"GET", "/1.0", "", all},
		{"GET", "/1.0/openapi.json", "", all},
		{"GET", "/1.0/metrics", "", []string{A, Au}},
		{"GET", "/1.0/projects", "", all},
		{"POST", "/1.0/projects", `{"name":"Bad Name"}`, []string{A}},
		{"GET", "/1.0/projects/bank", "", []string{A, Au, O, V}},
		{"GET", "/1.0/projects/securities", "", []string{A, Au, S}},
		{"PATCH", "/1.0/projects/bank", `{"limits":{"instances":-1}}`, []string{A}},
		{"DELETE", "/1.0/projects/nosuch", "", []string{A}},
		{"GET", "/1.0/identities", "", []string{A, Au}},
		{"GET", "/1.0/identities/alice", "", []string{A, Au}},
		{"DELETE", "/1.0/identities/nosuch", "", []string{A}},
		{"GET", "/1.0/tokens", "", []string{A, Au}},
		{"POST", "/1.0/tokens", `{"identity":"x","role":"nosuch"}`, []string{A}},
		{"DELETE", "/1.0/tokens/nosuch", "", []string{A}},
		{"POST", "/1.0/certificates", `{"identity":"x","role":"viewer","project":"bank","certificate":"junk"}`, []string{A}},
		{"GET", "/1.0/approvals", "", all},
		{"GET", appr, "", all}, // visibility is filtered inside (404 for others)
		{"POST", appr + "/reject", `{"reason":"rbac test"}`, []string{A, O}},
		{"POST", appr + "/approve", `{"reason":"rbac test"}`, []string{A, O}},
		{"GET", "/1.0/audit", "", []string{A, Au}},
		{"GET", "/1.0/audit/verify", "", []string{A, Au}},
		{"GET", "/1.0/operations", "", all},
		{"GET", "/1.0/operations/nosuch", "", all},
		{"DELETE", "/1.0/operations/nosuch", "", all},
		{"POST", "/1.0/backups", `{"name":"Bad Name"}`, []string{A}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		for pat, rt := range td.d.byPat {
			if rt.method == tt.method && patternMatches(rt.path, tt.path) {
				covered[pat] = true
			}
		}
		for role, c := range roles {
			allowed := contains(tt.allowed, role)
			t.Run(role+" "+tt.method+" "+tt.path, func(t *testing.T) {
				status := statusOf(t, c, tt.method, tt.path, tt.body)
				switch {
				case role == "anonymous":
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
	for _, rt := range td.d.routes {
		if !covered[rt.pattern()] && !strings.HasSuffix(rt.path, "/events") {
			t.Errorf("route %s is missing from the RBAC matrix", rt.pattern())
		}
	}
	// Every denial was audited as such.
	recs, _ := td.local.AuditList(ctx, "", 0)
	denied := 0
	for _, r := range recs {
		if r.Outcome == api.OutcomeDenied {
			denied++
		}
	}
	if denied < len(tests) {
		t.Fatalf("only %d denied requests in the audit log", denied)
	}
	// The approval survived: op-bank or admin rejected it; bank still exists.
	if _, err := td.local.GetProject(ctx, "bank"); err != nil {
		t.Fatalf("bank vanished: %v", err)
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

func statusOf(t *testing.T, c *client.Client, method, path, body string) int {
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
	if errorsAs(err, &pa) {
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

func TestSegregationOfDuties(t *testing.T) {
	td := startDaemon(t)
	ctx := context.Background()
	mustProject(t, td.local, "bank", false)
	if _, err := td.local.CreateToken(ctx, api.TokensPost{Identity: "eve", Role: api.RoleOperator, Project: "bank"}); err != nil {
		t.Fatal(err)
	}
	_, err := td.local.CreateToken(ctx, api.TokensPost{Identity: "eve", Role: api.RoleAuditor})
	if client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "segregation of duties") {
		t.Fatalf("operator+auditor: %v, want 409 segregation of duties", err)
	}
	id, _ := td.local.GetIdentity(ctx, "eve")
	if len(id.Grants) != 1 {
		t.Fatalf("refused grant was stored: %+v", id.Grants)
	}
	toks, _ := td.local.ListTokens(ctx)
	if len(toks) != 1 {
		t.Fatalf("refused request issued a token: %d tokens", len(toks))
	}
}

func TestTokenLifecycleOverTLS(t *testing.T) {
	td := startDaemon(t)
	ctx := context.Background()
	tok, err := td.local.CreateToken(ctx, api.TokensPost{Identity: "alice", Role: api.RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	c := td.remote(t, tok.Secret)
	info, err := c.Info(ctx)
	if err != nil || info.Identity != "alice" {
		t.Fatalf("Info as alice = %+v, %v", info, err)
	}
	last := "0"
	if strings.HasSuffix(tok.Secret, "0") {
		last = "1"
	}
	for _, bad := range []string{tok.Secret[:len(tok.Secret)-1] + last, "fvt_0000000000000000." + strings.Repeat("0", 64), "garbage"} {
		if _, err := td.remote(t, bad).Info(ctx); client.StatusOf(err) != 401 {
			t.Errorf("token %q: %v, want 401", bad, err)
		}
	}
	if err := td.local.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx); client.StatusOf(err) != 401 {
		t.Fatalf("revoked token still works: %v", err)
	}
	// A client pinning another certificate refuses the daemon.
	other, _ := os.ReadFile(filepath.Join(td.d.cfg.StateDir, "server.crt"))
	other = []byte(strings.Replace(string(other), "A", "B", 1))
	if bad, err := client.NewRemote("https://"+td.d.Addr(), client.RemoteOptions{Token: tok.Secret, ServerCert: other}); err == nil {
		if _, err := bad.Info(ctx); err == nil {
			t.Fatal("client accepted a server certificate it did not pin")
		}
	}
}

func TestClientCertificateIdentity(t *testing.T) {
	td := startDaemon(t)
	ctx := context.Background()
	mustProject(t, td.local, "insurance", false)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	if err := writeSelfSigned(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	pemCert, _ := os.ReadFile(certPath)
	if _, err := td.local.AddCertificate(ctx, api.CertificatesPost{Identity: "claims-bot", Role: api.RoleOperator, Project: "insurance", Certificate: string(pemCert)}); err != nil {
		t.Fatal(err)
	}
	cert, err := tlsLoad(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := os.ReadFile(filepath.Join(td.d.cfg.StateDir, "server.crt"))
	c, err := client.NewRemote("https://"+td.d.Addr(), client.RemoteOptions{ServerCert: srv, ClientCert: &cert})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Identity != "claims-bot" {
		t.Fatalf("Info by certificate = %+v, %v", info, err)
	}
	if _, err := c.GetProject(ctx, "insurance"); err != nil {
		t.Fatalf("operator cannot read own project: %v", err)
	}
	if _, err := c.GetProject(ctx, "default"); client.StatusOf(err) != 403 {
		t.Fatalf("operator read another project: %v", err)
	}
	_ = io.Discard
}
