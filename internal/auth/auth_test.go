package auth

import (
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
)

func TestAllowed(t *testing.T) {
	admin := []api.Grant{{Role: api.RoleAdmin}}
	auditor := []api.Grant{{Role: api.RoleAuditor}}
	opBank := []api.Grant{{Role: api.RoleOperator, Project: "bank"}}
	viewBank := []api.Grant{{Role: api.RoleViewer, Project: "bank"}}
	tests := []struct {
		name    string
		grants  []api.Grant
		perm    Perm
		project string
		want    bool
	}{
		{"admin anything", admin, PermAdmin, "", true},
		{"auditor reads audit", auditor, PermAuditRead, "", true},
		{"auditor reads any project", auditor, PermProjectRead, "bank", true},
		{"auditor cannot write", auditor, PermProjectWrite, "bank", false},
		{"auditor cannot approve", auditor, PermApprove, "bank", false},
		{"operator writes own project", opBank, PermProjectWrite, "bank", true},
		{"operator not other project", opBank, PermProjectWrite, "securities", false},
		{"operator approves own project", opBank, PermApprove, "bank", true},
		{"operator no audit", opBank, PermAuditRead, "", false},
		{"operator no global read", opBank, PermGlobalRead, "", false},
		{"operator not admin", opBank, PermAdmin, "", false},
		{"viewer reads own", viewBank, PermProjectRead, "bank", true},
		{"viewer cannot write own", viewBank, PermProjectWrite, "bank", false},
		{"viewer not other", viewBank, PermProjectRead, "insurance", false},
		{"no grants", nil, PermAuthenticated, "", false},
		{"project-scoped perm without project", opBank, PermProjectRead, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Allowed(tt.grants, tt.perm, tt.project); got != tt.want {
				t.Fatalf("Allowed(%v, %v, %q) = %v, want %v", tt.grants, tt.perm, tt.project, got, tt.want)
			}
		})
	}
}

func TestSegregationAndGrants(t *testing.T) {
	tests := []struct {
		name    string
		grants  []api.Grant
		wantErr string
	}{
		{"operator of two projects", []api.Grant{{Role: "operator", Project: "a"}, {Role: "operator", Project: "b"}}, ""},
		{"auditor alone", []api.Grant{{Role: "auditor"}}, ""},
		{"auditor and operator", []api.Grant{{Role: "auditor"}, {Role: "operator", Project: "bank"}}, "segregation of duties"},
		{"auditor and admin", []api.Grant{{Role: "admin"}, {Role: "auditor"}}, "segregation of duties"},
		{"auditor and viewer", []api.Grant{{Role: "auditor"}, {Role: "viewer", Project: "bank"}}, ""},
		{"duplicate", []api.Grant{{Role: "viewer", Project: "a"}, {Role: "viewer", Project: "a"}}, "already has"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSegregation("alice", tt.grants)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("CheckSegregation = %v, want %q", err, tt.wantErr)
			}
		})
	}
	for _, g := range []api.Grant{{Role: "operator"}, {Role: "admin", Project: "x"}, {Role: "root"}} {
		if ValidateGrant(g) == nil {
			t.Errorf("ValidateGrant(%v) accepted a bad grant", g)
		}
	}
}

func TestTokens(t *testing.T) {
	id, bearer, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBearer(bearer)
	if err != nil || got != id {
		t.Fatalf("ParseBearer = %q, %v; want %q", got, err, id)
	}
	h := HashSecret(bearer)
	if !SecretMatches(bearer, h) || SecretMatches(bearer+"0", h) {
		t.Fatal("SecretMatches wrong")
	}
	for _, bad := range []string{"", "abc", "fvt_", "fvt_00.11", bearer[:len(bearer)-1]} {
		if _, err := ParseBearer(bad); err == nil {
			t.Errorf("ParseBearer(%q) accepted", bad)
		}
	}
}
