package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ClaimsConfig configures the claims scenario.
type ClaimsConfig struct {
	Target     string // claims base URL
	RemitURL   string // remit base URL (claimant accounts, verification)
	RunID      string
	Batch      int // claims per request (>1 uses POST /v1/batch)
	Claimants  int
	Policies   int
	Currency   string
	Wait       time.Duration // how long to wait for each claim to be paid
	VerifyConc int
	Engine     Config
}

type paidClaim struct {
	id       string
	claimant int
	amount   int64
	transfer string
}

type claimsRun struct {
	cfg        ClaimsConfig
	c, remit   *Client
	auto, auth int64
	payer      string
	claimants  []string
	seq        atomic.Int64
	fourEyes   atomic.Int64
	autoCount  atomic.Int64
	mu         sync.Mutex
	paid       []paidClaim
	unsettled  []claimPlan // submitted but not seen paid during the run
	payoutLat  []*Histogram
}

type claimsStats struct {
	Config struct {
		AutoApproveLimit int64  `json:"auto_approve_limit"`
		AuthorityLimit   int64  `json:"authority_limit"`
		PayerAccount     string `json:"payer_account"`
	} `json:"config"`
}

// RunClaims drives FNOL -> triage -> investigation -> evaluate -> approve
// (two approvers above the authority limit) -> wait for paid, then checks
// every paid claim has exactly one remit transfer.
func RunClaims(ctx context.Context, cfg ClaimsConfig) (*Report, error) {
	cfg.Batch = max(cfg.Batch, 1)
	cfg.Claimants = max(cfg.Claimants, 1)
	cfg.Policies = max(cfg.Policies, 1)
	if cfg.Currency == "" {
		cfg.Currency = "EUR"
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	if cfg.VerifyConc <= 0 {
		cfg.VerifyConc = 32
	}
	r := &claimsRun{cfg: cfg, c: NewClient(cfg.Target, cfg.Wait+30*time.Second), remit: NewClient(cfg.RemitURL, 15*time.Second)}
	defer r.c.HC.CloseIdleConnections()
	defer r.remit.HC.CloseIdleConnections()
	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("claims setup: %w", err)
	}
	res, err := Run(ctx, cfg.Engine, r.op)
	if err != nil {
		return nil, err
	}
	rep := NewReport("claims", cfg.Target, res)
	pl := NewHistogram()
	r.mu.Lock()
	for _, h := range r.payoutLat {
		pl.Merge(h)
	}
	paid := append([]paidClaim(nil), r.paid...)
	unsettled := append([]claimPlan(nil), r.unsettled...)
	r.mu.Unlock()
	sr := r.settle(ctx, unsettled)
	paid = append(paid, sr.paid...)
	rep.Figures["claims_paid"] = float64(len(paid))
	rep.Figures["claims_paid_after_run"] = float64(len(sr.paid))
	rep.Figures["claims_not_created"] = float64(sr.notCreated)
	rep.Figures["claims_abandoned_before_approval"] = float64(sr.abandoned)
	rep.AddCheck("approved_claims_paid", len(sr.stuck) == 0, "%d approved claims not paid within %v after the run: %s", len(sr.stuck), r.cfg.Wait, summarize(sr.stuck))
	rep.Extra["payout"] = Summarize(pl)
	rep.Figures["claims_paid_per_s"] = float64(len(paid)-len(sr.paid)) / rep.ElapsedS
	rep.Figures["claims_four_eyes"] = float64(r.fourEyes.Load())
	rep.Figures["claims_auto_approved"] = float64(r.autoCount.Load())
	r.verify(ctx, rep, paid)
	return rep, nil
}

