package claims

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Config holds the adjudication rules and the payout account.
type Config struct {
	// AutoApproveLimit: a claim whose claimed amount is <= this, on an
	// active policy, within coverage, with no fraud flags and a reserve that
	// covers it, is approved automatically on evaluation. 0 disables.
	AutoApproveLimit int64 `json:"auto_approve_limit"`
	// AuthorityLimit: approvals of amounts above this need two different
	// approvers (four-eyes). 0 means a single approver always suffices.
	AuthorityLimit int64 `json:"authority_limit"`
	// PayerAccount is the insurer's remit account debited by payouts.
	PayerAccount string `json:"payer_account"`
}

// AutoApprover is the identity recorded for automatic approvals.
const AutoApprover = "auto-adjudicator"

// Service applies claim operations atomically to the store.
type Service struct {
	cfg     Config
	store   *Store
	waiters *waiters
	wake    chan struct{} // nudges the payout dispatcher
	now     func() time.Time
	m       *metrics
	inspect func(seq uint64) (retryState, bool) // set by the dispatcher
}

// NewService wires a service over an open store.
func NewService(store *Store, cfg Config) (*Service, error) {
	if cfg.PayerAccount == "" || !idRE.MatchString(cfg.PayerAccount) {
		return nil, fmt.Errorf("payer account %q must be a remit account id (1-64 chars of [A-Za-z0-9._:-]); set --payer-account", cfg.PayerAccount)
	}
	if cfg.AutoApproveLimit < 0 || cfg.AuthorityLimit < 0 {
		return nil, fmt.Errorf("auto-approve limit %d and authority limit %d must be >= 0", cfg.AutoApproveLimit, cfg.AuthorityLimit)
	}
	return &Service{cfg: cfg, store: store, waiters: newWaiters(), wake: make(chan struct{}, 1),
		now: func() time.Time { return time.Now().UTC() }, m: newMetrics()}, nil
}

// Config returns the active rules.
func (s *Service) Config() Config { return s.cfg }

// opFunc is one operation inside a write transaction. It returns the claim
// touched (for the response), an HTTP status, or a rejection.
type opFunc func(t *txn, now time.Time) (*Claim, int, *Error)

// opResult is what exec reports per op.
type opResult struct {
	claim  *Claim
	status int
	err    *Error
}

// exec runs ops in one group-committed write transaction (bbolt Batch, so
// concurrent requests share an fsync). A rejected op writes nothing because
// every op validates before it changes its cloned claim. The function may be
// re-run by bbolt after a failed batch, so it rebuilds its results each time.
func (s *Service) exec(ops []opFunc) ([]opResult, error) {
	var res []opResult
	var t *txn
	err := s.store.db.Batch(func(tx *bolt.Tx) error {
		t = newTxn(tx)
		res = make([]opResult, len(ops))
		now := s.now()
		for i, op := range ops {
			c, st, e := op(t, now)
			res[i] = opResult{claim: c, status: st, err: e}
		}
		return t.flush()
	})
	if err != nil {
		return nil, fmt.Errorf("claims store commit failed: %w", err)
	}
	for id := range t.dirty {
		s.waiters.notify(id)
	}
	if len(t.outbox) > 0 {
		s.m.outboxQueued.Add(int64(len(t.outbox)))
		s.Wake()
	}
	for _, r := range res {
		if r.err != nil {
			s.m.reject(r.err.Code)
		}
	}
	return res, nil
}

// Wake nudges the dispatcher (non-blocking).
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Service) do(op opFunc) (*Claim, int, *Error, error) {
	res, err := s.exec([]opFunc{op})
	if err != nil {
		return nil, 0, nil, err
	}
	return res[0].claim, res[0].status, res[0].err, nil
}

// loadClone fetches a claim for modification and returns a private clone.
func loadClone(t *txn, id string) (*Claim, *Error, error) {
	c, err := t.get(id)
	if err != nil {
		return nil, nil, err
	}
	if c == nil {
		return nil, claimNotFound(id), nil
	}
	return c.clone(), nil, nil
}

func storageErr(err error) *Error {
	return errf(500, "storage_error", "claims store error: %v", err)
}

