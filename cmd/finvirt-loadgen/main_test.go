package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/workloads/loadgen"
	"github.com/finvirt/finvirt/workloads/loadgen/testbin"
)

// End-to-end runs of the load generator against the real workload
// binaries, built once in TestMain. A test whose binary does not build yet
// is skipped with the build error.

var bins = map[string]string{}
var binErr = map[string]error{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loadgen-e2e")
	if err != nil {
		panic(err)
	}
	for _, name := range []string{"remit", "trade", "claims"} {
		bins[name], binErr[name] = testbin.Build(dir, name)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func need(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if binErr[n] != nil {
			t.Skipf("real %s binary unavailable: %v", n, binErr[n])
		}
	}
}

// runJSON runs the CLI with -o json and decodes the report.
func runJSON(t *testing.T, args ...string) (int, *loadgen.Report, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append(args, "-o", "json"), &out, &errb)
	var rep loadgen.Report
	if code != 2 && out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s\nstderr:\n%s", err, out.String(), errb.String())
		}
	}
	return code, &rep, errb.String()
}

func checks(rep *loadgen.Report) map[string]bool {
	m := map[string]bool{}
	for _, c := range rep.Checks {
		m[c.Name] = c.OK
	}
	return m
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"bogus"}, "unknown scenario"},
		{[]string{"remit", "--rate", "10", "--concurrency", "2"}, "not both"},
		{[]string{"remit", "--crash-every", "1s"}, "--crash-every needs"},
		{[]string{"remit", "--spawn", "/bin/true"}, "--spawn needs --data"},
		{[]string{"remit", "-o", "xml"}, "use text or json"},
		{[]string{"remit", "--crash-every", "1s", "--verify-transfers=false"}, "needs --verify-transfers"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: code %d stderr %q, want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestRemitBankRealRemit: the bank checker and transfer verification pass
// on a real remit run, open loop, with reads during the run.
func TestRemitBankRealRemit(t *testing.T) {
	need(t, "remit")
	code, rep, stderr := runJSON(t, "remit", "--spawn", bins["remit"], "--data", t.TempDir(), "--rate", "300",
		"--duration", "2s", "--accounts", "20", "--initial", "50000", "--max-amount", "20000", "--read-every", "300ms")
	c := checks(rep)
	if code != 0 || !rep.Passed || !c["bank"] || !c["invariants"] || !c["transfers"] || !c["exactly_once"] {
		t.Fatalf("remit run failed (code %d): %+v\n%s", code, rep.Checks, stderr)
	}
	if rep.Figures["transfers_acked"] < 100 || rep.Figures["rejected_exceeds_credits"] == 0 {
		t.Fatalf("expected acked transfers and some overdraft rejections: %v", rep.Figures)
	}
}

// TestRemitCrashMode kills remit -9 during load (twice), restarts it, and
// checks every acknowledged transfer is present exactly once.
func TestRemitCrashMode(t *testing.T) {
	need(t, "remit")
	code, rep, stderr := runJSON(t, "remit", "--spawn", bins["remit"], "--data", t.TempDir(), "--concurrency", "4",
		"--duration", "3s", "--crash-every", "1200ms", "--accounts", "10", "--batch", "5")
	if code != 0 || !rep.Passed {
		t.Fatalf("crash-mode run failed (code %d): %+v\n%s", code, rep.Checks, stderr)
	}
	f := rep.Figures
	if f["crash_kills"] < 1 || f["verify_acked_present"] == 0 || f["verify_acked_missing"] != 0 {
		t.Fatalf("crash figures: %v", f)
	}
	if f["verify_acked_present"] != f["transfers_acked"] {
		t.Fatalf("acked %v but present %v", f["transfers_acked"], f["verify_acked_present"])
	}
}

func TestClaimsScenario(t *testing.T) {
	need(t, "remit", "claims")
	ra, ca := testbin.FreeAddr(t), testbin.FreeAddr(t)
	remit := testbin.Start(t, bins["remit"], ra, "remit listening on", nil, "--listen", ra, "--data", t.TempDir())
	cl := testbin.Start(t, bins["claims"], ca, "claims listening on", nil, "--listen", ca, "--data", t.TempDir(),
		"--remit-url", remit.URL(), "--payer-account", "insurer", "--auto-approve-limit", "1000", "--authority-limit", "5000")
	for i, mode := range [][]string{
		{"--concurrency", "4", "--batch", "1"},
		{"--concurrency", "4", "--batch", "25"},
		{"--rate", "20", "--batch", "10"}, // open loop: 200 claims/s offered
	} {
		args := append([]string{"claims", "--target", cl.URL(), "--remit-url", remit.URL(), "--duration", "1500ms",
			"--claimants", "7", "--run-id", fmt.Sprintf("r%d", i)}, mode...)
		code, rep, stderr := runJSON(t, args...)
		c := checks(rep)
		if code != 0 || !c["payout_transfers"] || !c["exactly_once"] || !c["approved_claims_paid"] || !c["remit_invariants"] {
			t.Fatalf("%v: claims run failed (code %d): %+v\n%s", mode, code, rep.Checks, stderr)
		}
		if rep.Figures["claims_paid"] == 0 || rep.Figures["claims_four_eyes"] == 0 || rep.Extra["payout"].Count == 0 {
			t.Fatalf("%v: figures %v extra %v", mode, rep.Figures, rep.Extra)
		}
	}
}

func TestTradeScenario(t *testing.T) {
	need(t, "trade")
	addr := testbin.FreeAddr(t)
	tr := testbin.Start(t, bins["trade"], addr, "trade listening on", nil, "--listen", addr,
		"--fix-listen", testbin.FreeAddr(t), "--data", t.TempDir(), "--symbols", "AAPL,MSFT")
	code, rep, stderr := runJSON(t, "trade", "--target", tr.URL(), "--symbols", "AAPL,MSFT", "--concurrency", "4",
		"--duration", "1500ms", "--seed-orders", "20")
	if code != 0 || rep.Requests == 0 {
		t.Fatalf("trade run failed (code %d): %+v\n%s", code, rep, stderr)
	}
	if e := rep.Requests - rep.OK; float64(e) > 0.01*float64(rep.Requests) {
		t.Fatalf("trade errors %v of %d", rep.Errors, rep.Requests)
	}
	if rep.Figures["mix_replace"] == 0 || rep.Figures["mix_gtc"] == 0 {
		t.Fatalf("mix not exercised: %v", rep.Figures)
	}
	fmt.Fprintf(os.Stderr, "trade: %.0f ops/s, fills %.0f\n", rep.ReqPerSec, rep.Figures["fills"])
}

// TestRemitCrashModeRemitCmd: crash mode where loadgen starts and restarts
// remit with a user-supplied shell command (--remit-cmd).
func TestRemitCrashModeRemitCmd(t *testing.T) {
	need(t, "remit")
	addr := testbin.FreeAddr(t)
	cmd := fmt.Sprintf("exec %s --listen %s --data %s", bins["remit"], addr, t.TempDir())
	code, rep, stderr := runJSON(t, "remit", "--target", "http://"+addr, "--remit-cmd", cmd, "--concurrency", "4",
		"--duration", "2500ms", "--crash-every", "1s", "--accounts", "10")
	if code != 0 || !rep.Passed || rep.Figures["crash_kills"] < 1 || strings.Count(stderr, "remit listening on") < 2 {
		t.Fatalf("crash mode with --remit-cmd failed (code %d): %+v %v\n%s", code, rep.Checks, rep.Figures, stderr)
	}
	// A remit loadgen did not start cannot be killed: refuse.
	testbin.Start(t, bins["remit"], addr, "remit listening on", nil, strings.Fields(cmd)[2:]...)
	var out, errb bytes.Buffer
	if code := run([]string{"remit", "--target", "http://" + addr, "--remit-cmd", cmd, "--crash-every", "1s"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "already serves") {
		t.Fatalf("foreign remit accepted: code %d %s", code, errb.String())
	}
}

// TestSoakRemitCrash: one minute of batched transfers with remit killed -9
// every 5s and balances read every second. FINVIRT_SOAK=1 only.
func TestSoakRemitCrash(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("soak test: set FINVIRT_SOAK=1 (about 4 minutes: 60s load, then every transfer is verified)")
	}
	need(t, "remit")
	code, rep, stderr := runJSON(t, "remit", "--spawn", bins["remit"], "--data", t.TempDir(), "--concurrency", "8",
		"--duration", "60s", "--crash-every", "5s", "--read-every", "1s", "--accounts", "100", "--batch", "10")
	if code != 0 || !rep.Passed || rep.Figures["crash_kills"] < 5 {
		t.Fatalf("soak failed (code %d): %+v %v\n%s", code, rep.Checks, rep.Figures, stderr)
	}
	t.Logf("kills %v, acked %v (all present), unacked present %v / absent %v", rep.Figures["crash_kills"],
		rep.Figures["verify_acked_present"], rep.Figures["verify_unacked_present"], rep.Figures["verify_unacked_absent"])
}
