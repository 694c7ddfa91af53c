package daemon

import (
	"net/http"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
)

// buildRoutes is the whole API surface. Each entry says who may call it (perm, project),
// how it is audited (action) and whether it needs four-eyes approval in a protected project.
func (d *Daemon) buildRoutes() {
	d.mux = http.NewServeMux()
	d.byPat = map[string]*Route{}
	for _, rt := range []*Route{
		{Method: "GET", Path: "/1.0", Summary: "Server information and the caller's identity", Perm: auth.PermAuthenticated, Reply: api.ServerInfo{}, Handler: (*Daemon).handleInfo},
		{Method: "GET", Path: "/1.0/openapi.json", Summary: "This API's OpenAPI document", Perm: auth.PermAuthenticated, Handler: (*Daemon).handleOpenAPI},
		{Method: "GET", Path: "/1.0/metrics", Summary: "Prometheus metrics", Perm: auth.PermGlobalRead, Handler: (*Daemon).handleMetrics},
		{Method: "GET", Path: "/1.0/events", Summary: "Server-sent event stream of lifecycle and operation events", Perm: auth.PermAuthenticated, Reply: api.Event{}, Handler: (*Daemon).handleEvents},

		{Method: "GET", Path: "/1.0/projects", Summary: "List the projects the caller may see", Perm: auth.PermAuthenticated, Reply: []api.Project{}, Handler: (*Daemon).handleProjectList},
		{Method: "POST", Path: "/1.0/projects", Summary: "Create a project", Perm: auth.PermAdmin, Action: "project.create", Body: api.ProjectsPost{}, Reply: api.Project{}, Status: 201, Handler: (*Daemon).handleProjectCreate},
		{Method: "GET", Path: "/1.0/projects/{name}", Summary: "Show a project with its limits and usage", Perm: auth.PermProjectRead, Project: pathProject("name"), Reply: api.Project{}, Handler: (*Daemon).handleProjectGet},
		{Method: "PATCH", Path: "/1.0/projects/{name}", Summary: "Change a project's description, protection or limits", Perm: auth.PermAdmin, Project: pathProject("name"), Target: pathTarget("project", "name"), Action: "project.update", Destructive: patchDestructive, Body: api.ProjectPatch{}, Reply: api.Project{}, Handler: (*Daemon).handleProjectPatch},
		{Method: "DELETE", Path: "/1.0/projects/{name}", Summary: "Delete an empty project", Perm: auth.PermAdmin, Project: pathProject("name"), Target: pathTarget("project", "name"), Action: "project.delete", Destructive: always, Handler: (*Daemon).handleProjectDelete},

		{Method: "GET", Path: "/1.0/identities", Summary: "List identities and their grants", Perm: auth.PermGlobalRead, Reply: []api.Identity{}, Handler: (*Daemon).handleIdentityList},
		{Method: "GET", Path: "/1.0/identities/{name}", Summary: "Show an identity", Perm: auth.PermGlobalRead, Reply: api.Identity{}, Handler: (*Daemon).handleIdentityGet},
		{Method: "DELETE", Path: "/1.0/identities/{name}", Summary: "Delete an identity with its tokens and certificates", Perm: auth.PermAdmin, Target: pathTarget("identity", "name"), Action: "identity.delete", Handler: (*Daemon).handleIdentityDelete},
		{Method: "GET", Path: "/1.0/tokens", Summary: "List issued tokens (never their secrets)", Perm: auth.PermGlobalRead, Reply: []api.Token{}, Handler: (*Daemon).handleTokenList},
		{Method: "POST", Path: "/1.0/tokens", Summary: "Issue a bearer token, granting the identity a role", Perm: auth.PermAdmin, Action: "token.create", Body: api.TokensPost{}, Reply: api.Token{}, Status: 201, Handler: (*Daemon).handleTokenCreate},
		{Method: "DELETE", Path: "/1.0/tokens/{id}", Summary: "Revoke a token", Perm: auth.PermAdmin, Target: pathTarget("token", "id"), Action: "token.revoke", Handler: (*Daemon).handleTokenDelete},
		{Method: "POST", Path: "/1.0/certificates", Summary: "Trust a client certificate for an identity, granting a role", Perm: auth.PermAdmin, Action: "certificate.add", Body: api.CertificatesPost{}, Reply: api.Identity{}, Status: 201, Handler: (*Daemon).handleCertificateAdd},

		{Method: "GET", Path: "/1.0/approvals", Summary: "List four-eyes approvals the caller may see", Perm: auth.PermAuthenticated, Reply: []api.Approval{}, Handler: (*Daemon).handleApprovalList},
		{Method: "GET", Path: "/1.0/approvals/{id}", Summary: "Show an approval", Perm: auth.PermAuthenticated, Reply: api.Approval{}, Handler: (*Daemon).handleApprovalGet},
		{Method: "POST", Path: "/1.0/approvals/{id}/approve", Summary: "Approve and carry out a request (a different identity than the requester)", Perm: auth.PermApprove, Project: approvalProject, Target: pathTarget("approval", "id"), Action: "approval.approve", Body: api.ApprovalDecision{}, Reply: api.Approval{}, Handler: approvalDecide(true)},
		{Method: "POST", Path: "/1.0/approvals/{id}/reject", Summary: "Reject a request", Perm: auth.PermApprove, Project: approvalProject, Target: pathTarget("approval", "id"), Action: "approval.reject", Body: api.ApprovalDecision{}, Reply: api.Approval{}, Handler: approvalDecide(false)},

		{Method: "GET", Path: "/1.0/audit", Summary: "Audit records (?since=RFC3339|seq|duration, ?limit=N, ?format=jsonl for SIEM export)", Perm: auth.PermAuditRead, Reply: []api.AuditRecord{}, Handler: (*Daemon).handleAuditList},
		{Method: "GET", Path: "/1.0/audit/verify", Summary: "Verify the audit hash chain", Perm: auth.PermAuditRead, Reply: api.AuditVerifyResult{}, Handler: (*Daemon).handleAuditVerify},

		{Method: "GET", Path: "/1.0/operations", Summary: "List operations", Perm: auth.PermAuthenticated, Reply: []api.Operation{}, Handler: (*Daemon).handleOperationList},
		{Method: "GET", Path: "/1.0/operations/{id}", Summary: "Show an operation (?wait=seconds blocks until it ends)", Perm: auth.PermAuthenticated, Reply: api.Operation{}, Handler: (*Daemon).handleOperationGet},
		{Method: "DELETE", Path: "/1.0/operations/{id}", Summary: "Cancel a running operation", Perm: auth.PermAuthenticated, Target: pathTarget("operation", "id"), Action: "operation.cancel", Reply: api.Operation{}, Handler: (*Daemon).handleOperationCancel},

		{Method: "POST", Path: "/1.0/backups", Summary: "Back up the state database (an operation)", Perm: auth.PermAdmin, Action: "backup.create", Body: api.BackupsPost{}, Reply: api.Operation{}, Status: 202, Handler: (*Daemon).handleBackupCreate},
	} {
		d.register(rt)
	}
	// Subsystem routes are added by loadSubsystems; "/" catches everything else.
	d.mux.HandleFunc("/", d.routeNotFound)
}
