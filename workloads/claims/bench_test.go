package claims

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkBatchLifecycle: one transaction per 200 claims, each created
// and moved fnol -> triage -> investigation -> evaluated -> (auto)
// approved with its outbox record, then marked paid as the dispatcher
// does after remit's ack. In-process, real bbolt with fsync; reports
// claims/s through the store (no HTTP, no remit).
func BenchmarkBatchLifecycle(b *testing.B) {
	st, err := OpenStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, _ := NewService(st, Config{AutoApproveLimit: 1 << 40, PayerAccount: "insurer"})
	if _, _, err := svc.PutPolicy(&Policy{ID: "pol", Status: "active", Currency: "EUR"}); err != nil {
		b.Fatal(err)
	}
	d := NewDispatcher(svc, nil)
	const per = 200
	reserve := int64(500)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var ops []opFunc
		for j := 0; j < per; j++ {
			id := fmt.Sprintf("b%d-%d", i, j)
			ops = append(ops,
				svc.opFNOL(&FNOLRequest{ID: id, PolicyID: "pol", Claimant: Claimant{Name: "A", AccountID: "acc"}, LossDate: "2026-01-01", ClaimedAmount: 500, Currency: "EUR"}, "desk"),
				svc.opTransition(id, StateTriage, "desk", ""),
				svc.opTransition(id, StateInvestigation, "adj", ""),
				svc.opEvaluate(id, &EvaluateRequest{Reserve: &reserve}, "adj"))
		}
		if _, err := svc.exec(ops); err != nil {
			b.Fatal(err)
		}
		pending, _, err := d.pending(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		var paid []opFunc
		for _, e := range pending {
			paid = append(paid, svc.opPaid(e, 201))
		}
		if _, err := svc.exec(paid); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "claims/s")
}
