package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/store"
)

// TestAdjustUsageEnforcesQuota checks the one path every quota-counted create, resize and
// delete takes: growth past a limit is refused inside the transaction and changes nothing.
func TestAdjustUsageEnforcesQuota(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	if _, err := td.Local.CreateProject(ctx, api.ProjectsPost{Name: "bank", Limits: api.ProjectLimits{Instances: 2, VCPUs: 4, Memory: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	adjust := func(delta api.ProjectUsage) error {
		return td.D.Store().Update(ctx, func(tx store.Tx) error {
			if _, err := daemon.AdjustUsage(tx, "bank", delta); err != nil {
				return err
			}
			return tx.Put("test/marker", []byte("x"))
		})
	}
	steps := []struct {
		delta   api.ProjectUsage
		wantErr string
		want    api.ProjectUsage
	}{
		{api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}, "", api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}},
		{api.ProjectUsage{Instances: 1, VCPUs: 4, Memory: 1 << 30}, "vcpus 6 > limit 4", api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}},
		{api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}, "", api.ProjectUsage{Instances: 2, VCPUs: 4, Memory: 4 << 30}},
		{api.ProjectUsage{Instances: 1}, "instances 3 > limit 2", api.ProjectUsage{Instances: 2, VCPUs: 4, Memory: 4 << 30}},
		{api.ProjectUsage{Instances: -1, VCPUs: -2, Memory: -(2 << 30)}, "", api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}},
		{api.ProjectUsage{Instances: -5}, "negative", api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}},
	}
	for i, s := range steps {
		td.D.Store().Update(ctx, func(tx store.Tx) error { tx.Delete("test/marker"); return nil })
		err := adjust(s.delta)
		if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
			t.Fatalf("step %d: err = %v, want %q", i, err, s.wantErr)
		}
		p, _ := td.Local.GetProject(ctx, "bank")
		if p.Usage != s.want {
			t.Fatalf("step %d: usage = %+v, want %+v", i, p.Usage, s.want)
		}
		if _, err := td.D.Store().Get(ctx, "test/marker"); (err == nil) != (s.wantErr == "") {
			t.Fatalf("step %d: the rest of the transaction committed=%v despite err=%v", i, err == nil, s.wantErr)
		}
	}
	// A project with objects cannot be deleted, and its limits cannot drop below usage.
	if err := td.Local.DeleteProject(ctx, "bank"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("delete of project in use: %v", err)
	}
	if _, err := td.Local.UpdateProject(ctx, "bank", api.ProjectPatch{Limits: &api.ProjectLimits{Instances: 0, VCPUs: 1}}); err == nil || !strings.Contains(err.Error(), "vcpus limit 1 < 2 in use") {
		t.Fatalf("limit below usage: %v", err)
	}
}
