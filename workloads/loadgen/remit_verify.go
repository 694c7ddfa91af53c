package loadgen

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// verify runs the end-of-run checks: a quiescent bank read, remit's own
// invariants, every submitted transfer's presence, and a reconciliation of
// balances against the transfers remit holds.
func (r *remitRun) verify(ctx context.Context, rep *Report, reads []BankRead) {
	var final BankRead
	var err error
	for try := 0; try < 5; try++ {
		if final, err = r.readAll(ctx, true); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		rep.AddCheck("final_read", false, "could not read balances: %v", err)
		return
	}
	final.Invariants, err = r.readInvariants(ctx)
	if err != nil {
		rep.AddCheck("final_invariants_read", false, "%v", err)
	}
	flagged := map[string]bool{}
	for _, a := range r.accounts {
		flagged[a] = true
	}
	model := BankModel{Accounts: r.accounts, Flagged: flagged, Total: r.cfg.Initial * int64(len(r.accounts))}
	all := append(append([]BankRead(nil), reads...), final)
	v := CheckBank(model, all)
	rep.AddCheck("bank", len(v) == 0, "%d reads (%d during load, 1 quiescent), total %d: %s", len(all), len(reads), model.Total, summarize(v))

	var inv struct {
		OK         bool `json:"ok"`
		Currencies map[string]struct {
			Accounts    int   `json:"accounts"`
			SumBalances int64 `json:"sum_balances"`
		} `json:"currencies"`
	}
	_, err = r.c.Do(ctx, "GET", "/v1/invariants", nil, nil, &inv)
	cur := inv.Currencies[r.cfg.Currency]
	rep.AddCheck("invariants", err == nil && inv.OK && cur.SumBalances == 0, "GET /v1/invariants ok=%v %s sum_balances=%d err=%v", inv.OK, r.cfg.Currency, cur.SumBalances, err)

	r.mu.Lock()
	recs := append([]TransferRec(nil), r.recs...)
	r.mu.Unlock()
	if r.cfg.SkipTransferCheck {
		acked := 0
		for _, t := range recs {
			if t.Outcome == Acked {
				acked++
			}
		}
		rep.Figures["transfers_submitted"] = float64(len(recs))
		rep.Figures["transfers_acked"] = float64(acked)
		rep.Figures["transfers_acked_per_s"] = float64(acked) / rep.ElapsedS
		rep.AddCheck("transfers", true, "per-transfer verification skipped (--verify-transfers=false)")
		return
	}
	var cnt [16]atomic.Int64
	const (
		ackPresent = iota
		ackMissing
		ackMismatch
		unkPresent
		unkAbsent
		rejPresent
		rejAbsent
		getErr
	)
	present := make([]bool, len(recs))
	var problems []string
	var pmu sync.Mutex
	note := func(s string) {
		pmu.Lock()
		if len(problems) < 20 {
			problems = append(problems, s)
		}
		pmu.Unlock()
	}
	start := time.Now()
	_ = parallel(ctx, len(recs), r.cfg.VerifyConc, func(i int) error {
		t := &recs[i]
		var got transferJSON
		var err error
		for try := 0; try < 3; try++ {
			if _, err = r.c.Do(ctx, "GET", "/v1/transfers/"+t.ID, nil, nil, &got); err == nil || isStatus(err, 404) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		found := err == nil
		if err != nil && !isStatus(err, 404) {
			cnt[getErr].Add(1)
			note(fmt.Sprintf("GET transfer %s: %v", t.ID, err))
			return nil
		}
		if found && (got.Amount != t.Amount || got.DebitAccountID != r.accounts[t.Debit] || got.CreditAccountID != r.accounts[t.Credit]) {
			cnt[ackMismatch].Add(1)
			note(fmt.Sprintf("transfer %s stored as %+v, submitted %d %s->%s", t.ID, got, t.Amount, r.accounts[t.Debit], r.accounts[t.Credit]))
			return nil
		}
		present[i] = found
		switch {
		case t.Outcome == Acked && found:
			cnt[ackPresent].Add(1)
		case t.Outcome == Acked:
			cnt[ackMissing].Add(1)
			note(fmt.Sprintf("acknowledged transfer %s is missing", t.ID))
		case t.Outcome == Unknown && found:
			cnt[unkPresent].Add(1)
		case t.Outcome == Unknown:
			cnt[unkAbsent].Add(1)
		case found:
			cnt[rejPresent].Add(1)
			note(fmt.Sprintf("transfer %s was rejected (%s) but is present", t.ID, t.Code))
		default:
			cnt[rejAbsent].Add(1)
		}
		return nil
	})
	fig := rep.Figures
	fig["transfers_submitted"] = float64(len(recs))
	fig["transfers_acked"] = float64(cnt[ackPresent].Load() + cnt[ackMissing].Load())
	fig["transfers_acked_per_s"] = fig["transfers_acked"] / rep.ElapsedS
	fig["verify_acked_present"] = float64(cnt[ackPresent].Load())
	fig["verify_acked_missing"] = float64(cnt[ackMissing].Load())
	fig["verify_mismatched"] = float64(cnt[ackMismatch].Load())
	fig["verify_unacked_present"] = float64(cnt[unkPresent].Load())
	fig["verify_unacked_absent"] = float64(cnt[unkAbsent].Load())
	fig["verify_rejected_absent"] = float64(cnt[rejAbsent].Load())
	fig["verify_rejected_present"] = float64(cnt[rejPresent].Load())
	fig["verify_get_errors"] = float64(cnt[getErr].Load())
	fig["verify_seconds"] = time.Since(start).Seconds()
	if r.cfg.Proc != nil {
		fig["crash_kills"] = float64(r.cfg.Proc.Kills)
	}
	rejected := map[string]int{}
	for _, t := range recs {
		if t.Outcome == Rejected {
			rejected[t.Code]++
		}
	}
	for k, n := range rejected {
		fig["rejected_"+k] = float64(n)
	}
	bad := cnt[ackMissing].Load() + cnt[ackMismatch].Load() + cnt[rejPresent].Load() + cnt[getErr].Load()
	rep.AddCheck("transfers", bad == 0, "acked %d present / %d missing; unacked %d present / %d absent; rejected %d absent / %d present; %d mismatched, %d unreadable %s",
		cnt[ackPresent].Load(), cnt[ackMissing].Load(), cnt[unkPresent].Load(), cnt[unkAbsent].Load(),
		cnt[rejAbsent].Load(), cnt[rejPresent].Load(), cnt[ackMismatch].Load(), cnt[getErr].Load(), summarize(problems))
	if cnt[getErr].Load() > 0 {
		return
	}
	var applied []TransferRec
	for i, t := range recs {
		if present[i] {
			applied = append(applied, t)
		}
	}
	initial := map[string]int64{}
	for _, a := range r.accounts {
		initial[a] = r.cfg.Initial
	}
	rv := Reconcile(initial, applied, r.accounts, final.Balances)
	rep.AddCheck("exactly_once", len(rv) == 0, "balances reconcile with the %d transfers remit holds (a duplicate or lost transfer would not): %s", len(applied), summarize(rv))
}

func isStatus(err error, st int) bool {
	ae, ok := err.(*APIError)
	return ok && ae.Status == st
}

func summarize(v []string) string {
	if len(v) == 0 {
		return "ok"
	}
	if len(v) > 5 {
		return fmt.Sprintf("%d problems, first: %s", len(v), strings.Join(v[:5], "; "))
	}
	return strings.Join(v, "; ")
}
