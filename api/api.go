// Package api is finvirt's public JSON contract: every type the REST API accepts or returns.
// The daemon, the Go client and the CLI all use these types; changing a field here changes
// the wire format, so fields are only ever added.
package api

import "time"

// Version is the API version prefix served by the daemon.
const Version = "1.0"

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// ServerInfo describes the daemon (GET /1.0).
type ServerInfo struct {
	APIVersion  string    `json:"api_version"`
	Version     string    `json:"version"`
	Hostname    string    `json:"hostname"`
	StateDir    string    `json:"state_dir"`
	StartedAt   time.Time `json:"started_at"`
	Identity    string    `json:"identity"`
	Roles       []Grant   `json:"roles"`
	TLSCertSHA  string    `json:"tls_cert_sha256,omitempty"`
	TCPAddress  string    `json:"tcp_address,omitempty"`
	StoreDriver string    `json:"store_driver"`
}

// ProjectLimits are a project's quotas. Zero means unlimited.
type ProjectLimits struct {
	Instances int   `json:"instances" yaml:"instances"`
	VCPUs     int   `json:"vcpus" yaml:"vcpus"`
	Memory    int64 `json:"memory" yaml:"memory"` // bytes
	Disk      int64 `json:"disk" yaml:"disk"`     // bytes
}

// ProjectUsage is what a project's objects consume, counted against its limits.
type ProjectUsage struct {
	Instances int   `json:"instances" yaml:"instances"`
	VCPUs     int   `json:"vcpus" yaml:"vcpus"`
	Memory    int64 `json:"memory" yaml:"memory"`
	Disk      int64 `json:"disk" yaml:"disk"`
}

// Project is a tenant: a bank division, a securities desk, an insurer.
type Project struct {
	Name        string        `json:"name" yaml:"name"`
	Description string        `json:"description" yaml:"description"`
	Protected   bool          `json:"protected" yaml:"protected"`
	Limits      ProjectLimits `json:"limits" yaml:"limits"`
	Usage       ProjectUsage  `json:"usage" yaml:"usage"`
	CreatedAt   time.Time     `json:"created_at" yaml:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at" yaml:"updated_at"`
	Revision    int64         `json:"revision" yaml:"revision"`
}

// ProjectsPost creates a project (POST /1.0/projects).
type ProjectsPost struct {
	Name        string        `json:"name"`
	Description string        `json:"description,omitempty"`
	Protected   bool          `json:"protected,omitempty"`
	Limits      ProjectLimits `json:"limits,omitempty"`
}

// ProjectPatch changes some fields of a project (PATCH /1.0/projects/{name}); nil fields stay.
type ProjectPatch struct {
	Description *string        `json:"description,omitempty"`
	Protected   *bool          `json:"protected,omitempty"`
	Limits      *ProjectLimits `json:"limits,omitempty"`
}

// Roles.
const (
	RoleAdmin    = "admin"    // everything, everywhere
	RoleOperator = "operator" // read and change one project's objects
	RoleAuditor  = "auditor"  // read everything, and the audit log; change nothing
	RoleViewer   = "viewer"   // read one project
)

// Grant gives an identity a role, in one project for project-scoped roles.
type Grant struct {
	Role    string `json:"role" yaml:"role"`
	Project string `json:"project,omitempty" yaml:"project,omitempty"`
}

// Identity is a caller known to the daemon: a token holder or a client certificate.
type Identity struct {
	Name         string    `json:"name" yaml:"name"`
	Grants       []Grant   `json:"grants" yaml:"grants"`
	Certificates []string  `json:"certificates,omitempty" yaml:"certificates,omitempty"` // SHA-256 fingerprints
	CreatedAt    time.Time `json:"created_at" yaml:"created_at"`
}

// TokensPost issues a bearer token for an identity, creating the identity or adding the
// grant to it (POST /1.0/tokens).
type TokensPost struct {
	Identity    string `json:"identity"`
	Role        string `json:"role"`
	Project     string `json:"project,omitempty"`
	Description string `json:"description,omitempty"`
	ExpiresIn   string `json:"expires_in,omitempty"` // Go duration, e.g. "720h"; empty = no expiry
}

// Token describes an issued token. Secret is only ever returned once, at creation.
type Token struct {
	ID          string     `json:"id" yaml:"id"`
	Identity    string     `json:"identity" yaml:"identity"`
	Description string     `json:"description,omitempty" yaml:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at" yaml:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty" yaml:"expires_at,omitempty"`
	Secret      string     `json:"secret,omitempty" yaml:"secret,omitempty"`
}

