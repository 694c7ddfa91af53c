package quota

import (
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
)

func TestCheck(t *testing.T) {
	p := api.Project{Name: "bank", Limits: api.ProjectLimits{Instances: 2, VCPUs: 4, Memory: 4 << 30, Disk: 0},
		Usage: api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30, Disk: 100 << 30}}
	tests := []struct {
		name    string
		delta   api.ProjectUsage
		wantErr string
	}{
		{"fits exactly", api.ProjectUsage{Instances: 1, VCPUs: 2, Memory: 2 << 30}, ""},
		{"too many instances", api.ProjectUsage{Instances: 2}, "instances 3 > limit 2"},
		{"too many vcpus", api.ProjectUsage{Instances: 1, VCPUs: 3}, "vcpus 5 > limit 4"},
		{"too much memory", api.ProjectUsage{Memory: 3 << 30}, "memory 5GiB > limit 4GiB"},
		{"disk unlimited", api.ProjectUsage{Disk: 1 << 40}, ""},
		{"shrinking always fits", api.ProjectUsage{Instances: -1, VCPUs: -2}, ""},
		{"names all", api.ProjectUsage{Instances: 5, VCPUs: 5}, "instances 6 > limit 2, vcpus 7 > limit 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(p, tt.delta)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Check = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	u := api.ProjectUsage{Instances: 3, Memory: 1 << 30}
	if err := ValidateLimits("p", api.ProjectLimits{Instances: 2}, u); err == nil || !strings.Contains(err.Error(), "instances limit 2 < 3 in use") {
		t.Fatalf("lowering below usage: %v", err)
	}
	if err := ValidateLimits("p", api.ProjectLimits{Memory: -1}, u); err == nil {
		t.Fatal("negative limit accepted")
	}
	if err := ValidateLimits("p", api.ProjectLimits{Instances: 3, Memory: 1 << 30}, u); err != nil {
		t.Fatalf("limits equal to usage rejected: %v", err)
	}
}
