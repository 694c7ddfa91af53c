package main

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/loadgen"
	"github.com/finvirt/finvirt/workloads/loadgen/testbin"
)

// TestKillClaimsUnderLoad kill -9s the claims process repeatedly while the
// loadgen claims scenario runs against it, restarting it on the same
// address and data dir. At the end every paid claim must have exactly one
// remit transfer and every claimant's credits must equal its paid claims.
// FINVIRT_SOAK=1 runs it for a minute with a kill every 5s.
func TestKillClaimsUnderLoad(t *testing.T) {
	needRemit(t)
	dur, every := 3*time.Second, time.Second
	if os.Getenv("FINVIRT_SOAK") != "" {
		dur, every = time.Minute, 5*time.Second
	}
	ra, ca := testbin.FreeAddr(t), testbin.FreeAddr(t)
	remit := testbin.Start(t, remitBin, ra, "remit listening on", nil, "--listen", ra, "--data", t.TempDir())
	data := t.TempDir()
	start := func() *testbin.Server {
		return testbin.Start(t, claimsBin, ca, "claims listening on", nil, "--listen", ca, "--data", data,
			"--remit-url", remit.URL(), "--payer-account", "insurer", "--auto-approve-limit", "1000", "--authority-limit", "5000")
	}
	srv := start()
	type result struct {
		rep *loadgen.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := loadgen.RunClaims(context.Background(), loadgen.ClaimsConfig{Target: srv.URL(), RemitURL: remit.URL(),
			RunID: "kl", Batch: 20, Claimants: 5, Policies: 2, Wait: 20 * time.Second,
			Engine: loadgen.Config{Concurrency: 4, Duration: dur}})
		done <- result{rep, err}
	}()
	kills := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
loop:
	for {
		select {
		case res := <-done:
			done <- res
			break loop
		case <-tick.C:
			if kills >= int(dur/every)-1 {
				continue
			}
			srv.Kill()
			kills++
			srv = start()
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, c := range res.rep.Checks {
		if !c.OK {
			t.Errorf("check %s failed after %d kills: %s", c.Name, kills, c.Detail)
		}
	}
	if kills == 0 || res.rep.Figures["claims_paid"] == 0 {
		t.Fatalf("kills %d, paid %v", kills, res.rep.Figures["claims_paid"])
	}
	t.Logf("%d kills: %s claims paid, %s not created (request lost in a kill), errors %v", kills,
		strconv.FormatFloat(res.rep.Figures["claims_paid"], 'f', 0, 64),
		strconv.FormatFloat(res.rep.Figures["claims_not_created"], 'f', 0, 64), res.rep.Errors)
}