func (r *claimsRun) setup(ctx context.Context) error {
	var st claimsStats
	if _, err := r.c.Do(ctx, "GET", "/v1/stats", nil, nil, &st); err != nil {
		return fmt.Errorf("read claims config from /v1/stats: %w", err)
	}
	r.auto, r.auth, r.payer = st.Config.AutoApproveLimit, st.Config.AuthorityLimit, st.Config.PayerAccount
	// The insurer's payout account has no overdraft flag (it is funded by
	// premiums outside this test); claimant accounts carry the flag.
	_, err := r.remit.Do(ctx, "POST", "/v1/accounts", nil, map[string]any{"id": r.payer, "currency": r.cfg.Currency, "flags": []string{}}, nil)
	if err != nil && !isCode(err, "exists_with_different_flags") {
		return fmt.Errorf("create payer account %s in remit: %w", r.payer, err)
	}
	if err != nil { // flagged payer: fund it from a mint so payouts clear
		mint := r.cfg.RunID + "-mint"
		if _, err := r.remit.Do(ctx, "POST", "/v1/accounts", nil, map[string]any{"id": mint, "currency": r.cfg.Currency, "flags": []string{}}, nil); err != nil {
			return err
		}
		tr := transferJSON{ID: r.cfg.RunID + "-fund-payer", DebitAccountID: mint, CreditAccountID: r.payer, Amount: 1 << 50, Currency: r.cfg.Currency}
		if _, err := r.remit.Do(ctx, "POST", "/v1/transfers", map[string]string{"Idempotency-Key": tr.ID}, tr, nil); err != nil {
			return fmt.Errorf("fund flagged payer %s: %w", r.payer, err)
		}
	}
	var accs []map[string]any
	for i := 0; i < r.cfg.Claimants; i++ {
		id := fmt.Sprintf("%s-cl-%d", r.cfg.RunID, i)
		r.claimants = append(r.claimants, id)
		accs = append(accs, map[string]any{"id": id, "currency": r.cfg.Currency, "flags": []string{"debits_must_not_exceed_credits"}})
	}
	for i := 0; i < len(accs); i += 1000 {
		var out batchResults
		if _, err := r.remit.Do(ctx, "POST", "/v1/accounts/batch", nil, map[string]any{"accounts": accs[i:min(i+1000, len(accs))]}, &out); err != nil {
			return fmt.Errorf("create claimant accounts: %w", err)
		}
		for _, x := range out.Results {
			if x.Status != 201 && x.Status != 200 {
				return fmt.Errorf("create claimant account %s: %d %s", x.ID, x.Status, x.Code)
			}
		}
	}
	for i := 0; i < r.cfg.Policies; i++ {
		p := map[string]any{"id": fmt.Sprintf("%s-pol-%d", r.cfg.RunID, i), "status": "active", "currency": r.cfg.Currency}
		if _, err := r.c.Do(ctx, "POST", "/v1/policies", nil, p, nil); err != nil {
			return fmt.Errorf("create policy: %w", err)
		}
	}
	return nil
}

func isCode(err error, code string) bool {
	ae, ok := err.(*APIError)
	return ok && ae.Code == code
}

// amount draws a claim amount for the n-th claim: of every 10 claims, 7
// are auto-approvable, 2 need one approver and 1 exceeds the authority
// limit and needs two (deterministic so even a short run has all kinds).
func (r *claimsRun) amount(rng *rand.Rand, n int64) int64 {
	auto, auth := r.auto, r.auth
	if auth == 0 {
		auth = max(auto*10, 1_000_000)
	}
	switch k := n % 10; {
	case auto > 0 && k < 7:
		return 1 + rng.Int64N(auto)
	case k < 9 && auth > auto:
		return auto + 1 + rng.Int64N(auth-auto)
	default:
		return auth + 1 + rng.Int64N(2*auth)
	}
}

type claimPlan struct {
	id       string
	claimant int
	amount   int64
	ops      []claimOp
}

// claimOp is one /v1/batch op (typed: encoding maps costs the generator
// CPU it shares with the servers).
type claimOp struct {
	Op       string    `json:"op"`
	ID       string    `json:"id,omitempty"`
	Claim    *fnolJSON `json:"claim,omitempty"`
	To       string    `json:"to,omitempty"`
	Actor    string    `json:"actor,omitempty"`
	Reserve  int64     `json:"reserve,omitempty"`
	Approver string    `json:"approver,omitempty"`
	Amount   int64     `json:"amount,omitempty"`
}

type fnolJSON struct {
	ID       string `json:"id"`
	PolicyID string `json:"policy_id"`
	Claimant struct {
		Name      string `json:"name"`
		AccountID string `json:"account_id"`
	} `json:"claimant"`
	LossDate      string `json:"loss_date"`
	ClaimedAmount int64  `json:"claimed_amount"`
	Currency      string `json:"currency"`
}

