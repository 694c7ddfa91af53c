package daemon_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

func TestSegregationOfDuties(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	td.MustProject(t, "bank", false)
	if _, err := td.Local.CreateToken(ctx, api.TokensPost{Identity: "eve", Role: api.RoleOperator, Project: "bank"}); err != nil {
		t.Fatal(err)
	}
	_, err := td.Local.CreateToken(ctx, api.TokensPost{Identity: "eve", Role: api.RoleAuditor})
	if client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "segregation of duties") {
		t.Fatalf("operator+auditor: %v, want 409 segregation of duties", err)
	}
	id, _ := td.Local.GetIdentity(ctx, "eve")
	if len(id.Grants) != 1 {
		t.Fatalf("refused grant was stored: %+v", id.Grants)
	}
	toks, _ := td.Local.ListTokens(ctx)
	if len(toks) != 1 {
		t.Fatalf("refused request issued a token: %d tokens", len(toks))
	}
}

func TestTokenLifecycleOverTLS(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	tok, err := td.Local.CreateToken(ctx, api.TokensPost{Identity: "alice", Role: api.RoleAuditor})
	if err != nil {
		t.Fatal(err)
	}
	c := td.Remote(t, tok.Secret)
	info, err := c.Info(ctx)
	if err != nil || info.Identity != "alice" {
		t.Fatalf("Info as alice = %+v, %v", info, err)
	}
	last := "0"
	if strings.HasSuffix(tok.Secret, "0") {
		last = "1"
	}
	for _, bad := range []string{tok.Secret[:len(tok.Secret)-1] + last, "fvt_0000000000000000." + strings.Repeat("0", 64), "garbage"} {
		if _, err := td.Remote(t, bad).Info(ctx); client.StatusOf(err) != 401 {
			t.Errorf("token %q: %v, want 401", bad, err)
		}
	}
	if err := td.Local.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(ctx); client.StatusOf(err) != 401 {
		t.Fatalf("revoked token still works: %v", err)
	}
	// A client pinning another certificate refuses the daemon.
	other, _ := os.ReadFile(filepath.Join(td.D.Config().StateDir, "server.crt"))
	other = []byte(strings.Replace(string(other), "A", "B", 1))
	if bad, err := client.NewRemote("https://"+td.D.Addr(), client.RemoteOptions{Token: tok.Secret, ServerCert: other}); err == nil {
		if _, err := bad.Info(ctx); err == nil {
			t.Fatal("client accepted a server certificate it did not pin")
		}
	}
}

func TestClientCertificateIdentity(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	td.MustProject(t, "insurance", false)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	if err := daemon.WriteSelfSigned(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	pemCert, _ := os.ReadFile(certPath)
	if _, err := td.Local.AddCertificate(ctx, api.CertificatesPost{Identity: "claims-bot", Role: api.RoleOperator, Project: "insurance", Certificate: string(pemCert)}); err != nil {
		t.Fatal(err)
	}
	cert, err := tlsLoad(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := os.ReadFile(filepath.Join(td.D.Config().StateDir, "server.crt"))
	c, err := client.NewRemote("https://"+td.D.Addr(), client.RemoteOptions{ServerCert: srv, ClientCert: &cert})
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
