package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/loadgen"
	"github.com/finvirt/finvirt/workloads/loadgen/testbin"
)

// BenchmarkClaimsEndToEnd drives the real claims binary against the real
// remit binary with the loadgen claims scenario: FNOL -> ... -> approved
// -> paid (remit acknowledged), reporting paid claims per second. Goal:
// >= 5000 claims/s with batching on a 2-core machine.
func BenchmarkClaimsEndToEnd(b *testing.B) {
	if remitErr != nil {
		b.Skipf("real remit binary unavailable: %v", remitErr)
	}
	for _, bc := range []struct{ batch, conc int }{{1, 16}, {50, 4}, {200, 4}} {
		b.Run(fmt.Sprintf("batch-%d-conc-%d", bc.batch, bc.conc), func(b *testing.B) {
			ra, ca := testbin.FreeAddr(b), testbin.FreeAddr(b)
			remit := testbin.Start(b, remitBin, ra, "remit listening on", nil, "--listen", ra, "--data", b.TempDir())
			cl := testbin.Start(b, claimsBin, ca, "claims listening on", nil, "--listen", ca, "--data", b.TempDir(),
				"--remit-url", remit.URL(), "--payer-account", "insurer")
			rep, err := loadgen.RunClaims(context.Background(), loadgen.ClaimsConfig{Target: cl.URL(), RemitURL: remit.URL(),
				RunID: "bench", Batch: bc.batch, Claimants: 100, Policies: 10,
				Engine: loadgen.Config{Concurrency: bc.conc, Duration: 5 * time.Second}})
			if err != nil {
				b.Fatal(err)
			}
			if !rep.Passed {
				b.Fatalf("checks failed: %+v", rep.Checks)
			}
			b.ReportMetric(rep.Figures["claims_paid_per_s"], "claims/s")
			b.ReportMetric(rep.Latency.P99, "e2e-p99-ms")
			b.ReportMetric(rep.Extra["payout"].P50, "payout-p50-ms")
			b.ReportMetric(rep.Extra["payout"].P99, "payout-p99-ms")
		})
	}
}
