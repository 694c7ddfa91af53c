package networks_test

import (
	"context"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
)

// TestProjectWithNetworksCannotBeDeleted: networks and ACLs are not in the quota, so the
// core asks this subsystem before deleting a project.
func TestProjectWithNetworksCannotBeDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.projects(t, "treasury")
	e.mustNetwork(t, "treasury", api.NetworksPost{Name: "fx", Driver: "bridge", Subnet: "10.77.0.0/24"})
	err := e.c().DeleteProject(ctx, "treasury")
	if err == nil || !strings.Contains(err.Error(), "still holds 1 networks") {
		t.Fatalf("delete of a project with a network: %v", err)
	}
	if err := e.c().DeleteNetwork(ctx, "treasury", "fx"); err != nil {
		t.Fatal(err)
	}
	if err := e.c().DeleteProject(ctx, "treasury"); err != nil {
		t.Fatalf("delete of the emptied project: %v", err)
	}
}
