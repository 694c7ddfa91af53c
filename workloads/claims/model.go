// Package claims implements the finvirt insurance-claims reference workload:
// a claim lifecycle state machine persisted in bbolt, auto-adjudication and
// four-eyes approval rules, and payouts through remit via a transactional
// outbox so that a crash between "approved" and "paid" neither loses nor
// duplicates a payment.
package claims

import (
	"fmt"
	"regexp"
	"sort"
	"time"
)

// State is a claim lifecycle state.
type State string

// Lifecycle states. Approved and Paid are only reached through the approve
// endpoint and the payout dispatcher respectively, never through a plain
// transition, so the money-moving rules cannot be bypassed.
const (
	StateFNOL          State = "fnol"
	StateTriage        State = "triage"
	StateInvestigation State = "investigation"
	StateEvaluated     State = "evaluated"
	StateApproved      State = "approved"
	StateDenied        State = "denied"
	StatePaid          State = "paid"
	StateClosed        State = "closed"
	StateWithdrawn     State = "withdrawn"
)

// AllStates lists the states in lifecycle order (used for stats and listing).
var AllStates = []State{StateFNOL, StateTriage, StateInvestigation, StateEvaluated,
	StateApproved, StateDenied, StatePaid, StateClosed, StateWithdrawn}

// Action names the operation that performs a transition. Each edge of the
// table belongs to exactly one action, so the generic /transition endpoint
// cannot, for example, approve a claim without the approval rules.
type Action string

const (
	ActTransition Action = "transition" // POST /v1/claims/{id}/transition
	ActReopen     Action = "reopen"     // transition back to investigation
	ActWithdraw   Action = "withdraw"   // transition to withdrawn
	ActEvaluate   Action = "evaluate"   // POST /v1/claims/{id}/evaluate
	ActApprove    Action = "approve"    // POST /v1/claims/{id}/approve
	ActDeny       Action = "deny"       // POST /v1/claims/{id}/deny
	ActPay        Action = "pay"        // payout dispatcher after remit ack
)

// transitions is the explicit lifecycle table: from -> to -> action.
var transitions = map[State]map[State]Action{
	StateFNOL:          {StateTriage: ActTransition, StateWithdrawn: ActWithdraw},
	StateTriage:        {StateInvestigation: ActTransition, StateDenied: ActDeny, StateWithdrawn: ActWithdraw},
	StateInvestigation: {StateEvaluated: ActEvaluate, StateDenied: ActDeny, StateWithdrawn: ActWithdraw},
	StateEvaluated:     {StateApproved: ActApprove, StateDenied: ActDeny, StateInvestigation: ActTransition, StateWithdrawn: ActWithdraw},
	StateApproved:      {StatePaid: ActPay},
	StatePaid:          {StateClosed: ActTransition},
	StateDenied:        {StateClosed: ActTransition, StateInvestigation: ActReopen},
	StateClosed:        {StateInvestigation: ActReopen},
	StateWithdrawn:     {},
}

// ValidState reports whether s names a lifecycle state.
func ValidState(s State) bool { _, ok := transitions[s]; return ok }

// ActionFor returns the action that moves a claim from -> to, if any.
func ActionFor(from, to State) (Action, bool) {
	a, ok := transitions[from][to]
	return a, ok
}

// allowedTargets lists the states reachable from s (sorted, for messages).
func allowedTargets(s State) []string {
	var out []string
	for to := range transitions[s] {
		out = append(out, string(to))
	}
	sort.Strings(out)
	return out
}

// Claimant is the person paid by the claim.
type Claimant struct {
	Name      string `json:"name"`
	AccountID string `json:"account_id"` // remit account credited by the payout
}

// HistoryEntry records one transition: who, when, from, to, note.
type HistoryEntry struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action Action    `json:"action"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Note   string    `json:"note,omitempty"`
}

// Approval is one approver's sign-off.
type Approval struct {
	Approver string    `json:"approver"`
	Amount   int64     `json:"amount"`
	At       time.Time `json:"at"`
}

// Payout is one payment to the claimant through remit. A claim reopened and
// approved again gets a second payout with a new number, hence a new
// transfer id; a retried payout keeps its id, hence remit deduplicates it.
type Payout struct {
	No         int       `json:"no"`
	TransferID string    `json:"transfer_id"`
	Amount     int64     `json:"amount"`
	Currency   string    `json:"currency"`
	Status     string    `json:"status"` // "pending" | "paid"
	CreatedAt  time.Time `json:"created_at"`
	PaidAt     time.Time `json:"paid_at,omitzero"`
	RemitCode  int       `json:"remit_status,omitempty"` // 201 or 200 (replay)
}

// Claim is the persisted claim record.
type Claim struct {
	ID             string         `json:"id"`
	PolicyID       string         `json:"policy_id"`
	Claimant       Claimant       `json:"claimant"`
	LossDate       string         `json:"loss_date"`
	Description    string         `json:"description,omitempty"`
	ClaimedAmount  int64          `json:"claimed_amount"`
	Currency       string         `json:"currency"`
	Reserve        int64          `json:"reserve"`
	ApprovedAmount int64          `json:"approved_amount"`
	State          State          `json:"state"`
	FraudFlags     []string       `json:"fraud_flags,omitempty"`
	AutoApproved   bool           `json:"auto_approved,omitempty"`
	Approvals      []Approval     `json:"approvals,omitempty"`
	PendingSecond  bool           `json:"awaiting_second_approval,omitempty"`
	Payouts        []Payout       `json:"payouts,omitempty"`
	ReopenCount    int            `json:"reopen_count,omitempty"`
	DenialReason   string         `json:"denial_reason,omitempty"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	Version        uint64         `json:"version"`
	History        []HistoryEntry `json:"history"`
}

// clone deep-copies c so an operation can be validated and applied to the
// copy and discarded on error, leaving the original unchanged.
func (c *Claim) clone() *Claim {
	n := *c
	n.FraudFlags = append([]string(nil), c.FraudFlags...)
	n.Approvals = append([]Approval(nil), c.Approvals...)
	n.Payouts = append([]Payout(nil), c.Payouts...)
	n.History = append(make([]HistoryEntry, 0, len(c.History)+2), c.History...)
	return &n
}

// move applies a table-checked transition and records it in the history.
func (c *Claim) move(to State, act Action, actor, note string, now time.Time) {
	c.History = append(c.History, HistoryEntry{At: now, Actor: actor, Action: act, From: c.State, To: to, Note: note})
	c.State = to
	c.UpdatedAt = now
	c.Version++
}

// PayoutTransferID derives the remit transfer id for payout n of a claim.
// It is deterministic so a re-sent payout is recognised by remit.
func PayoutTransferID(claimID string, n int) string {
	return fmt.Sprintf("clm-%s-p%d", claimID, n)
}

// Policy is the minimal policy record the adjudication rules need.
type Policy struct {
	ID            string `json:"id"`
	Status        string `json:"status"` // "active" | "lapsed" | "cancelled"
	Currency      string `json:"currency"`
	CoverageLimit int64  `json:"coverage_limit,omitempty"` // 0 = no limit
}

var (
	idRE       = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	claimIDRE  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,48}$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
)

// MaxClaimIDLen keeps derived transfer ids within remit's 64-character limit.
const MaxClaimIDLen = 48
