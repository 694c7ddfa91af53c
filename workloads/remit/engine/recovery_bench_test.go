package engine

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/journal"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// BenchmarkRecovery measures start-up time for a ledger of 100k accounts and
// 1M transfers: replaying the whole journal versus loading a snapshot.
//
//	go test -run XXX -bench BenchmarkRecovery -benchtime 1x ./workloads/remit/engine/
func BenchmarkRecovery(b *testing.B) {
	dir := b.TempDir()
	e, err := Open(Options{Dir: dir, NoSync: true, SnapshotBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	const nAcc, nTr = 100_000, 1_000_000
	accs := []ledger.AccountInput{{ID: "mint", Currency: "EUR"}}
	for i := 0; i < nAcc; i++ {
		accs = append(accs, ledger.AccountInput{ID: fmt.Sprintf("acc-%06d", i), Currency: "EUR"})
	}
	for i := 0; i < len(accs); i += 8000 {
		e.Do(&Request{Op: OpCreateAccounts, Accounts: accs[i:min(i+8000, len(accs))]})
	}
	r := &Request{Op: OpCreateTransfers}
	for i := 0; i < nTr; i++ {
		r.Transfers = append(r.Transfers, ledger.TransferInput{ID: "t" + strconv.Itoa(i), DebitID: accs[i%nAcc].ID, CreditID: accs[(i*7+1)%nAcc+1].ID, Amount: 1, Currency: "EUR"})
		if len(r.Transfers) == 8000 {
			if err := e.Do(r); err != nil {
				b.Fatal(err)
			}
			r = &Request{Op: OpCreateTransfers}
		}
	}
	e.Close()
	measure := func(name string) [32]byte {
		t0 := time.Now()
		st, log, rec, err := Recover(dir, true)
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(t0)
		log.Close()
		b.ReportMetric(float64(el.Milliseconds()), name+"-ms")
		b.Logf("%s: %v (snapshot %d, %d records, %d transfers)", name, el, rec.SnapshotSeq, rec.Records, st.NumTransfers())
		return st.Hash()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h1 := measure("journal-replay")
		st, log, _, err := Recover(dir, true)
		if err != nil {
			b.Fatal(err)
		}
		log.Rotate()
		if err := journal.WriteSnapshot(dir, log.Seq(), st.AppendSnapshot(nil), true); err != nil {
			b.Fatal(err)
		}
		log.Close()
		if h2 := measure("snapshot-load"); h1 != h2 {
			b.Fatal("snapshot recovery differs from journal replay")
		}
	}
	b.ReportMetric(0, "ns/op")
}
