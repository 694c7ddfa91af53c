package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/claims"
	"github.com/finvirt/finvirt/workloads/loadgen/testbin"
)

// These tests run the real claims binary against the real remit binary.

var (
	claimsBin, remitBin string
	remitErr            error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "claims-e2e")
	if err != nil {
		panic(err)
	}
	claimsBin, err = testbin.Build(dir, "claims")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	remitBin, remitErr = testbin.Build(dir, "remit")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needRemit(t *testing.T) {
	t.Helper()
	if remitErr != nil {
		t.Skipf("real remit binary unavailable, cannot test payouts end to end: %v", remitErr)
	}
}

func call(t *testing.T, method, url string, body any, hdr map[string]string) (int, map[string]any, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m, nil
}

func must(t *testing.T, method, url string, body any, hdr map[string]string, want ...int) map[string]any {
	t.Helper()
	st, m, err := call(t, method, url, body, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for _, w := range want {
		if st == w {
			return m
		}
	}
	t.Fatalf("%s %s: status %d, want %v: %v", method, url, st, want, m)
	return nil
}

type rig struct {
	t      *testing.T
	remit  *testbin.Server
	claims *testbin.Server
	data   string
}

func newRig(t *testing.T) *rig {
	needRemit(t)
	r := &rig{t: t, data: t.TempDir()}
	addr := testbin.FreeAddr(t)
	r.remit = testbin.Start(t, remitBin, addr, "remit listening on", nil, "--listen", addr, "--data", t.TempDir())
	return r
}

// startClaims (re)starts the claims binary on the rig's data dir.
func (r *rig) startClaims(env ...string) {
	r.t.Helper()
	addr := testbin.FreeAddr(r.t)
	r.claims = testbin.Start(r.t, claimsBin, addr, "claims listening on", env,
		"--listen", addr, "--data", r.data, "--remit-url", r.remit.URL(), "--payer-account", "insurer",
		"--auto-approve-limit", "100000", "--authority-limit", "1000000")
}

func (r *rig) setup(claimants ...string) {
	r.t.Helper()
	must(r.t, "POST", r.remit.URL()+"/v1/accounts", map[string]any{"id": "insurer", "currency": "EUR", "flags": []string{}}, nil, 201, 200)
	for _, c := range claimants {
		must(r.t, "POST", r.remit.URL()+"/v1/accounts", map[string]any{"id": c, "currency": "EUR", "flags": []string{"debits_must_not_exceed_credits"}}, nil, 201, 200)
	}
	must(r.t, "POST", r.claims.URL()+"/v1/policies", map[string]any{"id": "pol-1", "status": "active", "currency": "EUR"}, nil, 201, 200)
}

func fnol(id, account string, amount int64) map[string]any {
	return map[string]any{"id": id, "policy_id": "pol-1", "claimant": map[string]any{"name": "Ann", "account_id": account},
		"loss_date": "2026-11-30", "claimed_amount": amount, "currency": "EUR"}
}

// toEvaluation walks a claim to just before evaluation.
func (r *rig) toInvestigation(id, account string, amount int64) {
	r.t.Helper()
	u := r.claims.URL() + "/v1/claims"
	must(r.t, "POST", u, fnol(id, account, amount), map[string]string{"X-Actor": "desk"}, 201)
	must(r.t, "POST", u+"/"+id+"/transition", map[string]any{"to": "triage", "actor": "desk"}, nil, 200)
	must(r.t, "POST", u+"/"+id+"/transition", map[string]any{"to": "investigation", "actor": "adjuster"}, nil, 200)
}

func (r *rig) waitPaid(id string) map[string]any {
	r.t.Helper()
	c := must(r.t, "GET", r.claims.URL()+"/v1/claims/"+id+"?wait_for=paid&timeout_ms=60000", nil, nil, 200)
	if c["state"] != "paid" {
		r.t.Fatalf("claim %s not paid within 60s: %v\nclaims log:\n%s", id, c["state"], r.claims.Log())
	}
	return c
}

func (r *rig) credits(account string) int64 {
	r.t.Helper()
	a := must(r.t, "GET", r.remit.URL()+"/v1/accounts/"+account, nil, nil, 200)
	return int64(a["credits_posted"].(float64))
}

func TestPayoutEndToEnd(t *testing.T) {
	r := newRig(t)
	r.startClaims()
	r.setup("acc-ann", "acc-bob")
	u := r.claims.URL() + "/v1/claims"
	// Auto-approved small claim.
	r.toInvestigation("small", "acc-ann", 5000)
	c := must(t, "POST", u+"/small/evaluate", map[string]any{"reserve": 5000, "actor": "adjuster"}, nil, 200)
	if c["state"] != "approved" {
		t.Fatalf("small claim not auto-approved: %v", c["state"])
	}
	// Four-eyes claim above the authority limit.
	r.toInvestigation("big", "acc-bob", 2_000_000)
	must(t, "POST", u+"/big/evaluate", map[string]any{"reserve": 2_000_000, "actor": "adjuster"}, nil, 200)
	must(t, "POST", u+"/big/approve", map[string]any{"amount": 2_000_000}, map[string]string{"X-Actor": "alice"}, 202)
	must(t, "POST", u+"/big/approve", map[string]any{"amount": 2_000_000}, map[string]string{"X-Actor": "alice"}, 422)
	must(t, "POST", u+"/big/approve", map[string]any{"amount": 2_000_000}, map[string]string{"X-Actor": "bob"}, 200)
	for id, acct := range map[string]string{"small": "acc-ann", "big": "acc-bob"} {
		c := r.waitPaid(id)
		tid := c["payouts"].([]any)[0].(map[string]any)["transfer_id"].(string)
		tr := must(t, "GET", r.remit.URL()+"/v1/transfers/"+tid, nil, nil, 200)
		if tr["credit_account_id"] != acct || tr["debit_account_id"] != "insurer" || tr["amount"].(float64) != c["approved_amount"].(float64) {
			t.Fatalf("remit transfer %v does not match claim %v", tr, c)
		}
	}
	if got := r.credits("acc-bob"); got != 2_000_000 {
		t.Fatalf("acc-bob credited %d, want 2000000", got)
	}
	// Close, reopen and pay again: a second, distinct payout.
	must(t, "POST", u+"/small/transition", map[string]any{"to": "closed", "actor": "desk"}, nil, 200)
	must(t, "POST", u+"/small/transition", map[string]any{"to": "investigation", "actor": "desk", "note": "new invoice"}, nil, 200)
	must(t, "POST", u+"/small/evaluate", map[string]any{"reserve": 700, "actor": "adjuster"}, nil, 200)
	must(t, "POST", u+"/small/approve", map[string]any{"amount": 700, "approver": "carol"}, nil, 200)
	c = r.waitPaid("small")
	if n := len(c["payouts"].([]any)); n != 2 {
		t.Fatalf("reopened claim has %d payouts, want 2", n)
	}
	must(t, "GET", r.remit.URL()+"/v1/transfers/"+claims.PayoutTransferID("small", 2), nil, nil, 200)
	if got := r.credits("acc-ann"); got != 5700 {
		t.Fatalf("acc-ann credited %d, want 5000+700", got)
	}
	st := must(t, "GET", r.claims.URL()+"/v1/stats", nil, nil, 200)
	if st["outbox_pending"].(float64) != 0 {
		t.Fatalf("outbox not drained: %v", st)
	}
	m, err := http.Get(r.claims.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(body), "claims_payouts_acked_total 3") {
		t.Fatalf("metrics lack payout count:\n%s", body)
	}
}

// TestCrashAroundRemitCall kills the claims process (SIGKILL from the
// dispatcher's crash hook) after the approval committed, once before the
// payout reached remit and once after remit applied it but before the
// claim was marked paid. After a restart each claim must end paid with
// exactly one transfer in remit.
func TestCrashAroundRemitCall(t *testing.T) {
	for _, point := range []string{"before_send", "after_send"} {
		t.Run(point, func(t *testing.T) {
			r := newRig(t)
			r.startClaims(claims.CrashEnv + "=" + point)
			r.setup("acc-crash")
			r.toInvestigation("c1", "acc-crash", 4321)
			// Auto-approval commits state + outbox; the dispatcher then
			// kills the process, possibly before this response is written.
			_, _, _ = call(t, "POST", r.claims.URL()+"/v1/claims/c1/evaluate", map[string]any{"reserve": 4321, "actor": "adjuster"}, nil)
			select {
			case <-r.claims.Done():
			case <-time.After(60 * time.Second):
				t.Fatalf("crash hook %s did not fire:\n%s", point, r.claims.Log())
			}
			tid := claims.PayoutTransferID("c1", 1)
			st, _, err := call(t, "GET", r.remit.URL()+"/v1/transfers/"+tid, nil, nil)
			want := map[string]int{"before_send": 404, "after_send": 200}[point]
			if err != nil || st != want {
				t.Fatalf("after crash %s remit GET transfer: %d %v, want %d", point, st, err, want)
			}
			r.startClaims() // restart without the hook
			c := r.waitPaid("c1")
			if hist := c["history"].([]any); hist[len(hist)-1].(map[string]any)["to"] != "paid" {
				t.Fatalf("history does not end in paid: %v", hist)
			}
			must(t, "GET", r.remit.URL()+"/v1/transfers/"+tid, nil, nil, 200)
			if got := r.credits("acc-crash"); got != 4321 {
				t.Fatalf("claimant credited %d after crash %s and restart, want exactly one payout of 4321", got, point)
			}
		})
	}
}

// TestKillDuringPayouts kill -9s claims right after a batch of 300
// approvals (payouts at random points of dispatch), restarts it, and
// checks every claim is paid exactly once.
func TestKillDuringPayouts(t *testing.T) {
	r := newRig(t)
	r.startClaims()
	r.setup("acc-k")
	var ops []map[string]any
	var want int64
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("k%d", i)
		amt := int64(100 + i)
		want += amt
		ops = append(ops, map[string]any{"op": "fnol", "claim": fnol(id, "acc-k", amt)},
			map[string]any{"op": "transition", "id": id, "to": "triage"},
			map[string]any{"op": "transition", "id": id, "to": "investigation"},
			map[string]any{"op": "evaluate", "id": id, "reserve": amt})
	}
	res := must(t, "POST", r.claims.URL()+"/v1/batch", map[string]any{"ops": ops}, map[string]string{"X-Actor": "bulk"}, 200)
	for _, x := range res["results"].([]any) {
		if s := x.(map[string]any)["status"].(float64); s >= 300 {
			t.Fatalf("batch op failed: %v", x)
		}
	}
	st := must(t, "GET", r.claims.URL()+"/v1/stats", nil, nil, 200)
	r.claims.Kill()
	t.Logf("killed claims with %v payouts still in the outbox", st["outbox_pending"])
	r.startClaims()
	for i := 0; i < 300; i++ {
		r.waitPaid(fmt.Sprintf("k%d", i))
	}
	if got := r.credits("acc-k"); got != want {
		t.Fatalf("claimant credited %d, want %d (sum of 300 payouts, each once)", got, want)
	}
}

