package instances_test

import (
	"testing"

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
		dt.Row("GET", in+"/metrics?project=bank", "", read...),
	}
	td.CheckRBAC(t, roles, rows, "/1.0/instances", "/1.0/images", "/1.0/host")
}
