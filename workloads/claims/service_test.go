package claims

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// env is a claims service over a real bbolt store in a temp dir, served by
// httptest. No dispatcher runs unless a test starts one.
type env struct {
	t   *testing.T
	svc *Service
	srv *httptest.Server
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if cfg.PayerAccount == "" {
		cfg.PayerAccount = "insurer"
	}
	svc, err := NewService(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, svc: svc, srv: srv}
	e.must("POST", "/v1/policies", `{"id":"pol-1","status":"active","currency":"EUR"}`, "", 201)
	e.must("POST", "/v1/policies", `{"id":"pol-lapsed","status":"lapsed","currency":"EUR"}`, "", 201)
	return e
}

func (e *env) call(method, path, body, actor string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if actor != "" {
		req.Header.Set("X-Actor", actor)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, m
}

func (e *env) must(method, path, body, actor string, want int) map[string]any {
	e.t.Helper()
	st, m := e.call(method, path, body, actor)
	if st != want {
		e.t.Fatalf("%s %s %s: status %d, want %d: %v", method, path, body, st, want, m)
	}
	return m
}

func (e *env) fnol(id string, amount int64, extra string) {
	e.t.Helper()
	e.must("POST", "/v1/claims", fmt.Sprintf(`{"id":%q,"policy_id":"pol-1","claimant":{"name":"Ann","account_id":"acc-ann"},"loss_date":"2026-11-30","claimed_amount":%d,"currency":"EUR"%s}`, id, amount, extra), "clerk", 201)
}

// toEvaluated walks a claim fnol -> triage -> investigation -> evaluated.
func (e *env) toEvaluated(id string, amount, reserve int64) map[string]any {
	e.t.Helper()
	e.fnol(id, amount, "")
	e.must("POST", "/v1/claims/"+id+"/transition", `{"to":"triage"}`, "clerk", 200)
	e.must("POST", "/v1/claims/"+id+"/transition", `{"to":"investigation","note":"site visit"}`, "adjuster", 200)
	return e.must("POST", "/v1/claims/"+id+"/evaluate", fmt.Sprintf(`{"reserve":%d}`, reserve), "adjuster", 200)
}

func (e *env) state(id string) string {
	e.t.Helper()
	return e.must("GET", "/v1/claims/"+id, "", "", 200)["state"].(string)
}

func TestTransitionTable(t *testing.T) {
	cases := []struct {
		from, to State
		act      Action
		ok       bool
	}{
		{StateFNOL, StateTriage, ActTransition, true},
		{StateFNOL, StateInvestigation, "", false},
		{StateTriage, StateInvestigation, ActTransition, true},
		{StateInvestigation, StateEvaluated, ActEvaluate, true},
		{StateEvaluated, StateApproved, ActApprove, true},
		{StateEvaluated, StateDenied, ActDeny, true},
		{StateApproved, StatePaid, ActPay, true},
		{StateApproved, StateWithdrawn, "", false},
		{StatePaid, StateClosed, ActTransition, true},
		{StateClosed, StateInvestigation, ActReopen, true},
		{StateDenied, StateInvestigation, ActReopen, true},
		{StateWithdrawn, StateTriage, "", false},
		{StateFNOL, StateWithdrawn, ActWithdraw, true},
		{StateEvaluated, StateWithdrawn, ActWithdraw, true},
		{StatePaid, StateWithdrawn, "", false},
	}
	for _, c := range cases {
		act, ok := ActionFor(c.from, c.to)
		if ok != c.ok || act != c.act {
			t.Errorf("%s -> %s: got (%q,%v), want (%q,%v)", c.from, c.to, act, ok, c.act, c.ok)
		}
	}
	for _, s := range AllStates {
		if !ValidState(s) {
			t.Errorf("state %s missing from table", s)
		}
	}
}

func TestLifecycleAutoApprove(t *testing.T) {
	e := newEnv(t, Config{AutoApproveLimit: 1000, AuthorityLimit: 5000})
	c := e.toEvaluated("c1", 800, 800)
	if c["state"] != "approved" || c["auto_approved"] != true {
		t.Fatalf("small claim not auto-approved: %v", c)
	}
	pay := c["payouts"].([]any)[0].(map[string]any)
	if pay["transfer_id"] != "clm-c1-p1" || pay["amount"].(float64) != 800 {
		t.Fatalf("payout %v", pay)
	}
	hist := c["history"].([]any)
	if len(hist) != 5 {
		t.Fatalf("history has %d entries, want 5: %v", len(hist), hist)
	}
	last := hist[4].(map[string]any)
	if last["actor"] != AutoApprover || last["from"] != "evaluated" || last["to"] != "approved" {
		t.Fatalf("last history entry %v", last)
	}
	st := e.must("GET", "/v1/stats", "", "", 200)
	if st["outbox_pending"].(float64) != 1 {
		t.Fatalf("outbox not written atomically with approval: %v", st)
	}
}

func TestAutoApproveRules(t *testing.T) {
	cases := []struct {
		name    string
		amount  int64
		reserve int64
		extra   string
		policy  string
		auto    bool
	}{
		{"under limit", 1000, 1000, "", "pol-1", true},
		{"over limit", 1001, 2000, "", "pol-1", false},
		{"fraud flag", 10, 10, `,"fraud_flags":["duplicate_invoice"]`, "pol-1", false},
		{"reserve short", 500, 400, "", "pol-1", false},
		{"lapsed policy", 10, 10, "", "pol-lapsed", false},
	}
	e := newEnv(t, Config{AutoApproveLimit: 1000, AuthorityLimit: 5000})
	for i, c := range cases {
		id := fmt.Sprintf("r%d", i)
		e.must("POST", "/v1/claims", fmt.Sprintf(`{"id":%q,"policy_id":%q,"claimant":{"name":"A","account_id":"acc"},"loss_date":"2026-01-02","claimed_amount":%d,"currency":"EUR"%s}`, id, c.policy, c.amount, c.extra), "clerk", 201)
		e.must("POST", "/v1/claims/"+id+"/transition", `{"to":"triage"}`, "clerk", 200)
		e.must("POST", "/v1/claims/"+id+"/transition", `{"to":"investigation"}`, "clerk", 200)
		m := e.must("POST", "/v1/claims/"+id+"/evaluate", fmt.Sprintf(`{"reserve":%d}`, c.reserve), "adj", 200)
		if got := m["state"] == "approved"; got != c.auto {
			t.Errorf("%s: auto-approved=%v, want %v (%v)", c.name, got, c.auto, m["state"])
		}
	}
}

func TestFourEyes(t *testing.T) {
	e := newEnv(t, Config{AutoApproveLimit: 0, AuthorityLimit: 5000})
	e.toEvaluated("big", 9000, 9000)
	m := e.must("POST", "/v1/claims/big/approve", `{"approver":"alice","amount":9000}`, "", 202)
	if m["state"] != "evaluated" || m["awaiting_second_approval"] != true {
		t.Fatalf("first approval should await a second: %v", m)
	}
	_, m = e.call("POST", "/v1/claims/big/approve", `{"approver":"alice","amount":9000}`, "")
	if m["code"] != "four_eyes_same_approver" {
		t.Fatalf("same approver twice: %v", m)
	}
	_, m = e.call("POST", "/v1/claims/big/approve", `{"amount":8000}`, "bob")
	if m["code"] != "approval_amount_mismatch" {
		t.Fatalf("amount mismatch: %v", m)
	}
	m = e.must("POST", "/v1/claims/big/approve", `{"amount":9000}`, "bob", 200)
	apps := m["approvals"].([]any)
	if m["state"] != "approved" || len(apps) != 2 || apps[0].(map[string]any)["approver"] != "alice" || apps[1].(map[string]any)["approver"] != "bob" {
		t.Fatalf("two approvers not recorded: %v", m)
	}
	// Below the authority limit one approver suffices.
	e.toEvaluated("small", 4000, 4000)
	if m := e.must("POST", "/v1/claims/small/approve", `{"amount":4000}`, "alice", 200); m["state"] != "approved" {
		t.Fatalf("single approval below authority: %v", m)
	}
}

func TestRejectionsChangeNothing(t *testing.T) {
	e := newEnv(t, Config{AuthorityLimit: 5000})
	e.toEvaluated("c", 3000, 2000)
	cases := []struct {
		name, method, path, body, actor string
		status                          int
		code                            string
	}{
		{"malformed", "POST", "/v1/claims/c/approve", `{"amount":`, "a", 400, "malformed_json"},
		{"unknown field", "POST", "/v1/claims/c/approve", `{"amount":1,"ammount":2}`, "a", 400, "unknown_field"},
		{"trailing", "POST", "/v1/claims/c/approve", `{"amount":1} {}`, "a", 400, "malformed_json"},
		{"negative", "POST", "/v1/claims/c/approve", `{"amount":-5}`, "a", 400, "invalid_amount"},
		{"string amount", "POST", "/v1/claims/c/approve", `{"amount":"5"}`, "a", 400, "malformed_json"},
		{"no actor", "POST", "/v1/claims/c/approve", `{"amount":5}`, "", 400, "actor_missing"},
		{"actor mismatch", "POST", "/v1/claims/c/approve", `{"amount":5,"approver":"x"}`, "y", 400, "actor_mismatch"},
		{"over reserve", "POST", "/v1/claims/c/approve", `{"amount":2500}`, "a", 422, "amount_exceeds_reserve"},
		{"unknown claim", "POST", "/v1/claims/nope/approve", `{"amount":5}`, "a", 404, "claim_not_found"},
		{"illegal", "POST", "/v1/claims/c/transition", `{"to":"triage"}`, "a", 409, "illegal_transition"},
		{"to paid", "POST", "/v1/claims/c/transition", `{"to":"approved"}`, "a", 422, "transition_requires_approve"},
		{"bad state", "POST", "/v1/claims/c/transition", `{"to":"lost"}`, "a", 400, "invalid_state"},
		{"neg reserve", "POST", "/v1/claims/c/evaluate", `{"reserve":-1}`, "a", 400, "invalid_amount"},
		{"deny no reason", "POST", "/v1/claims/c/deny", `{}`, "a", 400, "reason_missing"},
		{"fnol neg", "POST", "/v1/claims", `{"policy_id":"pol-1","claimant":{"name":"A","account_id":"x"},"loss_date":"2026-01-01","claimed_amount":-1,"currency":"EUR"}`, "a", 400, "invalid_amount"},
		{"fnol no policy", "POST", "/v1/claims", `{"policy_id":"pol-9","claimant":{"name":"A","account_id":"x"},"loss_date":"2026-01-01","claimed_amount":1,"currency":"EUR"}`, "a", 422, "policy_not_found"},
		{"fnol dup", "POST", "/v1/claims", `{"id":"c","policy_id":"pol-1","claimant":{"name":"A","account_id":"x"},"loss_date":"2026-01-01","claimed_amount":1,"currency":"EUR"}`, "a", 409, "claim_exists"},
		{"fnol date", "POST", "/v1/claims", `{"policy_id":"pol-1","claimant":{"name":"A","account_id":"x"},"loss_date":"yesterday","claimed_amount":1,"currency":"EUR"}`, "a", 400, "invalid_loss_date"},
		{"fnol currency", "POST", "/v1/claims", `{"policy_id":"pol-1","claimant":{"name":"A","account_id":"x"},"loss_date":"2026-01-01","claimed_amount":1,"currency":"USD"}`, "a", 422, "currency_mismatch"},
		{"list bad state", "GET", "/v1/claims?state=zzz", "", "", 400, "invalid_state"},
	}
	before := e.must("GET", "/v1/claims/c", "", "", 200)
	stBefore := e.must("GET", "/v1/stats", "", "", 200)
	for _, c := range cases {
		st, m := e.call(c.method, c.path, c.body, c.actor)
		if st != c.status || m["code"] != c.code {
			t.Errorf("%s: got %d %v, want %d %s", c.name, st, m, c.status, c.code)
		}
		if msg, _ := m["error"].(string); msg == "" {
			t.Errorf("%s: no human message", c.name)
		}
	}
	after := e.must("GET", "/v1/claims/c", "", "", 200)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("rejected requests changed the claim:\nbefore %v\nafter  %v", before, after)
	}
	stAfter := e.must("GET", "/v1/stats", "", "", 200)
	if fmt.Sprint(stBefore["claims_by_state"]) != fmt.Sprint(stAfter["claims_by_state"]) {
		t.Fatalf("rejections changed stats: %v -> %v", stBefore, stAfter)
	}
	_, m := e.call("POST", "/v1/claims/c/transition", `{"to":"triage"}`, "a")
	if m["from"] != "evaluated" || m["to"] != "triage" || !strings.Contains(m["error"].(string), `"evaluated" to "triage"`) {
		t.Fatalf("illegal transition must name from and to: %v", m)
	}
}

