package engine

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/journal"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

func open(t *testing.T, dir string, o Options) *Engine {
	t.Helper()
	o.Dir = dir
	e, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func do(t *testing.T, e *Engine, r *Request) *Request {
	t.Helper()
	if err := e.Do(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func hash(t *testing.T, e *Engine) [32]byte { return do(t, e, &Request{Op: OpHash}).Hash }

func accounts(n int) []ledger.AccountInput {
	out := []ledger.AccountInput{{ID: "mint", Currency: "EUR"}}
	for i := 0; i < n; i++ {
		out = append(out, ledger.AccountInput{ID: fmt.Sprintf("c%d", i), Currency: "EUR", Flags: ledger.FlagDebitsMustNotExceedCredits})
	}
	return out
}

// workload drives a mix of funding, customer transfers (some rejected),
// linked chains, pending/post/void and keys from several goroutines.
func workload(t *testing.T, e *Engine, clients, perClient, nAcc int) {
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			for i := 0; i < perClient; i++ {
				id := fmt.Sprintf("t-%d-%d", c, i)
				a, b := fmt.Sprintf("c%d", rng.Intn(nAcc)), fmt.Sprintf("c%d", rng.Intn(nAcc))
				if a == b {
					b = "mint"
				}
				r := &Request{Op: OpCreateTransfers}
				switch i % 5 {
				case 0:
					r.Transfers = []ledger.TransferInput{{ID: id, DebitID: "mint", CreditID: a, Amount: 100, Currency: "EUR"}}
				case 1:
					r.Transfers = []ledger.TransferInput{{ID: id, DebitID: a, CreditID: b, Amount: int64(rng.Intn(150) + 1), Currency: "EUR"}}
					r.Key, r.FP = "k"+id, [16]byte{byte(i)}
				case 2:
					r.Linked = true
					r.Transfers = []ledger.TransferInput{{ID: id + "a", DebitID: a, CreditID: b, Amount: 30, Currency: "EUR"}, {ID: id + "b", DebitID: b, CreditID: a, Amount: 60, Currency: "EUR"}}
				case 3:
					r.Transfers = []ledger.TransferInput{{ID: id, DebitID: a, CreditID: b, Amount: 10, Currency: "EUR", Pending: true, TimeoutSeconds: int64(rng.Intn(2))}}
				case 4:
					r.Op, r.ID = OpPost, fmt.Sprintf("t-%d-%d", c, i-1)
					if rng.Intn(2) == 0 {
						r.Op = OpVoid
					}
				}
				if err := e.Do(r); err != nil {
					t.Error(err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
}

func TestReplayIsByteIdentical(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, Options{MaxBatch: 64})
	do(t, e, &Request{Op: OpCreateAccounts, Accounts: accounts(20)})
	workload(t, e, 4, 150, 20)
	if r := do(t, e, &Request{Op: OpInvariants}); !r.InvOK {
		t.Fatalf("invariants violated: %+v", r.Inv["EUR"])
	}
	want := hash(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	st, log, rec, err := Recover(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	log.Close()
	if rec.Records == 0 {
		t.Fatal("nothing replayed")
	}
	if st.Hash() != want {
		t.Fatal("replayed state hash differs from the live state")
	}
	e2 := open(t, dir, Options{})
	defer e2.Close()
	if hash(t, e2) != want {
		t.Fatal("reopened engine differs")
	}
}

func TestSnapshotRotationRecovery(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, Options{MaxBatch: 32, SnapshotBytes: 8 << 10})
	do(t, e, &Request{Op: OpCreateAccounts, Accounts: accounts(10)})
	workload(t, e, 3, 200, 10)
	want := hash(t, e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if e.Stats().Snapshots.Load() == 0 {
		t.Fatal("no snapshot taken")
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshot-*"))
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*"))
	if len(snaps) != 1 || len(segs) > 3 {
		t.Fatalf("old files not cleaned: %d snapshots, %d segments", len(snaps), len(segs))
	}
	e2 := open(t, dir, Options{})
	defer e2.Close()
	if e2.Recovery().SnapshotSeq == 0 {
		t.Fatal("recovery ignored the snapshot")
	}
	if hash(t, e2) != want {
		t.Fatal("state after snapshot+replay differs")
	}
}

func TestTornTailRecovery(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, Options{})
	do(t, e, &Request{Op: OpCreateAccounts, Accounts: accounts(3)})
	do(t, e, &Request{Op: OpCreateTransfers, Transfers: []ledger.TransferInput{{ID: "t1", DebitID: "mint", CreditID: "c1", Amount: 5, Currency: "EUR"}}})
	want := hash(t, e)
	e.Close()
	// simulate a crash in the middle of appending the next batch
	seg := filepath.Join(dir, journal.SegmentName(1))
	var en ledger.Entry
	en = ledger.Entry{Kind: ledger.EntryTransfers, TS: 1 << 62, Transfers: []ledger.TransferInput{{ID: "t2", DebitID: "mint", CreditID: "c1", Amount: 5, Currency: "EUR"}}}
	b, start := journal.BeginRecord(nil)
	b = append(b, 9)
	b = ledger.AppendEntry(b, &en)
	journal.FinishRecord(b, start)
	// a crash cuts the append at the logical end, inside the zeroed preallocation
	data, _ := os.ReadFile(seg)
	end, _, err := journal.Scan(seg, data, true, func(int64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(seg, os.O_WRONLY, 0)
	f.WriteAt(b[:len(b)/2], end)
	f.Close()
	e2 := open(t, dir, Options{})
	defer e2.Close()
	if e2.Recovery().TornBytes == 0 {
		t.Fatal("torn tail not reported")
	}
	if hash(t, e2) != want {
		t.Fatal("torn tail changed the recovered state")
	}
	if r := do(t, e2, &Request{Op: OpGetTransfer, ID: "t2"}); r.Found {
		t.Fatal("torn (unacknowledged) transfer visible")
	}
}

func TestJournalReplayRejectsForeignRecord(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, Options{})
	do(t, e, &Request{Op: OpCreateAccounts, Accounts: accounts(1)})
	e.Close()
	// a well-framed record whose batch sequence does not follow: a duplicated or foreign record
	b, start := journal.BeginRecord(nil)
	b = append(b, 7)
	journal.FinishRecord(b, start)
	seg := filepath.Join(dir, journal.SegmentName(1))
	data, _ := os.ReadFile(seg)
	end, _, _ := journal.Scan(seg, data, true, func(int64, []byte) error { return nil })
	f, _ := os.OpenFile(seg, os.O_WRONLY, 0)
	f.WriteAt(b, end)
	f.Close()
	if _, err := Open(Options{Dir: dir}); err == nil {
		t.Fatal("out-of-sequence record accepted")
	}
}

func TestTimeoutSweepWithoutTraffic(t *testing.T) {
	dir := t.TempDir()
	e := open(t, dir, Options{Tick: 10 * time.Millisecond})
	defer e.Close()
	do(t, e, &Request{Op: OpCreateAccounts, Accounts: accounts(2)})
	do(t, e, &Request{Op: OpCreateTransfers, Transfers: []ledger.TransferInput{{ID: "p", DebitID: "mint", CreditID: "c0", Amount: 5, Currency: "EUR", Pending: true, TimeoutSeconds: 1}}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do(t, e, &Request{Op: OpGetTransfer, ID: "p"})
		if r.Transfer.Status == ledger.StatusExpired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending transfer never expired: %v", r.Transfer.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := do(t, e, &Request{Op: OpGetAccount, ID: "c0"}).Account; a.CreditsPending != 0 {
		t.Fatalf("reservation not released: %+v", a)
	}
}

func TestCloseRefusesNewWork(t *testing.T) {
	e := open(t, t.TempDir(), Options{})
	e.Close()
	if err := e.Do(&Request{Op: OpHash}); err != ErrClosed {
		t.Fatalf("got %v", err)
	}
}