// TestCrashAfterBatchSend: the same crash after remit applied a whole
// batch of payouts; the restarted dispatcher re-sends the batch and remit
// must replay each transfer (batch idempotency by transfer id).
func TestCrashAfterBatchSend(t *testing.T) {
	r := newRig(t)
	r.startClaims(claims.CrashEnv + "=after_send")
	r.setup("acc-b")
	var ops []map[string]any
	const n = 50
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("b%d", i)
		ops = append(ops, map[string]any{"op": "fnol", "claim": fnol(id, "acc-b", 1000)},
			map[string]any{"op": "transition", "id": id, "to": "triage"},
			map[string]any{"op": "transition", "id": id, "to": "investigation"},
			map[string]any{"op": "evaluate", "id": id, "reserve": 1000})
	}
	_, _, _ = call(t, "POST", r.claims.URL()+"/v1/batch", map[string]any{"ops": ops}, map[string]string{"X-Actor": "bulk"})
	select {
	case <-r.claims.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("crash hook did not fire:\n%s", r.claims.Log())
	}
	applied := r.credits("acc-b")
	if applied == 0 {
		t.Fatalf("crash after send but remit holds no payout")
	}
	r.startClaims()
	for i := 0; i < n; i++ {
		r.waitPaid(fmt.Sprintf("b%d", i))
	}
	if got := r.credits("acc-b"); got != n*1000 {
		t.Fatalf("claimant credited %d (had %d before restart), want %d: a payout was lost or duplicated", got, applied, n*1000)
	}
}