// opFNOL creates a claim in state fnol.
func (s *Service) opFNOL(r *FNOLRequest, actor string) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		if e := r.validate(); e != nil {
			return nil, 0, e
		}
		p, err := t.policy(r.PolicyID)
		if err != nil {
			return nil, 0, storageErr(err)
		}
		if p == nil {
			return nil, 0, unprocessable("policy_not_found", "FNOL policy %q does not exist; register it with POST /v1/policies", r.PolicyID)
		}
		if p.Currency != r.Currency {
			return nil, 0, unprocessable("currency_mismatch", "FNOL currency %s differs from policy %q currency %s; claim in the policy currency", r.Currency, p.ID, p.Currency)
		}
		id := r.ID
		if id == "" {
			if id, err = t.nextClaimID(); err != nil {
				return nil, 0, storageErr(err)
			}
		} else {
			existing, err := t.get(id)
			if err != nil {
				return nil, 0, storageErr(err)
			}
			if existing != nil {
				return nil, 0, errf(409, "claim_exists", "claim %q already exists (state %s); use a new id or omit id to get one assigned", id, existing.State)
			}
		}
		c := &Claim{ID: id, PolicyID: r.PolicyID, Claimant: r.Claimant, LossDate: r.LossDate,
			Description: r.Description, ClaimedAmount: r.ClaimedAmount, Currency: r.Currency,
			State: StateFNOL, FraudFlags: append([]string(nil), r.FraudFlags...), CreatedAt: now, UpdatedAt: now, Version: 1,
			History: []HistoryEntry{{At: now, Actor: actor, Action: "fnol", To: StateFNOL, Note: "first notice of loss"}}}
		t.put(c)
		return c, 201, nil
	}
}

// opTransition performs a plain, reopen or withdraw transition.
func (s *Service) opTransition(id string, to State, actor, note string) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		reopenAlias := to == "reopened" // "reopened" names the reopen edge, not a state
		if reopenAlias {
			to = StateInvestigation
		}
		if !ValidState(to) {
			return nil, 0, badRequest("invalid_state", "transition target %q is not a claim state; use one of %s", to, stateList())
		}
		c, e, err := loadClone(t, id)
		if err != nil {
			return nil, 0, storageErr(err)
		} else if e != nil {
			return nil, 0, e
		}
		act, ok := ActionFor(c.State, to)
		if !ok || (reopenAlias && act != ActReopen) {
			e := illegalTransition(id, c.State, to)
			if reopenAlias {
				e.Msg = fmt.Sprintf("claim %q cannot be reopened from %q; only closed or denied claims reopen (to investigation)", id, c.State)
			}
			return nil, 0, e
		}
		switch act {
		case ActTransition, ActWithdraw:
		case ActReopen:
			c.ReopenCount++
			c.Reserve, c.ApprovedAmount, c.Approvals, c.PendingSecond, c.DenialReason = 0, 0, nil, false, ""
		default:
			return nil, 0, wrongEndpoint(id, c.State, to, act)
		}
		if c.State == StateEvaluated {
			c.Approvals, c.PendingSecond = nil, false
		}
		c.move(to, act, actor, note, now)
		t.put(c)
		return c, 200, nil
	}
}

// opEvaluate sets the reserve (investigation -> evaluated) and applies the
// auto-adjudication rule.
func (s *Service) opEvaluate(id string, r *EvaluateRequest, actor string) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		if r.Reserve == nil {
			return nil, 0, badRequest("reserve_missing", "evaluate of claim %q needs a reserve (integer minor units >= 0)", id)
		}
		if *r.Reserve < 0 {
			return nil, 0, badRequest("invalid_amount", "evaluate of claim %q: reserve %d must be >= 0", id, *r.Reserve)
		}
		c, e, err := loadClone(t, id)
		if err != nil {
			return nil, 0, storageErr(err)
		} else if e != nil {
			return nil, 0, e
		}
		if c.State != StateInvestigation {
			return nil, 0, illegalTransition(id, c.State, StateEvaluated)
		}
		for _, f := range r.FraudFlags {
			if strings.TrimSpace(f) == "" {
				return nil, 0, badRequest("invalid_fraud_flag", "evaluate of claim %q: fraud_flags must not contain empty strings", id)
			}
		}
		c.FraudFlags = append(c.FraudFlags, r.FraudFlags...)
		c.Reserve = *r.Reserve
		c.move(StateEvaluated, ActEvaluate, actor, note(r.Note, fmt.Sprintf("reserve %d %s", c.Reserve, c.Currency)), now)
		ok, why, err := s.autoEligible(t, c)
		if err != nil {
			return nil, 0, storageErr(err)
		}
		if ok {
			c.AutoApproved = true
			s.approve(t, c, AutoApprover, c.ClaimedAmount, "auto-adjudicated: "+why, now)
			s.m.autoApproved.Add(1)
		}
		t.put(c)
		return c, 200, nil
	}
}

