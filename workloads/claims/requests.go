package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FNOLRequest is the first notice of loss (POST /v1/claims).
type FNOLRequest struct {
	ID            string   `json:"id,omitempty"` // optional client-chosen id (<= 48 chars)
	PolicyID      string   `json:"policy_id"`
	Claimant      Claimant `json:"claimant"`
	LossDate      string   `json:"loss_date"` // YYYY-MM-DD
	ClaimedAmount int64    `json:"claimed_amount"`
	Currency      string   `json:"currency"`
	Description   string   `json:"description,omitempty"`
	FraudFlags    []string `json:"fraud_flags,omitempty"`
	Actor         string   `json:"actor,omitempty"`
}

// TransitionRequest is POST /v1/claims/{id}/transition.
type TransitionRequest struct {
	To    State  `json:"to"`
	Actor string `json:"actor,omitempty"`
	Note  string `json:"note,omitempty"`
}

// EvaluateRequest is POST /v1/claims/{id}/evaluate. Reserve is a pointer so
// a missing reserve is told apart from an explicit 0.
type EvaluateRequest struct {
	Reserve    *int64   `json:"reserve"`
	Actor      string   `json:"actor,omitempty"`
	Note       string   `json:"note,omitempty"`
	FraudFlags []string `json:"fraud_flags,omitempty"`
}

// ApproveRequest is POST /v1/claims/{id}/approve.
type ApproveRequest struct {
	Approver string `json:"approver,omitempty"`
	Amount   *int64 `json:"amount"`
	Note     string `json:"note,omitempty"`
}

// DenyRequest is POST /v1/claims/{id}/deny.
type DenyRequest struct {
	Actor  string `json:"actor,omitempty"`
	Reason string `json:"reason"`
}

// BatchOp is one operation of POST /v1/batch; Op selects which fields apply.
type BatchOp struct {
	Op         string       `json:"op"` // fnol | transition | evaluate | approve | deny
	ID         string       `json:"id,omitempty"`
	Claim      *FNOLRequest `json:"claim,omitempty"`
	To         State        `json:"to,omitempty"`
	Actor      string       `json:"actor,omitempty"`
	Note       string       `json:"note,omitempty"`
	Reserve    *int64       `json:"reserve,omitempty"`
	Approver   string       `json:"approver,omitempty"`
	Amount     *int64       `json:"amount,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	FraudFlags []string     `json:"fraud_flags,omitempty"`
}

// BatchRequest is POST /v1/batch.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchResult reports one op of a batch.
type BatchResult struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	State  State  `json:"state,omitempty"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
}

// WaitRequest is POST /v1/claims/wait: block until the claims reach State.
type WaitRequest struct {
	IDs       []string `json:"ids"`
	State     State    `json:"state"`
	TimeoutMS int      `json:"timeout_ms,omitempty"`
}

// MaxBatchOps bounds one batch so a single request cannot hold the writer.
const MaxBatchOps = 5000

// DecodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data, and names the body ("what") and the fix.
func DecodeStrict(body []byte, v any, what string) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("malformed_json", "%s body is empty; send a JSON object", what)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badRequest("unknown_field", "%s body has unknown field %s; remove it (see docs/claims.md)", what, f)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("malformed_json", "%s field %q must be a JSON %s, got %s", what, te.Field, te.Type.String(), te.Value)
		}
		return badRequest("malformed_json", "%s body is not valid JSON: %v", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("malformed_json", "%s body has data after the JSON object; send exactly one object", what)
	}
	return nil
}

// validate checks an FNOL independent of store state.
func (r *FNOLRequest) validate() *Error {
	if r.ID != "" && !claimIDRE.MatchString(r.ID) {
		return badRequest("invalid_id", "claim id %q must be 1-%d chars of [A-Za-z0-9._:-]", r.ID, MaxClaimIDLen)
	}
	if !idRE.MatchString(r.PolicyID) {
		return badRequest("invalid_policy_id", "FNOL policy_id %q must be 1-64 chars of [A-Za-z0-9._:-]", r.PolicyID)
	}
	if strings.TrimSpace(r.Claimant.Name) == "" {
		return badRequest("claimant_name_missing", "FNOL claimant.name is required")
	}
	if !idRE.MatchString(r.Claimant.AccountID) {
		return badRequest("invalid_claimant_account", "FNOL claimant.account_id %q must be a remit account id (1-64 chars of [A-Za-z0-9._:-])", r.Claimant.AccountID)
	}
	if !validDate(r.LossDate) {
		return badRequest("invalid_loss_date", "FNOL loss_date %q must be a date YYYY-MM-DD", r.LossDate)
	}
	if r.ClaimedAmount <= 0 {
		return badRequest("invalid_amount", "FNOL claimed_amount %d must be a positive integer in minor units", r.ClaimedAmount)
	}
	if !currencyRE.MatchString(r.Currency) {
		return badRequest("invalid_currency", "FNOL currency %q must be a 3-letter ISO 4217 code such as EUR", r.Currency)
	}
	for _, f := range r.FraudFlags {
		if strings.TrimSpace(f) == "" {
			return badRequest("invalid_fraud_flag", "FNOL fraud_flags must not contain empty strings")
		}
	}
	return nil
}

func validDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	var y, m, d int
	if _, err := fmt.Sscanf(s, "%4d-%2d-%2d", &y, &m, &d); err != nil {
		return false
	}
	return y >= 1900 && m >= 1 && m <= 12 && d >= 1 && d <= 31
}

// validatePolicy checks a policy upsert.
func validatePolicy(p *Policy) *Error {
	if !idRE.MatchString(p.ID) {
		return badRequest("invalid_policy_id", "policy id %q must be 1-64 chars of [A-Za-z0-9._:-]", p.ID)
	}
	switch p.Status {
	case "active", "lapsed", "cancelled":
	default:
		return badRequest("invalid_policy_status", "policy %q status %q must be active, lapsed or cancelled", p.ID, p.Status)
	}
	if !currencyRE.MatchString(p.Currency) {
		return badRequest("invalid_currency", "policy %q currency %q must be a 3-letter ISO 4217 code", p.ID, p.Currency)
	}
	if p.CoverageLimit < 0 {
		return badRequest("invalid_amount", "policy %q coverage_limit %d must be >= 0 (0 = unlimited)", p.ID, p.CoverageLimit)
	}
	return nil
}

// resolveActor merges the X-Actor header with a body identity: either may
// be given, both must agree, one is required.
func resolveActor(header, body, field string) (string, *Error) {
	switch {
	case header != "" && body != "" && header != body:
		return "", badRequest("actor_mismatch", "X-Actor header %q and body %s %q disagree; send one identity", header, field, body)
	case body != "":
		header = body
	case header == "":
		return "", badRequest("actor_missing", "identity missing: send header X-Actor or body field %q", field)
	}
	if len(header) > 128 {
		return "", badRequest("invalid_actor", "identity %q is longer than 128 chars", header[:32]+"...")
	}
	return header, nil
}
