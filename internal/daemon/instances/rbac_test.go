package instances_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"

	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

// TestRBACMatrix drives every host, image and instance route as every role, against a
// matrix written by hand: images are global (everyone reads, admin changes), instances
// follow the project (operators and admin change, viewers and auditors read). Bodies are
// chosen so that an allowed call fails after authorization (400/404) and changes nothing.
func TestRBACMatrix(t *testing.T) {
	td := dt.Start(t, func(c *daemon.Config) { c.StateDir = stateDir(t) })
	roles := td.StandardRoles(t)
	A, Au, O, V, S := dt.Admin, dt.Auditor, dt.OpBank, dt.ViewerBank, dt.OpSec
	all := dt.AllRoles
	read := []string{A, Au, O, V}
	write := []string{A, O}
	const in = "/1.0/instances/nosuch"
	rows := []dt.RBACRow{
		dt.Row("GET", "/1.0/host", "", all...),
		dt.Row("GET", "/1.0/images", "", all...),
		dt.Row("POST", "/1.0/images", `{"name":"Bad Name"}`, A),
		dt.Row("POST", "/1.0/images/import", `{}`, A),
		dt.Row("GET", "/1.0/images/nosuch", "", all...),
		dt.Row("DELETE", "/1.0/images/nosuch", "", A),
		dt.Row("GET", "/1.0/images/nosuch/export", "", all...),
		dt.Row("GET", "/1.0/instances?project=bank", "", read...),
		dt.Row("GET", "/1.0/instances?project=securities", "", A, Au, S),
		dt.Row("POST", "/1.0/instances?project=bank", `{"name":"Bad Name"}`, write...),
		dt.Row("POST", "/1.0/instances?project=securities", `{"name":"Bad Name"}`, A, S),
		dt.Row("GET", in+"?project=bank", "", read...),
		dt.Row("PATCH", in+"?project=bank", `{"restart":"always"}`, write...),
		dt.Row("DELETE", in+"?project=bank", "", write...),
		dt.Row("POST", in+"/state?project=bank", `{"action":"start"}`, write...),
		dt.Row("POST", in+"/exec?project=bank", `{"command":["true"]}`, write...),
		dt.Row("POST", in+"/exec?project=securities", `{"command":["true"]}`, A, S),
		dt.Row("PUT", in+"/files?project=bank&path=/x", `{}`, write...),
		dt.Row("GET", in+"/files?project=bank&path=/x", "", read...),
		dt.Row("GET", in+"/console?project=bank", "", read...),
		dt.Row("GET", in+"/console/attach?project=bank", "", write...),
		dt.Row("GET", in+"/metrics?project=bank", "", read...),
		dt.Row("POST", in+"/volumes?project=bank", `{"volume":"v"}`, write...),
		dt.Row("POST", in+"/volumes?project=securities", `{"volume":"v"}`, A, S),
		dt.Row("DELETE", in+"/volumes/v?project=bank", "", write...),
	}
	td.CheckRBAC(t, roles, rows, "/1.0/instances", "/1.0/images", "/1.0/host")
}

// TestFourEyesDelete: deleting an instance in a protected project files an approval and
// changes nothing; a second identity's approval carries the deletion out (record, usage and VM
// directory gone) through the same handler.
func TestFourEyesDelete(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 2*time.Minute)
	td.MustProject(t, "vault", true)
	buildImage(t, c, "busy")
	no := false
	op, err := c.CreateInstance(ctx, "vault", api.InstancesPost{Name: "ledger", Image: "busy", VCPUs: 1, Memory: 128 << 20, Start: &no})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatal(err)
	}
	var pa *client.PendingApproval
	if err := c.DeleteInstance(ctx, "vault", "ledger", false); !errors.As(err, &pa) {
		t.Fatalf("delete in a protected project: %v, want a pending approval", err)
	}
	if in, err := c.GetInstance(ctx, "vault", "ledger"); err != nil || in.Status != api.InstanceStopped {
		t.Fatalf("instance changed before approval: %+v %v", in, err)
	}
	second := td.TokenFor(t, "second-admin", api.RoleAdmin, "")
	a, err := second.DecideApproval(ctx, pa.Approval.ID, true, "decommission")
	if err != nil || a.Status != api.ApprovalApproved {
		t.Fatalf("approve: %+v %v", a, err)
	}
	_, err = c.GetInstance(ctx, "vault", "ledger")
	wantStatus(t, err, 404, "ledger")
	if p, _ := c.GetProject(ctx, "vault"); p.Usage != (api.ProjectUsage{}) {
		t.Fatalf("usage after approved delete: %+v", p.Usage)
	}
	if ents, _ := os.ReadDir(filepath.Join(sd, "instances")); len(ents) != 0 {
		t.Fatalf("VM dirs left: %v", ents)
	}
}
