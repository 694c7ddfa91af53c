package daemon_test

import (
	"context"
	"errors"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

// TestRBACMatrix drives every core route as every role over TLS and checks allow/deny
// against a matrix written out here by hand (not derived from the route table), so a wrong
// permission on a route fails the test.
func TestRBACMatrix(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	roles := td.StandardRoles(t)
	// bank becomes protected; a pending approval on it feeds the approve/reject rows.
	on := true
	if _, err := td.Local.UpdateProject(ctx, "bank", api.ProjectPatch{Protected: &on}); err != nil {
		t.Fatal(err)
	}
	var pa *client.PendingApproval
	if err := td.Local.DeleteProject(ctx, "bank"); !errors.As(err, &pa) {
		t.Fatalf("delete of protected project did not ask for approval: %v", err)
	}
	A, Au, O, V, S := dt.Admin, dt.Auditor, dt.OpBank, dt.ViewerBank, dt.OpSec
	all := dt.AllRoles
	appr := "/1.0/approvals/" + pa.Approval.ID
	rows := []dt.RBACRow{
		dt.Row("GET", "/1.0", "", all...),
		dt.Row("GET", "/1.0/openapi.json", "", all...),
		dt.Row("GET", "/1.0/metrics", "", A, Au),
		dt.Row("GET", "/1.0/projects", "", all...),
		dt.Row("POST", "/1.0/projects", `{"name":"Bad Name"}`, A),
		dt.Row("GET", "/1.0/projects/bank", "", A, Au, O, V),
		dt.Row("GET", "/1.0/projects/securities", "", A, Au, S),
		dt.Row("PATCH", "/1.0/projects/bank", `{"limits":{"instances":-1}}`, A),
		dt.Row("DELETE", "/1.0/projects/nosuch", "", A),
		dt.Row("GET", "/1.0/identities", "", A, Au),
		dt.Row("GET", "/1.0/identities/rbac-op-bank", "", A, Au),
		dt.Row("DELETE", "/1.0/identities/nosuch", "", A),
		dt.Row("GET", "/1.0/tokens", "", A, Au),
		dt.Row("POST", "/1.0/tokens", `{"identity":"x","role":"nosuch"}`, A),
		dt.Row("DELETE", "/1.0/tokens/nosuch", "", A),
		dt.Row("POST", "/1.0/certificates", `{"identity":"x","role":"viewer","project":"bank","certificate":"junk"}`, A),
		dt.Row("GET", "/1.0/approvals", "", all...),
		dt.Row("GET", appr, "", all...), // visibility is filtered inside (404 for others)
		dt.Row("POST", appr+"/reject", `{"reason":"rbac test"}`, A, O),
		dt.Row("POST", appr+"/approve", `{"reason":"rbac test"}`, A, O),
		dt.Row("GET", "/1.0/audit", "", A, Au),
		dt.Row("GET", "/1.0/audit/verify", "", A, Au),
		dt.Row("GET", "/1.0/operations", "", all...),
		dt.Row("GET", "/1.0/operations/nosuch", "", all...),
		dt.Row("DELETE", "/1.0/operations/nosuch", "", all...),
		dt.Row("POST", "/1.0/backups", `{"name":"Bad Name"}`, A),
	}
	td.CheckRBAC(t, roles, rows, "/1.0/projects", "/1.0/identities", "/1.0/tokens", "/1.0/certificates", "/1.0/approvals", "/1.0/audit", "/1.0/operations", "/1.0/backups", "/1.0/metrics")
	// Every denial was audited as such.
	recs, _ := td.Local.AuditList(ctx, "", 0)
	denied := 0
	for _, r := range recs {
		if r.Outcome == api.OutcomeDenied {
			denied++
		}
	}
	if denied < len(rows) {
		t.Fatalf("only %d denied requests in the audit log", denied)
	}
	if _, err := td.Local.GetProject(ctx, "bank"); err != nil {
		t.Fatalf("bank vanished: %v", err)
	}
}