// TestPayoutRetriedUntilAccountExists: remit rejects the payout (the
// claimant account does not exist); the entry stays in the outbox with the
// reason visible on GET /v1/outbox, and once the account is created the
// retry pays the claim.
func TestPayoutRetriedUntilAccountExists(t *testing.T) {
	r := newRig(t)
	r.startClaims()
	r.setup()
	r.toInvestigation("late", "acc-late", 900)
	must(t, "POST", r.claims.URL()+"/v1/claims/late/evaluate", map[string]any{"reserve": 900, "actor": "adjuster"}, nil, 200)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ob := must(t, "GET", r.claims.URL()+"/v1/outbox", nil, nil, 200)
		p := ob["pending"].([]any)
		if len(p) == 1 {
			e := p[0].(map[string]any)
			if e["attempts"].(float64) >= 1 && strings.Contains(e["last_error"].(string), "credit_account_not_found") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox never showed the rejection: %v", ob)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := must(t, "GET", r.claims.URL()+"/v1/claims/late", nil, nil, 200); c["state"] != "approved" {
		t.Fatalf("rejected payout changed the claim to %v", c["state"])
	}
	must(t, "POST", r.remit.URL()+"/v1/accounts", map[string]any{"id": "acc-late", "currency": "EUR", "flags": []string{}}, nil, 201)
	r.waitPaid("late")
	if got := r.credits("acc-late"); got != 900 {
		t.Fatalf("credited %d, want 900", got)
	}
}

func TestFlagErrors(t *testing.T) {
	cases := [][]string{
		{"--dispatch-batch", "0"},
		{"--payer-account", "bad id!"},
		{"extra-arg"},
		{"--listen", "256.0.0.1:1", "--data", t.TempDir()},
	}
	for _, args := range cases {
		if !strings.Contains(strings.Join(args, " "), "--data") {
			args = append(args, "--data", t.TempDir())
		}
		if err := run(args); err == nil {
			t.Errorf("run(%v) accepted bad flags", args)
		}
	}
}

// TestShutdownAndLock: SIGTERM stops claims cleanly (exit 0), and a second
// process on the same data dir is refused while the first holds it.
func TestShutdownAndLock(t *testing.T) {
	data := t.TempDir()
	addr := testbin.FreeAddr(t)
	srv := testbin.Start(t, claimsBin, addr, "claims listening on", nil, "--listen", addr, "--data", data, "--remit-url", "http://127.0.0.1:1")
	second := exec.Command(claimsBin, "--listen", testbin.FreeAddr(t), "--data", data)
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another claims process") {
		t.Fatalf("second process on the same data dir: err %v, output %s", err, out)
	}
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("claims did not stop on SIGTERM")
	}
	if code := srv.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, srv.Log())
	}
}