func TestDenyReopenWithdraw(t *testing.T) {
	e := newEnv(t, Config{})
	e.toEvaluated("d", 100, 100)
	e.must("POST", "/v1/claims/d/deny", `{"reason":"not covered"}`, "adj", 200)
	m := e.must("POST", "/v1/claims/d/transition", `{"to":"investigation","note":"new evidence"}`, "adj", 200)
	if m["reopen_count"].(float64) != 1 || m["reserve"].(float64) != 0 {
		t.Fatalf("reopen: %v", m)
	}
	_, m = e.call("POST", "/v1/claims/d/transition", `{"to":"reopened"}`, "adj")
	if m["code"] != "illegal_transition" || !strings.Contains(m["error"].(string), "only closed or denied") {
		t.Fatalf("reopen from investigation: %v", m)
	}
	e.must("POST", "/v1/claims/d/deny", `{"reason":"still not covered"}`, "adj", 200)
	if m := e.must("POST", "/v1/claims/d/transition", `{"to":"reopened"}`, "adj", 200); m["state"] != "investigation" || m["reopen_count"].(float64) != 2 {
		t.Fatalf("reopened alias: %v", m)
	}
	e.must("POST", "/v1/claims/d/transition", `{"to":"withdrawn"}`, "claimant", 200)
	_, m = e.call("POST", "/v1/claims/d/transition", `{"to":"investigation"}`, "adj")
	if m["code"] != "illegal_transition" {
		t.Fatalf("withdrawn is terminal: %v", m)
	}
	l := e.must("GET", "/v1/claims?state=withdrawn", "", "", 200)
	if n := len(l["claims"].([]any)); n != 1 {
		t.Fatalf("list withdrawn: %d", n)
	}
	st := e.must("GET", "/v1/stats", "", "", 200)
	if bs := st["claims_by_state"].(map[string]any); bs["withdrawn"].(float64) != 1 || bs["denied"].(float64) != 0 {
		t.Fatalf("stats %v", bs)
	}
}