// CertificatesPost trusts a client certificate for an identity (POST /1.0/certificates).
type CertificatesPost struct {
	Identity    string `json:"identity"`
	Role        string `json:"role"`
	Project     string `json:"project,omitempty"`
	Certificate string `json:"certificate"` // PEM
}

// Approval states.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	ApprovalExpired  = "expired"
	ApprovalFailed   = "failed"
)

// Approval is a destructive request on a protected project waiting for a second identity
// (four-eyes). When approved, the daemon carries out the original request.
type Approval struct {
	ID          string    `json:"id" yaml:"id"`
	Project     string    `json:"project" yaml:"project"`
	Method      string    `json:"method" yaml:"method"`
	Path        string    `json:"path" yaml:"path"`
	Body        string    `json:"body,omitempty" yaml:"body,omitempty"`
	Summary     string    `json:"summary" yaml:"summary"`
	RequestedBy string    `json:"requested_by" yaml:"requested_by"`
	RequestedAt time.Time `json:"requested_at" yaml:"requested_at"`
	Status      string    `json:"status" yaml:"status"`
	DecidedBy   string    `json:"decided_by,omitempty" yaml:"decided_by,omitempty"`
	DecidedAt   time.Time `json:"decided_at,omitzero" yaml:"decided_at,omitempty"`
	Reason      string    `json:"reason,omitempty" yaml:"reason,omitempty"`
	Result      string    `json:"result,omitempty" yaml:"result,omitempty"`
	ExpiresAt   time.Time `json:"expires_at" yaml:"expires_at"`
}

// ApprovalDecision approves or rejects an approval.
type ApprovalDecision struct {
	Reason string `json:"reason,omitempty"`
}

// AuditRecord is one entry of the hash-chained audit log.
type AuditRecord struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Identity  string    `json:"identity"`
	Source    string    `json:"source"`
	Method    string    `json:"method"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Project   string    `json:"project,omitempty"`
	Outcome   string    `json:"outcome"` // success, denied, failed
	Status    int       `json:"status"`
	Detail    string    `json:"detail,omitempty"`
	RequestID string    `json:"request_id"`
	Approver  string    `json:"approver,omitempty"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// Audit outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeDenied  = "denied"
	OutcomeFailed  = "failed"
	OutcomePending = "pending-approval"
)

// AuditVerifyResult is the answer of GET /1.0/audit/verify.
type AuditVerifyResult struct {
	OK        bool   `json:"ok"`
	Records   uint64 `json:"records"`
	HeadHash  string `json:"head_hash"`
	FirstBad  uint64 `json:"first_bad,omitempty"`
	Problem   string `json:"problem,omitempty"`
	CheckedAt string `json:"checked_at"`
}

// Operation states.
const (
	OperationRunning   = "running"
	OperationSuccess   = "success"
	OperationFailure   = "failure"
	OperationCancelled = "cancelled"
)

// Operation is long-running work started by a request (GET /1.0/operations/{id}).
type Operation struct {
	ID          string            `json:"id" yaml:"id"`
	Description string            `json:"description" yaml:"description"`
	Project     string            `json:"project,omitempty" yaml:"project,omitempty"`
	Status      string            `json:"status" yaml:"status"`
	Progress    int               `json:"progress" yaml:"progress"` // 0-100
	Message     string            `json:"message,omitempty" yaml:"message,omitempty"`
	Error       string            `json:"error,omitempty" yaml:"error,omitempty"`
	CreatedAt   time.Time         `json:"created_at" yaml:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at" yaml:"updated_at"`
	Resources   map[string]string `json:"resources,omitempty" yaml:"resources,omitempty"`
}

// Event is one entry of the event stream (GET /1.0/events, server-sent events).
type Event struct {
	Type     string            `json:"type"` // lifecycle, operation
	Action   string            `json:"action"`
	Source   string            `json:"source"`
	Project  string            `json:"project,omitempty"`
	Identity string            `json:"identity,omitempty"`
	Time     time.Time         `json:"time"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// BackupsPost asks for a consistent backup of the daemon's state database.
type BackupsPost struct {
	Name string `json:"name,omitempty"`
}

// Backup describes a finished state backup.
type Backup struct {
	Name      string    `json:"name"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
}