func (r *claimsRun) plan(rng *rand.Rand) claimPlan {
	n := r.seq.Add(1)
	cp := claimPlan{id: r.cfg.RunID + "-c" + strconv.FormatInt(n, 10), claimant: rng.IntN(len(r.claimants)), amount: r.amount(rng, n)}
	fnol := &fnolJSON{ID: cp.id, PolicyID: fmt.Sprintf("%s-pol-%d", r.cfg.RunID, rng.IntN(r.cfg.Policies)),
		LossDate: "2026-11-30", ClaimedAmount: cp.amount, Currency: r.cfg.Currency}
	fnol.Claimant.Name, fnol.Claimant.AccountID = "Claimant "+strconv.Itoa(cp.claimant), r.claimants[cp.claimant]
	cp.ops = append(cp.ops,
		claimOp{Op: "fnol", Claim: fnol, Actor: "fnol-desk"},
		claimOp{Op: "transition", ID: cp.id, To: "triage", Actor: "triage-desk"},
		claimOp{Op: "transition", ID: cp.id, To: "investigation", Actor: "adjuster"},
		claimOp{Op: "evaluate", ID: cp.id, Reserve: cp.amount, Actor: "adjuster"})
	if r.auto == 0 || cp.amount > r.auto {
		cp.ops = append(cp.ops, claimOp{Op: "approve", ID: cp.id, Approver: "approver-a", Amount: cp.amount})
		if r.auth > 0 && cp.amount > r.auth {
			cp.ops = append(cp.ops, claimOp{Op: "approve", ID: cp.id, Approver: "approver-b", Amount: cp.amount})
			r.fourEyes.Add(1)
		}
	} else {
		r.autoCount.Add(1)
	}
	return cp
}

// single sends one op through the per-claim endpoints.
func (r *claimsRun) single(ctx context.Context, op claimOp) error {
	var err error
	base := "/v1/claims/" + op.ID
	switch op.Op {
	case "fnol":
		_, err = r.c.Do(ctx, "POST", "/v1/claims", map[string]string{"X-Actor": op.Actor}, op.Claim, nil)
	case "transition":
		_, err = r.c.Do(ctx, "POST", base+"/transition", nil, map[string]any{"to": op.To, "actor": op.Actor}, nil)
	case "evaluate":
		_, err = r.c.Do(ctx, "POST", base+"/evaluate", nil, map[string]any{"reserve": op.Reserve, "actor": op.Actor}, nil)
	case "approve":
		_, err = r.c.Do(ctx, "POST", base+"/approve", nil, map[string]any{"approver": op.Approver, "amount": op.Amount}, nil)
	}
	return err
}

func (r *claimsRun) op(ctx context.Context, worker int) string {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	plans := make([]claimPlan, r.cfg.Batch)
	var ops []claimOp
	ids := make([]string, len(plans))
	for i := range plans {
		plans[i] = r.plan(rng)
		ids[i] = plans[i].id
		ops = append(ops, plans[i].ops...)
	}
	unsettled := func() {
		r.mu.Lock()
		r.unsettled = append(r.unsettled, plans...)
		r.mu.Unlock()
	}
	if r.cfg.Batch == 1 {
		for _, op := range ops {
			if err := r.single(ctx, op); err != nil {
				unsettled()
				return Kind(err)
			}
		}
	} else {
		var out struct {
			Results []struct {
				Status int    `json:"status"`
				Code   string `json:"code"`
			} `json:"results"`
		}
		if _, err := r.c.Do(ctx, "POST", "/v1/batch", nil, map[string]any{"ops": ops}, &out); err != nil {
			unsettled()
			return Kind(err)
		}
		for _, x := range out.Results {
			if x.Status < 200 || x.Status > 299 {
				unsettled()
				return "op_" + x.Code
			}
		}
	}
	approved := time.Now()
	var w struct {
		Claims []struct {
			ID         string `json:"id"`
			State      string `json:"state"`
			Amount     int64  `json:"approved_amount"`
			TransferID string `json:"payout_transfer_id"`
		} `json:"claims"`
		Pending []string `json:"pending"`
	}
	if _, err := r.c.Do(ctx, "POST", "/v1/claims/wait", nil, map[string]any{"ids": ids, "state": "paid", "timeout_ms": r.cfg.Wait.Milliseconds()}, &w); err != nil {
		unsettled()
		return "wait_" + Kind(err)
	}
	lat := time.Since(approved)
	h := NewHistogram()
	var paid []paidClaim
	var late []claimPlan
	for i, c := range w.Claims {
		if c.State == "paid" && i < len(plans) {
			paid = append(paid, paidClaim{id: c.ID, claimant: plans[i].claimant, amount: c.Amount, transfer: c.TransferID})
			h.RecordDuration(lat)
		} else if i < len(plans) {
			late = append(late, plans[i])
		}
	}
	r.mu.Lock()
	r.unsettled = append(r.unsettled, late...)
	r.paid = append(r.paid, paid...)
	r.payoutLat = append(r.payoutLat, h)
	r.mu.Unlock()
	if len(w.Pending) > 0 {
		return "not_paid_in_time"
	}
	return ""
}