func note(given, def string) string {
	if given != "" {
		return given
	}
	return def
}

// autoEligible applies the auto-adjudication rule.
func (s *Service) autoEligible(t *txn, c *Claim) (bool, string, error) {
	lim := s.cfg.AutoApproveLimit
	if lim == 0 || c.ClaimedAmount > lim || len(c.FraudFlags) > 0 || c.Reserve < c.ClaimedAmount || c.ReopenCount > 0 {
		return false, "", nil
	}
	if s.cfg.AuthorityLimit > 0 && c.ClaimedAmount > s.cfg.AuthorityLimit {
		return false, "", nil // never bypass four-eyes
	}
	p, err := t.policy(c.PolicyID)
	if err != nil || p == nil || p.Status != "active" {
		return false, "", err
	}
	if p.CoverageLimit > 0 && c.ClaimedAmount > p.CoverageLimit {
		return false, "", nil
	}
	return true, fmt.Sprintf("amount %d <= auto limit %d, policy %s active, no fraud flags", c.ClaimedAmount, lim, p.ID), nil
}

// approve moves an evaluated claim to approved and queues its payout in the
// same transaction: the outbox record commits atomically with the state.
func (s *Service) approve(t *txn, c *Claim, approver string, amount int64, why string, now time.Time) {
	c.Approvals = append(c.Approvals, Approval{Approver: approver, Amount: amount, At: now})
	c.PendingSecond = false
	c.ApprovedAmount = amount
	n := len(c.Payouts) + 1
	p := Payout{No: n, TransferID: PayoutTransferID(c.ID, n), Amount: amount, Currency: c.Currency, Status: "pending", CreatedAt: now}
	c.Payouts = append(c.Payouts, p)
	c.move(StateApproved, ActApprove, approver, why, now)
	t.addOutbox(OutboxEntry{ClaimID: c.ID, PayoutNo: n, TransferID: p.TransferID, IdempotencyKey: "claims:" + p.TransferID,
		DebitAccount: s.cfg.PayerAccount, CreditAccount: c.Claimant.AccountID, Amount: amount, Currency: c.Currency, CreatedAt: now})
}

