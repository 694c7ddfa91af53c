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
	d.byPat = map[string]*route{}
	for _, rt := range []*route{
		{method: "GET", path: "/1.0", summary: "Server information and the caller's identity", perm: auth.PermAuthenticated, response: api.ServerInfo{}, handler: (*Daemon).handleInfo},
		{method: "GET", path: "/1.0/openapi.json", summary: "This API's OpenAPI document", perm: auth.PermAuthenticated, handler: (*Daemon).handleOpenAPI},
		{method: "GET", path: "/1.0/metrics", summary: "Prometheus metrics", perm: auth.PermGlobalRead, handler: (*Daemon).handleMetrics},
		{method: "GET", path: "/1.0/events", summary: "Server-sent event stream of lifecycle and operation events", perm: auth.PermAuthenticated, response: api.Event{}, handler: (*Daemon).handleEvents},

		{method: "GET", path: "/1.0/projects", summary: "List the projects the caller may see", perm: auth.PermAuthenticated, response: []api.Project{}, handler: (*Daemon).handleProjectList},
		{method: "POST", path: "/1.0/projects", summary: "Create a project", perm: auth.PermAdmin, action: "project.create", request: api.ProjectsPost{}, response: api.Project{}, status: 201, handler: (*Daemon).handleProjectCreate},
		{method: "GET", path: "/1.0/projects/{name}", summary: "Show a project with its limits and usage", perm: auth.PermProjectRead, project: pathProject("name"), response: api.Project{}, handler: (*Daemon).handleProjectGet},
		{method: "PATCH", path: "/1.0/projects/{name}", summary: "Change a project's description, protection or limits", perm: auth.PermAdmin, project: pathProject("name"), target: pathTarget("project", "name"), action: "project.update", destructive: patchDestructive, request: api.ProjectPatch{}, response: api.Project{}, handler: (*Daemon).handleProjectPatch},
		{method: "DELETE", path: "/1.0/projects/{name}", summary: "Delete an empty project", perm: auth.PermAdmin, project: pathProject("name"), target: pathTarget("project", "name"), action: "project.delete", destructive: always, handler: (*Daemon).handleProjectDelete},

		{method: "GET", path: "/1.0/identities", summary: "List identities and their grants", perm: auth.PermGlobalRead, response: []api.Identity{}, handler: (*Daemon).handleIdentityList},
		{method: "GET", path: "/1.0/identities/{name}", summary: "Show an identity", perm: auth.PermGlobalRead, response: api.Identity{}, handler: (*Daemon).handleIdentityGet},
		{method: "DELETE", path: "/1.0/identities/{name}", summary: "Delete an identity with its tokens and certificates", perm: auth.PermAdmin, target: pathTarget("identity", "name"), action: "identity.delete", handler: (*Daemon).handleIdentityDelete},
		{method: "GET", path: "/1.0/tokens", summary: "List issued tokens (never their secrets)", perm: auth.PermGlobalRead, response: []api.Token{}, handler: (*Daemon).handleTokenList},
		{method: "POST", path: "/1.0/tokens", summary: "Issue a bearer token, granting the identity a role", perm: auth.PermAdmin, action: "token.create", request: api.TokensPost{}, response: api.Token{}, status: 201, handler: (*Daemon).handleTokenCreate},
		{method: "DELETE", path: "/1.0/tokens/{id}", summary: "Revoke a token", perm: auth.PermAdmin, target: pathTarget("token", "id"), action: "token.revoke", handler: (*Daemon).handleTokenDelete},
		{method: "POST", path: "/1.0/certificates", summary: "Trust a client certificate for an identity, granting a role", perm: auth.PermAdmin, action: "certificate.add", request: api.CertificatesPost{}, response: api.Identity{}, status: 201, handler: (*Daemon).handleCertificateAdd},

		{method: "GET", path: "/1.0/approvals", summary: "List four-eyes approvals the caller may see", perm: auth.PermAuthenticated, response: []api.Approval{}, handler: (*Daemon).handleApprovalList},
		{method: "GET", path: "/1.0/approvals/{id}", summary: "Show an approval", perm: auth.PermAuthenticated, response: api.Approval{}, handler: (*Daemon).handleApprovalGet},
		{method: "POST", path: "/1.0/approvals/{id}/approve", summary: "Approve and carry out a request (a different identity than the requester)", perm: auth.PermApprove, project: approvalProject, target: pathTarget("approval", "id"), action: "approval.approve", request: api.ApprovalDecision{}, response: api.Approval{}, handler: approvalDecide(true)},
		{method: "POST", path: "/1.0/approvals/{id}/reject", summary: "Reject a request", perm: auth.PermApprove, project: approvalProject, target: pathTarget("approval", "id"), action: "approval.reject", request: api.ApprovalDecision{}, response: api.Approval{}, handler: approvalDecide(false)},

		{method: "GET", path: "/1.0/audit", summary: "Audit records (?since=RFC3339|seq|duration, ?limit=N, ?format=jsonl for SIEM export)", perm: auth.PermAuditRead, response: []api.AuditRecord{}, handler: (*Daemon).handleAuditList},
		{method: "GET", path: "/1.0/audit/verify", summary: "Verify the audit hash chain", perm: auth.PermAuditRead, response: api.AuditVerifyResult{}, handler: (*Daemon).handleAuditVerify},

		{method: "GET", path: "/1.0/operations", summary: "List operations", perm: auth.PermAuthenticated, response: []api.Operation{}, handler: (*Daemon).handleOperationList},
		{method: "GET", path: "/1.0/operations/{id}", summary: "Show an operation (?wait=seconds blocks until it ends)", perm: auth.PermAuthenticated, response: api.Operation{}, handler: (*Daemon).handleOperationGet},
		{method: "DELETE", path: "/1.0/operations/{id}", summary: "Cancel a running operation", perm: auth.PermAuthenticated, target: pathTarget("operation", "id"), action: "operation.cancel", response: api.Operation{}, handler: (*Daemon).handleOperationCancel},

		{method: "POST", path: "/1.0/backups", summary: "Back up the state database (an operation)", perm: auth.PermAdmin, action: "backup.create", request: api.BackupsPost{}, response: api.Operation{}, status: 202, handler: (*Daemon).handleBackupCreate},
	} {
		d.register(rt)
	}
	// Subsystem routes are added by loadSubsystems; "/" catches everything else.
	d.mux.HandleFunc("/", d.routeNotFound)
}