// verify checks each paid claim's transfer in remit and that each claimant
// account was credited exactly the sum of its paid claims (so no payout
// was applied twice).
func (r *claimsRun) verify(ctx context.Context, rep *Report, paid []paidClaim) {
	var bad atomic.Int64
	var mu sync.Mutex
	var problems []string
	err := parallel(ctx, len(paid), r.cfg.VerifyConc, func(i int) error {
		p := paid[i]
		var t transferJSON
		_, err := r.remit.Do(ctx, "GET", "/v1/transfers/"+p.transfer, nil, nil, &t)
		if err == nil && (t.Amount != p.amount || t.CreditAccountID != r.claimants[p.claimant] || t.DebitAccountID != r.payer) {
			err = fmt.Errorf("stored %+v, expected %d %s->%s", t, p.amount, r.payer, r.claimants[p.claimant])
		}
		if err != nil {
			bad.Add(1)
			mu.Lock()
			problems = append(problems, fmt.Sprintf("claim %s transfer %s: %v", p.id, p.transfer, err))
			mu.Unlock()
		}
		return nil
	})
	rep.AddCheck("payout_transfers", err == nil && bad.Load() == 0, "%d paid claims, %d without a matching remit transfer: %s", len(paid), bad.Load(), summarize(problems))
	want := make([]int64, len(r.claimants))
	for _, p := range paid {
		want[p.claimant] += p.amount
	}
	var mism []string
	err = parallel(ctx, len(r.claimants), r.cfg.VerifyConc, func(i int) error {
		var a struct {
			Credits int64 `json:"credits_posted"`
		}
		if _, err := r.remit.Do(ctx, "GET", "/v1/accounts/"+r.claimants[i], nil, nil, &a); err != nil {
			return err
		}
		// settle() waited for every submitted claim, so any difference is
		// a lost or duplicated payout.
		if a.Credits != want[i] {
			mu.Lock()
			mism = append(mism, fmt.Sprintf("claimant %s credited %d, paid claims sum to %d", r.claimants[i], a.Credits, want[i]))
			mu.Unlock()
		}
		return nil
	})
	var inv struct {
		OK bool `json:"ok"`
	}
	_, ierr := r.remit.Do(ctx, "GET", "/v1/invariants", nil, nil, &inv)
	rep.AddCheck("remit_invariants", ierr == nil && inv.OK, "remit GET /v1/invariants after the payouts: ok=%v %s", inv.OK, errOrNil(ierr))
	rep.AddCheck("exactly_once", err == nil && len(mism) == 0, "claimant credits equal the sum of their paid claims (%d accounts): %s %v", len(r.claimants), summarize(mism), errOrNil(err))
}

func errOrNil(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// settleResult classifies claims not seen paid during the run.
type settleResult struct {
	paid       []paidClaim
	notCreated int // the request never committed (e.g. server killed)
	abandoned  int // created but the run stopped before approval
	stuck      []string
}

// settle waits (once more, after the load) for claims not seen paid during
// the run, so the exactly-once check covers every payout remit may hold.
// An approved claim that still is not paid is a lost payment.
func (r *claimsRun) settle(ctx context.Context, plans []claimPlan) settleResult {
	var sr settleResult
	for i := 0; i < len(plans); i += 1000 {
		chunk := plans[i:min(i+1000, len(plans))]
		ids := make([]string, len(chunk))
		for j, p := range chunk {
			ids[j] = p.id
		}
		var w struct {
			Claims []struct {
				ID         string `json:"id"`
				State      string `json:"state"`
				Found      bool   `json:"found"`
				Amount     int64  `json:"approved_amount"`
				TransferID string `json:"payout_transfer_id"`
			} `json:"claims"`
		}
		if _, err := r.c.Do(ctx, "POST", "/v1/claims/wait", nil, map[string]any{"ids": ids, "state": "paid", "timeout_ms": r.cfg.Wait.Milliseconds()}, &w); err != nil {
			for _, id := range ids {
				sr.stuck = append(sr.stuck, id+": "+err.Error())
			}
			continue
		}
		for j, c := range w.Claims {
			switch {
			case j >= len(chunk):
			case c.State == "paid":
				sr.paid = append(sr.paid, paidClaim{id: c.ID, claimant: chunk[j].claimant, amount: c.Amount, transfer: c.TransferID})
			case !c.Found:
				sr.notCreated++
			case c.State == "approved" || c.State == "evaluated" && r.cfg.Batch > 1:
				sr.stuck = append(sr.stuck, c.ID+" still "+c.State)
			default:
				sr.abandoned++
			}
		}
	}
	return sr
}
