package httpapi

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAccountsAPI(t *testing.T) {
	e := newEnv(t, Options{})
	e.bank()
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"new", `{"id":"carol","currency":"EUR","flags":["credits_must_not_exceed_debits"]}`, 201, ""},
		{"identical", `{"id":"alice","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`, 200, ""},
		{"other currency", `{"id":"alice","currency":"USD","flags":["debits_must_not_exceed_credits"]}`, 422, "exists_with_different_currency"},
		{"other flags", `{"id":"alice","currency":"EUR"}`, 422, "exists_with_different_flags"},
		{"unknown flag", `{"id":"x","currency":"EUR","flags":["vip"]}`, 400, "invalid_flags"},
		{"bad id", `{"id":"a b","currency":"EUR"}`, 400, "invalid_id"},
		{"bad currency", `{"id":"x","currency":"euro"}`, 400, "invalid_currency"},
		{"unknown field", `{"id":"x","currency":"EUR","owner":"me"}`, 400, "invalid_json"},
		{"malformed", `{"id":"x",`, 400, "invalid_json"},
		{"trailing data", `{"id":"x","currency":"EUR"} {}`, 400, "invalid_json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.observe()
			r := e.mustStatus(e.call("POST", "/v1/accounts", "", tc.body), tc.status)
			if tc.code != "" {
				m := r.json(t)
				if m["code"] != tc.code || m["error"] == "" {
					t.Fatalf("got %s, want code %s", r.body, tc.code)
				}
				if e.observe() != before {
					t.Fatal("rejected request changed state")
				}
			}
		})
	}
	m := e.mustStatus(e.call("GET", "/v1/accounts/alice", "", ""), 200).json(t)
	for k, want := range map[string]float64{"debits_posted": 0, "credits_posted": 1000, "debits_pending": 0, "credits_pending": 0, "balance": 1000} {
		if m[k] != want {
			t.Fatalf("%s = %v, want %v (%v)", k, m[k], want, m)
		}
	}
	if e.call("GET", "/v1/accounts/nobody", "", "").code(t) != "account_not_found" {
		t.Fatal("missing account not 404 account_not_found")
	}
	r := e.mustStatus(e.call("POST", "/v1/accounts/batch", "", `{"accounts":[{"id":"d1","currency":"EUR"},{"id":"alice","currency":"USD"},{"id":"d1","currency":"EUR"}]}`), 200)
	if got := string(r.body); !strings.Contains(got, `{"id":"d1","status":201,"code":"","error":""},{"id":"alice","status":422,"code":"exists_with_different_currency"`) ||
		!strings.Contains(got, `{"id":"d1","status":200`) {
		t.Fatalf("batch results %s", got)
	}
}

