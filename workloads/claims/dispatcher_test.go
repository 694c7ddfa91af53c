package claims

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// flakySender stands in for remit to unit-test the dispatcher's retry and
// acknowledgement logic (the real remit is exercised by cmd/claims tests).
type flakySender struct {
	mu       sync.Mutex
	failures int            // whole-request failures before succeeding
	reject   map[string]int // transfer id -> rejections before acking
	seen     map[string]int
}

func (f *flakySender) Send(_ context.Context, trs []RemitTransfer, _ []string) ([]RemitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return nil, errors.New("connection refused")
	}
	out := make([]RemitResult, len(trs))
	for i, tr := range trs {
		f.seen[tr.ID]++
		out[i] = RemitResult{ID: tr.ID, Status: 201}
		if f.seen[tr.ID] > 1 {
			out[i].Status = 200
		}
		if f.reject[tr.ID] > 0 {
			f.reject[tr.ID]--
			out[i] = RemitResult{ID: tr.ID, Status: 422, Code: "exceeds_credits"}
		}
	}
	return out, nil
}

func TestDispatcherRetriesUntilAcked(t *testing.T) {
	e := newEnv(t, Config{AutoApproveLimit: 1000})
	fs := &flakySender{failures: 2, reject: map[string]int{"clm-c3-p1": 2}, seen: map[string]int{}}
	d := NewDispatcher(e.svc, fs)
	d.Logf = t.Logf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var ids []string
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("c%d", i)
		ids = append(ids, id)
		e.toEvaluated(id, 100, 100)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	cs, pending, err := e.svc.Wait(wctx, ids, StatePaid, true)
	if err != nil || len(pending) != 0 {
		t.Fatalf("claims not paid: pending %v err %v", pending, err)
	}
	for _, c := range cs {
		if c.Payouts[0].Status != "paid" || c.History[len(c.History)-1].To != StatePaid {
			t.Fatalf("claim %s: %+v", c.ID, c.Payouts)
		}
	}
	st, _ := e.svc.Stats()
	if st.OutboxPending != 0 || st.ByState[StatePaid] != 5 || st.ByState[StateApproved] != 0 {
		t.Fatalf("stats after payout: %+v", st)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.seen["clm-c3-p1"] < 3 {
		t.Fatalf("rejected payout was not retried: %v", fs.seen)
	}
}

func TestOpPaidIdempotent(t *testing.T) {
	e := newEnv(t, Config{AutoApproveLimit: 1000})
	e.toEvaluated("x", 10, 10)
	d := NewDispatcher(e.svc, nil)
	batch, _, err := d.pending(time.Now())
	if err != nil || len(batch) != 1 {
		t.Fatalf("pending %v %v", batch, err)
	}
	for i := 0; i < 2; i++ { // a re-sent, replayed payout changes nothing
		if _, err := e.svc.exec([]opFunc{e.svc.opPaid(batch[0], 200)}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := e.svc.Get("x")
	if c.State != StatePaid || len(c.History) != 6 {
		t.Fatalf("claim after double ack: %s, %d history entries", c.State, len(c.History))
	}
}
