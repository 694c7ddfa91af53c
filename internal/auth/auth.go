// Package auth decides who a caller is and what it may do: roles, grants, segregation of
// duties, and bearer-token secrets. It holds no state of its own; the daemon keeps
// identities and tokens in the store.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/finvirt/finvirt/api"
)

// Perm is what a route needs.
type Perm int

// Permissions, from least to most.
const (
	// PermAuthenticated: any known identity (server info, own identity).
	PermAuthenticated Perm = iota + 1
	// PermProjectRead: read objects of the target project.
	PermProjectRead
	// PermProjectWrite: change objects of the target project.
	PermProjectWrite
	// PermGlobalRead: read every project (list all projects, operations of all).
	PermGlobalRead
	// PermAuditRead: read and verify the audit log.
	PermAuditRead
	// PermApprove: decide four-eyes approvals for the target project.
	PermApprove
	// PermAdmin: create and delete projects, change quotas, manage identities and tokens.
	PermAdmin
)

func (p Perm) String() string {
	switch p {
	case PermAuthenticated:
		return "authenticated"
	case PermProjectRead:
		return "project-read"
	case PermProjectWrite:
		return "project-write"
	case PermGlobalRead:
		return "global-read"
	case PermAuditRead:
		return "audit-read"
	case PermApprove:
		return "approve"
	case PermAdmin:
		return "admin"
	}
	return "unknown"
}

// Roles lists the valid role names.
var Roles = []string{api.RoleAdmin, api.RoleOperator, api.RoleAuditor, api.RoleViewer}

// ProjectScoped reports whether a role applies to one project.
func ProjectScoped(role string) bool { return role == api.RoleOperator || role == api.RoleViewer }

// ValidateGrant checks a grant's shape.
func ValidateGrant(g api.Grant) error {
	switch g.Role {
	case api.RoleAdmin, api.RoleAuditor:
		if g.Project != "" {
			return fmt.Errorf("role %q applies to every project: drop --project", g.Role)
		}
	case api.RoleOperator, api.RoleViewer:
		if g.Project == "" {
			return fmt.Errorf("role %q needs a project: add --project NAME", g.Role)
		}
	default:
		return fmt.Errorf("unknown role %q: use one of %s", g.Role, strings.Join(Roles, ", "))
	}
	return nil
}

// CheckSegregation enforces segregation of duties on a set of grants: whoever operates a
// project must not also audit it (auditors see every project, so an auditor may operate
// none), and the same grant is not given twice.
func CheckSegregation(identity string, grants []api.Grant) error {
	auditor := false
	var operates []string
	seen := map[api.Grant]bool{}
	for _, g := range grants {
		if seen[g] {
			return fmt.Errorf("identity %q already has role %s%s", identity, g.Role, inProject(g.Project))
		}
		seen[g] = true
		switch g.Role {
		case api.RoleAuditor:
			auditor = true
		case api.RoleOperator, api.RoleAdmin:
			if g.Project == "" {
				operates = append(operates, "every project (admin)")
			} else {
				operates = append(operates, "project "+g.Project)
			}
		}
	}
	if auditor && len(operates) > 0 {
		return fmt.Errorf("segregation of duties: identity %q cannot be auditor and also operate %s; use a separate identity for auditing", identity, strings.Join(operates, ", "))
	}
	return nil
}

func inProject(p string) string {
	if p == "" {
		return ""
	}
	return " in project " + p
}

// Allowed decides whether grants give perm on project (empty project: a global action).
func Allowed(grants []api.Grant, perm Perm, project string) bool {
	for _, g := range grants {
		if grantAllows(g, perm, project) {
			return true
		}
	}
	return false
}

func grantAllows(g api.Grant, perm Perm, project string) bool {
	switch g.Role {
	case api.RoleAdmin:
		return true
	case api.RoleAuditor:
		switch perm {
		case PermAuthenticated, PermProjectRead, PermGlobalRead, PermAuditRead:
			return true
		}
	case api.RoleOperator:
		switch perm {
		case PermAuthenticated:
			return true
		case PermProjectRead, PermProjectWrite, PermApprove:
			return project != "" && project == g.Project
		}
	case api.RoleViewer:
		switch perm {
		case PermAuthenticated:
			return true
		case PermProjectRead:
			return project != "" && project == g.Project
		}
	}
	return false
}

// VisibleProject reports whether a caller may see project in a listing.
func VisibleProject(grants []api.Grant, project string) bool {
	return Allowed(grants, PermGlobalRead, "") || Allowed(grants, PermProjectRead, project)
}

// Token secrets look like "fvt_<id>.<secret>": the id finds the stored record, the secret
// is compared against its SHA-256, so the database never holds a usable token.
const tokenPrefix = "fvt_"

// NewTokenSecret returns a fresh token id and the full bearer secret.
func NewTokenSecret() (id, bearer string, err error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", "", err
	}
	id = hex.EncodeToString(idb[:])
	return id, tokenPrefix + id + "." + hex.EncodeToString(sec[:]), nil
}

// ParseBearer splits a bearer secret into its id; malformed secrets are rejected.
func ParseBearer(bearer string) (id string, err error) {
	rest, ok := strings.CutPrefix(bearer, tokenPrefix)
	if !ok {
		return "", fmt.Errorf("malformed token: finvirt tokens start with %q", tokenPrefix)
	}
	id, sec, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 16 || len(sec) != 64 {
		return "", fmt.Errorf("malformed token: expected fvt_<16 hex>.<64 hex>")
	}
	return id, nil
}

// HashSecret is what the store keeps of a bearer secret.
func HashSecret(bearer string) string {
	h := sha256.Sum256([]byte(bearer))
	return hex.EncodeToString(h[:])
}

// SecretMatches compares a presented bearer with a stored hash in constant time.
func SecretMatches(bearer, storedHash string) bool {
	got := HashSecret(bearer)
	return subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}

// CertFingerprint is the SHA-256 of a DER certificate, hex encoded.
func CertFingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}