func TestTransferRejectionsChangeNothing(t *testing.T) {
	e := newEnv(t, Options{})
	e.bank()
	body := func(id, dr, cr, amt, ccy string) string {
		return fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":%s,"currency":%q}`, id, dr, cr, amt, ccy)
	}
	for i, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"overdraft", body("t", "alice", "bob", "1001", "EUR"), 422, "exceeds_credits"},
		{"unknown debit", body("t", "ghost", "bob", "1", "EUR"), 422, "debit_account_not_found"},
		{"unknown credit", body("t", "alice", "ghost", "1", "EUR"), 422, "credit_account_not_found"},
		{"currency mismatch", body("t", "mint", "usd", "1", "EUR"), 422, "currency_mismatch"},
		{"wrong currency both", body("t", "alice", "bob", "1", "USD"), 422, "currency_mismatch"},
		{"zero", body("t", "alice", "bob", "0", "EUR"), 400, "invalid_amount"},
		{"negative", body("t", "alice", "bob", "-3", "EUR"), 400, "invalid_amount"},
		{"fraction", body("t", "alice", "bob", "1.5", "EUR"), 400, "invalid_amount"},
		{"beyond int64", body("t", "alice", "bob", "9223372036854775808", "EUR"), 400, "invalid_amount"},
		{"overflow of a total", body("t", "mint", "alice", "9223372036854775000", "EUR"), 400, "invalid_amount"},
		{"missing amount", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","currency":"EUR"}`, 400, "invalid_amount"},
		{"boolean amount", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","amount":true,"currency":"EUR"}`, 400, "invalid_amount"},
		{"string amount", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","amount":"5","currency":"EUR"}`, 400, "invalid_amount"},
		{"exponent amount", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","amount":1e3,"currency":"EUR"}`, 400, "invalid_amount"},
		{"null amount", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","amount":null,"currency":"EUR"}`, 400, "invalid_amount"},
		{"unknown field", `{"id":"t","debit_account_id":"alice","credit_account_id":"bob","amount":1,"currency":"EUR","memo":"x"}`, 400, "invalid_json"},
		{"malformed", `{"id":"t",`, 400, "invalid_json"},
		{"bad id", body("t t", "alice", "bob", "1", "EUR"), 400, "invalid_id"},
		{"same account", body("t", "alice", "alice", "1", "EUR"), 400, "accounts_must_be_different"},
		{"exists with different amount", body("fund", "mint", "alice", "999", "EUR"), 422, "exists_with_different_amount"},
		{"exists with different debit", body("fund", "bob", "alice", "1000", "EUR"), 422, "exists_with_different_debit_account_id"},
		{"exists with different credit", body("fund", "mint", "bob", "1000", "EUR"), 422, "exists_with_different_credit_account_id"},
		{"too large body", `{"id":"` + strings.Repeat("x", MaxSingleBody) + `"}`, 413, "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.observe()
			r := e.mustStatus(e.call("POST", "/v1/transfers", fmt.Sprintf("key-%d", i), tc.body), tc.status)
			if m := r.json(t); m["code"] != tc.code || len(m["error"].(string)) < 10 {
				t.Fatalf("got %s, want code %s", r.body, tc.code)
			}
			if e.observe() != before {
				t.Fatal("rejected transfer changed state")
			}
		})
	}
	// the rejections did not consume their keys: a corrected request under the same key succeeds
	e.mustStatus(e.call("POST", "/v1/transfers", "key-0", body("t", "alice", "bob", "10", "EUR")), 201)
	if e.balance("alice") != 990 || e.balance("bob") != 10 {
		t.Fatal("balances after the corrected transfer")
	}
}

func TestIdempotencyKey(t *testing.T) {
	hold := make(chan struct{})
	entered := make(chan struct{}, 1)
	e := newEnv(t, Options{BeforeSubmit: func(key string) {
		if key == "slow" {
			entered <- struct{}{}
			<-hold
		}
	}})
	e.bank()
	tx := `{"id":"t1","debit_account_id":"alice","credit_account_id":"bob","amount":100,"currency":"EUR"}`
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "", tx), 400); r.code(t) != "idempotency_key_missing" {
		t.Fatal(string(r.body))
	}
	first := e.mustStatus(e.call("POST", "/v1/transfers", "k1", tx), 201)
	again := e.mustStatus(e.call("POST", "/v1/transfers", "k1", " "+tx+"\n"), 200)
	if again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("replay: header %q body %s vs %s", again.header.Get("Idempotent-Replayed"), again.body, first.body)
	}
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "k1", strings.Replace(tx, "100", "101", 1)), 422); r.code(t) != "idempotency_key_mismatch" {
		t.Fatal(string(r.body))
	}
	// same transfer id, new key: identical fields return the original, different ones are rejected
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "k2", tx), 200); !strings.Contains(string(r.body), `"status":"posted"`) {
		t.Fatal(string(r.body))
	}
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "k3", strings.Replace(tx, "bob", "mint", 1)), 422); r.code(t) != "exists_with_different_credit_account_id" {
		t.Fatal(string(r.body))
	}
	if e.balance("alice") != 900 || e.balance("bob") != 100 {
		t.Fatal("the transfer was applied more than once")
	}
	// in flight: hold the first request inside the server, send the same key again
	var wg sync.WaitGroup
	var slow resp
	wg.Add(1)
	go func() {
		defer wg.Done()
		slow = e.call("POST", "/v1/transfers", "slow", `{"id":"t2","debit_account_id":"alice","credit_account_id":"bob","amount":1,"currency":"EUR"}`)
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("slow request never reached the server")
	}
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "slow", `{"id":"t2","debit_account_id":"alice","credit_account_id":"bob","amount":1,"currency":"EUR"}`), 409); r.code(t) != "idempotency_key_in_flight" {
		t.Fatal(string(r.body))
	}
	close(hold)
	wg.Wait()
	e.mustStatus(slow, 201)
	e.mustStatus(e.call("POST", "/v1/transfers", "slow", `{"id":"t2","debit_account_id":"alice","credit_account_id":"bob","amount":1,"currency":"EUR"}`), 200)
}

func TestBatchEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	e.bank()
	batch := `{"linked":%s,"transfers":[
		{"id":"b1","debit_account_id":"alice","credit_account_id":"bob","amount":300,"currency":"EUR"},
		{"id":"b2","debit_account_id":"alice","credit_account_id":"bob","amount":800,"currency":"EUR"},
		{"id":"b3","debit_account_id":"bob","credit_account_id":"ghost","amount":1,"currency":"EUR"},
		{"id":"b4","debit_account_id":"bob","credit_account_id":"alice","amount":100,"currency":"EUR"}]}`
	before := e.observe()
	r := e.mustStatus(e.call("POST", "/v1/transfers/batch", "", fmt.Sprintf(batch, "true")), 200)
	want := []string{`"id":"b1","status":422,"code":"linked_event_failed"`, `"id":"b2","status":422,"code":"exceeds_credits"`,
		`"id":"b3","status":422,"code":"linked_event_failed"`, `"id":"b4","status":422,"code":"linked_event_failed"`}
	for _, w := range want {
		if !strings.Contains(string(r.body), w) {
			t.Fatalf("linked results %s lack %s", r.body, w)
		}
	}
	if e.observe() != before {
		t.Fatal("failed linked batch applied something")
	}
	r = e.mustStatus(e.call("POST", "/v1/transfers/batch", "", fmt.Sprintf(batch, "false")), 200)
	for _, w := range []string{`"id":"b1","status":201`, `"id":"b2","status":422,"code":"exceeds_credits"`, `"id":"b3","status":422,"code":"credit_account_not_found"`, `"id":"b4","status":201`} {
		if !strings.Contains(string(r.body), w) {
			t.Fatalf("results %s lack %s", r.body, w)
		}
	}
	if e.balance("alice") != 800 || e.balance("bob") != 200 {
		t.Fatalf("balances alice %d bob %d", e.balance("alice"), e.balance("bob"))
	}
	// resending: ids make the batch idempotent
	r = e.mustStatus(e.call("POST", "/v1/transfers/batch", "", fmt.Sprintf(batch, "false")), 200)
	// b1 and b4 are not applied twice; b2 now fits (alice has 800) and is applied once
	if !strings.Contains(string(r.body), `"id":"b1","status":200`) || !strings.Contains(string(r.body), `"id":"b4","status":200`) ||
		!strings.Contains(string(r.body), `"id":"b2","status":201`) || e.balance("alice") != 0 || e.balance("bob") != 1000 {
		t.Fatalf("resend %s", r.body)
	}
	linkedOK := `{"linked":true,"transfers":[{"id":"c1","debit_account_id":"bob","credit_account_id":"alice","amount":800,"currency":"EUR"},{"id":"c2","debit_account_id":"alice","credit_account_id":"bob","amount":300,"currency":"EUR"}]}`
	r = e.mustStatus(e.call("POST", "/v1/transfers/batch", "", linkedOK), 200)
	if strings.Count(string(r.body), `"status":201`) != 2 || e.balance("alice") != 500 {
		t.Fatalf("linked ok %s", r.body)
	}
	for _, bad := range []string{`{"transfers":[]}`, `{"linked":true}`, `{"transfers":[{"id":"x","oops":1}]}`} {
		e.mustStatus(e.call("POST", "/v1/transfers/batch", "", bad), 400)
	}
}