func TestBatchLifecycle(t *testing.T) {
	e := newEnv(t, Config{AutoApproveLimit: 100, AuthorityLimit: 1000})
	var ops []string
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("b%d", i)
		amt := []int{50, 500, 5000}[i]
		ops = append(ops,
			fmt.Sprintf(`{"op":"fnol","claim":{"id":%q,"policy_id":"pol-1","claimant":{"name":"A","account_id":"acc"},"loss_date":"2026-01-01","claimed_amount":%d,"currency":"EUR"}}`, id, amt),
			fmt.Sprintf(`{"op":"transition","id":%q,"to":"triage"}`, id),
			fmt.Sprintf(`{"op":"transition","id":%q,"to":"investigation"}`, id),
			fmt.Sprintf(`{"op":"evaluate","id":%q,"reserve":%d}`, id, amt))
		if i > 0 {
			ops = append(ops, fmt.Sprintf(`{"op":"approve","id":%q,"approver":"alice","amount":%d}`, id, amt))
		}
		if i == 2 {
			ops = append(ops, fmt.Sprintf(`{"op":"approve","id":%q,"approver":"alice","amount":%d}`, id, amt),
				fmt.Sprintf(`{"op":"approve","id":%q,"approver":"bob","amount":%d}`, id, amt))
		}
	}
	ops = append(ops, `{"op":"explode","id":"b0"}`)
	m := e.must("POST", "/v1/batch", `{"ops":[`+strings.Join(ops, ",")+`]}`, "clerk", 200)
	res := m["results"].([]any)
	codes := []string{}
	for _, r := range res {
		rm := r.(map[string]any)
		c, _ := rm["code"].(string)
		codes = append(codes, fmt.Sprintf("%v:%s", rm["status"], c))
	}
	want := "201: 200: 200: 200: 201: 200: 200: 200: 200: 201: 200: 200: 200: 202: 422:four_eyes_same_approver 200: 400:invalid_op"
	if got := strings.Join(codes, " "); got != want {
		t.Fatalf("batch results\n got %s\nwant %s", got, want)
	}
	for _, id := range []string{"b0", "b1", "b2"} {
		if s := e.state(id); s != "approved" {
			t.Errorf("%s state %s", id, s)
		}
	}
}