// opApprove records an approval; above the authority limit the first one
// leaves the claim awaiting a second, different approver (status 202).
func (s *Service) opApprove(id string, r *ApproveRequest, approver string) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		if r.Amount == nil {
			return nil, 0, badRequest("amount_missing", "approve of claim %q needs an amount (integer minor units > 0)", id)
		}
		amt := *r.Amount
		if amt <= 0 {
			return nil, 0, badRequest("invalid_amount", "approve of claim %q: amount %d must be > 0", id, amt)
		}
		c, e, err := loadClone(t, id)
		if err != nil {
			return nil, 0, storageErr(err)
		} else if e != nil {
			return nil, 0, e
		}
		if c.State != StateEvaluated {
			return nil, 0, illegalTransition(id, c.State, StateApproved)
		}
		if amt > c.Reserve {
			return nil, 0, unprocessable("amount_exceeds_reserve", "approve of claim %q: amount %d exceeds reserve %d; re-evaluate with a higher reserve or approve less", id, amt, c.Reserve)
		}
		if amt > c.ClaimedAmount {
			return nil, 0, unprocessable("amount_exceeds_claimed", "approve of claim %q: amount %d exceeds claimed amount %d", id, amt, c.ClaimedAmount)
		}
		if s.cfg.AuthorityLimit > 0 && amt > s.cfg.AuthorityLimit {
			if !c.PendingSecond {
				c.Approvals = append(c.Approvals, Approval{Approver: approver, Amount: amt, At: now})
				c.PendingSecond = true
				c.UpdatedAt, c.Version = now, c.Version+1
				c.History = append(c.History, HistoryEntry{At: now, Actor: approver, Action: ActApprove, From: c.State, To: c.State,
					Note: note(r.Note, fmt.Sprintf("first approval of %d (above authority limit %d); awaiting a second approver", amt, s.cfg.AuthorityLimit))})
				t.put(c)
				return c, 202, nil
			}
			first := c.Approvals[len(c.Approvals)-1]
			if first.Approver == approver {
				return nil, 0, unprocessable("four_eyes_same_approver", "claim %q was already approved by %q; amounts above %d need a second, different approver", id, approver, s.cfg.AuthorityLimit)
			}
			if first.Amount != amt {
				return nil, 0, unprocessable("approval_amount_mismatch", "claim %q: second approval amount %d differs from first approval %d by %q; approve the same amount", id, amt, first.Amount, first.Approver)
			}
		}
		s.approve(t, c, approver, amt, note(r.Note, "approved"), now)
		t.put(c)
		return c, 200, nil
	}
}

// opDeny denies a claim (from triage, investigation or evaluated).
func (s *Service) opDeny(id string, r *DenyRequest, actor string) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		if strings.TrimSpace(r.Reason) == "" {
			return nil, 0, badRequest("reason_missing", "deny of claim %q needs a reason", id)
		}
		c, e, err := loadClone(t, id)
		if err != nil {
			return nil, 0, storageErr(err)
		} else if e != nil {
			return nil, 0, e
		}
		if act, ok := ActionFor(c.State, StateDenied); !ok || act != ActDeny {
			return nil, 0, illegalTransition(id, c.State, StateDenied)
		}
		c.DenialReason = r.Reason
		c.Approvals, c.PendingSecond = nil, false
		c.move(StateDenied, ActDeny, actor, r.Reason, now)
		t.put(c)
		return c, 200, nil
	}
}

// opPaid marks a payout acknowledged by remit and the claim paid. It is
// idempotent: a payout already marked (e.g. re-dispatch after a crash)
// changes nothing.
func (s *Service) opPaid(e OutboxEntry, remitStatus int) opFunc {
	return func(t *txn, now time.Time) (*Claim, int, *Error) {
		if err := t.tx.Bucket(bOutbox).Delete(seqKey(e.Seq)); err != nil {
			return nil, 0, storageErr(err)
		}
		c, er, err := loadClone(t, e.ClaimID)
		if err != nil {
			return nil, 0, storageErr(err)
		} else if er != nil {
			return nil, 0, er
		}
		i := e.PayoutNo - 1
		if i < 0 || i >= len(c.Payouts) || c.Payouts[i].Status == "paid" {
			return c, 200, nil
		}
		c.Payouts[i].Status, c.Payouts[i].PaidAt, c.Payouts[i].RemitCode = "paid", now, remitStatus
		if c.State == StateApproved {
			c.move(StatePaid, ActPay, "payout-dispatcher", fmt.Sprintf("remit transfer %s acknowledged (%d)", e.TransferID, remitStatus), now)
		}
		t.put(c)
		return c, 200, nil
	}
}

func stateList() string {
	var s []string
	for _, st := range AllStates {
		s = append(s, string(st))
	}
	return strings.Join(s, ", ")
}

// PutPolicy creates (201) or replaces (200) a policy.
func (s *Service) PutPolicy(p *Policy) (int, *Error, error) {
	if e := validatePolicy(p); e != nil {
		return 0, e, nil
	}
	status := 201
	err := s.store.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bPolicies)
		if b.Get([]byte(p.ID)) != nil {
			status = 200
		}
		buf, _ := json.Marshal(p)
		return b.Put([]byte(p.ID), buf)
	})
	return status, nil, err
}
