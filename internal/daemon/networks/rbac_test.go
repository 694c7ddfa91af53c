package networks_test

import (
	"context"
	"testing"

	"github.com/finvirt/finvirt/api"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

func TestNetworkRBAC(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	roles := e.td.StandardRoles(t)
	if _, err := e.c().CreateNetworkACL(ctx, "bank", api.NetworkACLsPost{Name: "pay-api"}); err != nil {
		t.Fatal(err)
	}
	e.mustNetwork(t, "bank", api.NetworksPost{Name: "payments", Subnet: "10.63.1.0/24", ACLs: []string{"pay-api"}})
	A, Au, O, V := dt.Admin, dt.Auditor, dt.OpBank, dt.ViewerBank
	readers := []string{A, Au, O, V}
	writers := []string{A, O}
	rows := []dt.RBACRow{
		dt.Row("GET", "/1.0/networks?project=bank", "", readers...),
		dt.Row("POST", "/1.0/networks?project=bank", `{"name":"Bad Name","subnet":"10.63.2.0/24"}`, writers...),
		dt.Row("GET", "/1.0/networks/payments?project=bank", "", readers...),
		dt.Row("DELETE", "/1.0/networks/nosuch?project=bank", "", writers...),
		dt.Row("GET", "/1.0/networks/payments/leases?project=bank", "", readers...),
		dt.Row("GET", "/1.0/network-acls?project=bank", "", readers...),
		dt.Row("POST", "/1.0/network-acls?project=bank", `{"name":"Bad Name"}`, writers...),
		dt.Row("GET", "/1.0/network-acls/pay-api?project=bank", "", readers...),
		dt.Row("DELETE", "/1.0/network-acls/nosuch?project=bank", "", writers...),
		dt.Row("POST", "/1.0/network-acls/pay-api/rules?project=bank", `{"direction":"ingress","protocol":"tcp","ports":["0"]}`, writers...),
		dt.Row("DELETE", "/1.0/network-acls/pay-api/rules/9?project=bank", "", writers...),
		dt.Row("POST", "/1.0/network-segmentation-report", `{"tcp_ports":[0]}`, A, Au),
		dt.Row("GET", "/1.0/networks?project=securities", "", A, Au, dt.OpSec),
		dt.Row("POST", "/1.0/networks?project=securities", `{"name":"Bad Name"}`, A, dt.OpSec),
	}
	// The routes' body and reply types render into the OpenAPI document.
	if st := dt.StatusOf(t, e.c(), "GET", "/1.0/openapi.json", ""); st != 200 {
		t.Errorf("openapi.json: %d", st)
	}
	e.td.CheckRBAC(t, roles, rows, "/1.0/networks", "/1.0/network-acls", "/1.0/network-segmentation-report")
}