func TestDecodeStrictTable(t *testing.T) {
	cases := []struct {
		body string
		code string
	}{
		{``, "malformed_json"},
		{`[]`, "malformed_json"},
		{`{"to":1}`, "malformed_json"},
		{`{"to":"triage","x":1}`, "unknown_field"},
		{`{"to":"triage"}`, ""},
	}
	for _, c := range cases {
		var r TransitionRequest
		e := DecodeStrict([]byte(c.body), &r, "transition")
		got := ""
		if e != nil {
			got = e.Code
		}
		if got != c.code {
			t.Errorf("%q: code %q, want %q", c.body, got, c.code)
		}
	}
	_ = bytes.MinRead
}

func TestListPaginationAndWait(t *testing.T) {
	e := newEnv(t, Config{})
	for i := 0; i < 5; i++ {
		e.fnol(fmt.Sprintf("p%d", i), 10, "")
	}
	var got []string
	after := ""
	for page := 0; page < 5; page++ {
		m := e.must("GET", "/v1/claims?state=fnol&limit=2&after="+after, "", "", 200)
		for _, c := range m["claims"].([]any) {
			got = append(got, c.(map[string]any)["id"].(string))
		}
		after = m["next_after"].(string)
		if after == "" {
			break
		}
	}
	if strings.Join(got, ",") != "p0,p1,p2,p3,p4" {
		t.Fatalf("pagination returned %v", got)
	}
	all := e.must("GET", "/v1/claims?limit=3", "", "", 200)
	if n := len(all["claims"].([]any)); n != 3 || all["next_after"] != "p2" {
		t.Fatalf("list all: %d claims, next %v", n, all["next_after"])
	}
	// No dispatcher runs, so nothing gets paid: the wait times out and
	// reports the claim as pending; unknown ids are reported not found.
	m := e.must("POST", "/v1/claims/wait", `{"ids":["p0","ghost"],"state":"triage","timeout_ms":50}`, "", 200)
	if p := m["pending"].([]any); len(p) != 1 || p[0] != "p0" {
		t.Fatalf("wait pending %v", m)
	}
	if c := m["claims"].([]any)[1].(map[string]any); c["found"] != false {
		t.Fatalf("ghost claim reported found: %v", c)
	}
	// A transition during the wait wakes it.
	done := make(chan map[string]any)
	go func() {
		_, m := e.call("GET", "/v1/claims/p1?wait_for=triage&timeout_ms=30000", "", "")
		done <- m
	}()
	e.must("POST", "/v1/claims/p1/transition", `{"to":"triage"}`, "clerk", 200)
	if m := <-done; m["state"] != "triage" {
		t.Fatalf("long-poll returned %v", m["state"])
	}
	for _, c := range []struct{ path, body, code string }{
		{"/v1/claims/wait", `{"ids":[],"state":"paid"}`, "invalid_ids"},
		{"/v1/claims/wait", `{"ids":["a"],"state":"gone"}`, "invalid_state"},
		{"/v1/claims/wait", `{"ids":["a"],"state":"paid","timeout_ms":-1}`, "invalid_timeout"},
		{"/v1/batch", `{"ops":[]}`, "invalid_batch"},
		{"/v1/policies", `{"id":"x","status":"sleeping","currency":"EUR"}`, "invalid_policy_status"},
	} {
		if st, m := e.call("POST", c.path, c.body, "a"); st != 400 || m["code"] != c.code {
			t.Errorf("%s %s: %d %v, want 400 %s", c.path, c.body, st, m, c.code)
		}
	}
	e.must("GET", "/v1/claims/p0?wait_for=paid&timeout_ms=soon", "", "", 400)
	e.must("GET", "/v1/policies/pol-1", "", "", 200)
	e.must("GET", "/v1/policies/nope", "", "", 404)
}
