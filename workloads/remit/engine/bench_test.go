package engine

import (
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// Benchmarks for the in-process state machine + journal with real fsync.
// b.N counts transfers. Clients submit requests of perReq transfers; the
// engine coalesces them into batches of up to MaxBatch events with one fsync.
// Reported: transfers/s (durable), and p50/p99 request latency (submit to
// durable acknowledgement of a perReq-transfer request).
//
//	go test -run XXX -bench BenchmarkEngine -benchtime 2000000x ./workloads/remit/engine/

func BenchmarkEngine(b *testing.B) {
	for _, tc := range []struct {
		name     string
		accounts int
	}{{"accounts=100k", 100_000}, {"hot=10", 10}} {
		for _, perReq := range []int{1024} {
			b.Run(fmt.Sprintf("%s/req=%d/fsync", tc.name, perReq), func(b *testing.B) {
				benchEngine(b, tc.accounts, perReq, 4, false)
			})
		}
	}
}

// BenchmarkEngineSmallRequests: many clients sending one transfer each, the
// shape of the single-transfer HTTP endpoint, to show group commit at work.
func BenchmarkEngineSmallRequests(b *testing.B) {
	b.Run("accounts=100k/req=1/clients=256/fsync", func(b *testing.B) { benchEngine(b, 100_000, 1, 256, false) })
}

func benchEngine(b *testing.B, nAcc, perReq, clients int, noSync bool) {
	dir := b.TempDir()
	e, err := Open(Options{Dir: dir, NoSync: noSync, SnapshotBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ids := make([]string, nAcc)
	accs := make([]ledger.AccountInput, 0, nAcc)
	for i := range ids {
		ids[i] = fmt.Sprintf("acc-%06d", i)
		accs = append(accs, ledger.AccountInput{ID: ids[i], Currency: "EUR", Flags: ledger.FlagDebitsMustNotExceedCredits})
	}
	accs = append(accs, ledger.AccountInput{ID: "mint", Currency: "EUR"})
	for i := 0; i < len(accs); i += 8000 {
		if err := e.Do(&Request{Op: OpCreateAccounts, Accounts: accs[i:min(i+8000, len(accs))]}); err != nil {
			b.Fatal(err)
		}
	}
	fund := make([]ledger.TransferInput, 0, nAcc)
	for i, id := range ids {
		fund = append(fund, ledger.TransferInput{ID: fmt.Sprintf("fund-%d", i), DebitID: "mint", CreditID: id, Amount: 1 << 40, Currency: "EUR"})
	}
	for i := 0; i < len(fund); i += 8000 {
		if err := e.Do(&Request{Op: OpCreateTransfers, Transfers: fund[i:min(i+8000, len(fund))]}); err != nil {
			b.Fatal(err)
		}
	}
	accs, fund = nil, nil // setup data is garbage now; collect it before measuring
	runtime.GC()
	// Each client builds its requests just before sending them, as a decoder
	// would (a fresh id string per transfer); keeping a million prepared
	// transfers alive would only make the benchmark measure GC of its input.
	nReq := (b.N + perReq - 1) / perReq
	lat := make([]time.Duration, nReq)
	batches0, fsyncs0 := e.Stats().Batches.Load(), e.Stats().Fsyncs.Load()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, nReq)
	for i := 0; i < nReq; i++ {
		next <- i
	}
	close(next)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(c)))
			r := &Request{Op: OpCreateTransfers, Transfers: make([]ledger.TransferInput, 0, perReq)}
			var idb []byte
			for i := range next {
				r.Transfers = r.Transfers[:0]
				for j := i * perReq; j < (i+1)*perReq && j < b.N; j++ {
					d, cr := rng.Intn(nAcc), rng.Intn(nAcc-1)
					if cr >= d {
						cr++
					}
					idb = strconv.AppendInt(append(idb[:0], 't'), int64(j), 10)
					r.Transfers = append(r.Transfers, ledger.TransferInput{ID: string(idb), DebitID: ids[d], CreditID: ids[cr], Amount: int64(rng.Intn(1000) + 1), Currency: "EUR"})
				}
				t0 := time.Now()
				if err := e.Do(r); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
				if lat[i] > 50*time.Millisecond && os.Getenv("REMIT_BENCH_SLOW") != "" {
					fmt.Println("SLOW", i, lat[i], time.Since(start))
				}
				for _, code := range r.Codes {
					if code != ledger.OK {
						b.Errorf("transfer rejected: %v", code)
						return
					}
				}
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "transfers/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	batches, fsyncs := e.Stats().Batches.Load()-batches0, e.Stats().Fsyncs.Load()-fsyncs0
	if batches > 0 {
		b.ReportMetric(float64(b.N)/float64(batches), "transfers/batch")
	}
	if fsyncs > 0 {
		b.ReportMetric(float64(b.N)/float64(fsyncs), "transfers/fsync")
	}
	b.ReportMetric(e.Stats().CommitLatency.Quantile(0.99)*1000, "commit-p99<=ms")
	b.ReportMetric(e.Stats().FsyncLatency.Quantile(0.99)*1000, "fsync-p99<=ms")
	b.ReportMetric(0, "ns/op")
}