func TestTwoPhaseAPI(t *testing.T) {
	e := newEnv(t, Options{})
	e.bank()
	pend := func(id string, amt, timeout int) string {
		return fmt.Sprintf(`{"id":%q,"debit_account_id":"alice","credit_account_id":"bob","amount":%d,"currency":"EUR","pending":true,"timeout_seconds":%d}`, id, amt, timeout)
	}
	if r := e.mustStatus(e.call("POST", "/v1/transfers", "p1", pend("p1", 600, 0)), 201); !strings.Contains(string(r.body), `"status":"pending"`) {
		t.Fatal(string(r.body))
	}
	a := e.mustStatus(e.call("GET", "/v1/accounts/alice", "", ""), 200).json(t)
	if a["debits_pending"] != 600.0 || a["balance"] != 1000.0 {
		t.Fatalf("alice %v", a)
	}
	if e.call("POST", "/v1/transfers", "o1", `{"id":"o1","debit_account_id":"alice","credit_account_id":"bob","amount":401,"currency":"EUR"}`).code(t) != "exceeds_credits" {
		t.Fatal("pending amount not counted against the overdraft flag")
	}
	e.mustStatus(e.call("POST", "/v1/transfers/p1/post", "", ""), 400)
	if r := e.mustStatus(e.call("POST", "/v1/transfers/p1/post", "post-p1", ""), 200); !strings.Contains(string(r.body), `"status":"posted"`) {
		t.Fatal(string(r.body))
	}
	if r := e.mustStatus(e.call("POST", "/v1/transfers/p1/post", "post-p1", ""), 200); r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("post replay not marked")
	}
	if e.call("POST", "/v1/transfers/p1/void", "void-p1", "").code(t) != "pending_transfer_already_posted" {
		t.Fatal("void after post")
	}
	if e.call("POST", "/v1/transfers/fund/post", "post-fund", "").code(t) != "transfer_not_pending" {
		t.Fatal("post of a posted transfer")
	}
	if e.call("POST", "/v1/transfers/nope/void", "void-nope", "").code(t) != "transfer_not_found" {
		t.Fatal("void of a missing transfer")
	}
	if e.balance("alice") != 400 || e.balance("bob") != 600 {
		t.Fatal("post did not move the money")
	}
	e.mustStatus(e.call("POST", "/v1/transfers", "p2", pend("p2", 100, 0)), 201)
	if r := e.mustStatus(e.call("POST", "/v1/transfers/p2/void", "void-p2", ""), 200); !strings.Contains(string(r.body), `"status":"voided"`) {
		t.Fatal(string(r.body))
	}
	e.mustStatus(e.call("POST", "/v1/transfers", "p3", pend("p3", 100, 1)), 201)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(string(e.call("GET", "/v1/transfers/p3", "", "").body), `"status":"expired"`) {
		if time.Now().After(deadline) {
			t.Fatal("p3 never expired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if e.call("POST", "/v1/transfers/p3/post", "post-p3", "").code(t) != "pending_transfer_expired" {
		t.Fatal("post after expiry")
	}
	a = e.mustStatus(e.call("GET", "/v1/accounts/alice", "", ""), 200).json(t)
	if a["debits_pending"] != 0.0 || a["balance"] != 400.0 {
		t.Fatalf("alice after void+expiry %v", a)
	}
	if r := e.mustStatus(e.call("GET", "/v1/invariants", "", ""), 200).json(t); r["ok"] != true {
		t.Fatalf("invariants %v", r)
	}
	if e.call("GET", "/v1/transfers/zzz", "", "").code(t) != "transfer_not_found" {
		t.Fatal("GET of missing transfer")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, Options{})
	e.bank()
	if r := e.mustStatus(e.call("GET", "/healthz", "", ""), 200); string(r.body) != "ok" {
		t.Fatal(string(r.body))
	}
	r := e.mustStatus(e.call("GET", "/metrics", "", ""), 200)
	if !strings.Contains(string(r.body), "remit_transfers_created_total 1\n") || !strings.Contains(string(r.body), "remit_fsyncs_total") ||
		!strings.Contains(string(r.body), `remit_fsync_seconds_bucket{le="+Inf"}`) {
		t.Fatal(string(r.body))
	}
	if e.call("GET", "/v1/nothing", "", "").status != 404 {
		t.Fatal("unknown path")
	}
}
