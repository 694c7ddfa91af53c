package claims

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CrashEnv names the test hook: set it to "before_send" or "after_send" and
// the dispatcher SIGKILLs its own process at that point of the first payout
// batch, so tests can prove a crash neither loses nor duplicates payments.
const CrashEnv = "FINVIRT_CLAIMS_CRASH_AT"

// Sender submits payouts; *RemitClient implements it.
type Sender interface {
	Send(ctx context.Context, trs []RemitTransfer, keys []string) ([]RemitResult, error)
}

// Dispatcher sends pending outbox entries to remit and marks claims paid
// only after remit acknowledged them. Entries stay in the outbox (durable)
// until then, so a restart simply re-sends them; remit recognises the
// deterministic transfer id / idempotency key and replays instead of
// paying twice.
type Dispatcher struct {
	svc       *Service
	send      Sender
	BatchSize int
	crashAt   string
	mu        sync.Mutex // guards retry (read by GET /v1/outbox)
	retry     map[uint64]retryState
	Logf      func(format string, args ...any)
}

type retryState struct {
	attempts int
	next     time.Time
	lastErr  string
}

// NewDispatcher builds a dispatcher; the crash hook is read from CrashEnv.
func NewDispatcher(svc *Service, send Sender) *Dispatcher {
	d := &Dispatcher{svc: svc, send: send, BatchSize: 1000, crashAt: os.Getenv(CrashEnv),
		retry: map[uint64]retryState{}, Logf: log.Printf}
	svc.inspect = d.state
	return d
}

// state reports the retry state of an outbox entry (for GET /v1/outbox).
func (d *Dispatcher) state(seq uint64) (retryState, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.retry[seq]
	return r, ok
}

// Run dispatches until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	for ctx.Err() == nil {
		batch, wait, err := d.pending(time.Now())
		if err != nil {
			d.Logf("claims outbox read failed: %v", err)
			wait = time.Second
		}
		if len(batch) == 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-d.svc.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		d.dispatch(ctx, batch)
	}
}

// pending returns up to BatchSize entries not in backoff and, when there
// are none, how long to wait before looking again.
func (d *Dispatcher) pending(now time.Time) ([]OutboxEntry, time.Duration, error) {
	var out []OutboxEntry
	wait := 500 * time.Millisecond
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.svc.store.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bOutbox).Cursor()
		for k, v := cur.First(); k != nil && len(out) < d.BatchSize; k, v = cur.Next() {
			var e OutboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if r, ok := d.retry[e.Seq]; ok && r.next.After(now) {
				if w := r.next.Sub(now); w < wait {
					wait = w
				}
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, wait, err
}

func (d *Dispatcher) crash(point string) {
	if d.crashAt == point {
		d.Logf("claims: crash hook %s=%s: killing myself", CrashEnv, point)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never continue past the crash point
	}
}

func (d *Dispatcher) dispatch(ctx context.Context, batch []OutboxEntry) {
	trs := make([]RemitTransfer, len(batch))
	keys := make([]string, len(batch))
	for i, e := range batch {
		trs[i] = RemitTransfer{ID: e.TransferID, DebitAccountID: e.DebitAccount, CreditAccountID: e.CreditAccount,
			Amount: e.Amount, Currency: e.Currency}
		keys[i] = e.IdempotencyKey
	}
	d.crash("before_send")
	d.svc.m.payoutBatches.Add(1)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res, err := d.send.Send(sctx, trs, keys)
	cancel()
	if err != nil {
		d.Logf("claims payout batch of %d failed, will retry: %v", len(batch), err)
		for _, e := range batch {
			d.backoff(e.Seq, err.Error())
		}
		d.svc.m.payoutErrors.Add(int64(len(batch)))
		return
	}
	d.crash("after_send")
	var ops []opFunc
	for i, r := range res {
		e := batch[i]
		if r.Acked() {
			ops = append(ops, d.svc.opPaid(e, r.Status))
			d.mu.Lock()
			delete(d.retry, e.Seq)
			d.mu.Unlock()
			continue
		}
		// A rejection (e.g. payer account underfunded or claimant account
		// missing) may be fixed by an operator; keep the entry and retry
		// with backoff rather than dropping a payment.
		d.svc.m.payoutErrors.Add(1)
		if st, _ := d.state(e.Seq); st.attempts == 0 {
			d.Logf("claims payout %s for claim %s rejected by remit (%d %s: %s); retrying with backoff", e.TransferID, e.ClaimID, r.Status, r.Code, r.Error)
		}
		d.backoff(e.Seq, fmt.Sprintf("remit %d %s: %s", r.Status, r.Code, r.Error))
	}
	if len(ops) == 0 {
		return
	}
	if _, err := d.svc.exec(ops); err != nil {
		d.Logf("claims: marking %d payouts paid failed (they will be re-sent and replayed): %v", len(ops), err)
		return
	}
	d.svc.m.payoutsAcked.Add(int64(len(ops)))
}

func (d *Dispatcher) backoff(seq uint64, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.retry[seq]
	r.attempts++
	r.lastErr = why
	delay := 50 * time.Millisecond << min(r.attempts, 8)
	if delay > 10*time.Second {
		delay = 10 * time.Second
	}
	delay += time.Duration(rand.Int64N(int64(delay/4) + 1))
	r.next = time.Now().Add(delay)
	d.retry[seq] = r
}
