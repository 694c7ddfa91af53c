package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/workloads/remit/engine"
)

type env struct {
	t   *testing.T
	url string
	eng *engine.Engine
}

// newEnv runs the real API over a real engine (journal with fsync in a temp dir) behind a real HTTP server.
func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	eng, err := engine.Open(engine.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(eng, opts))
	t.Cleanup(func() {
		srv.Close()
		eng.Close()
	})
	return &env{t: t, url: srv.URL, eng: eng}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", r.status, err, r.body)
	}
	return m
}

func (r resp) code(t *testing.T) string {
	c, _ := r.json(t)["code"].(string)
	return c
}

func (e *env) call(method, path, key, body string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if strings.HasPrefix(body, "<") {
		req.Header.Set("Content-Type", "application/xml")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) mustStatus(r resp, want int) resp {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	return r
}

// bank creates mint (unflagged, EUR), alice and bob (no overdraft, EUR), jmint/jane (JPY), usd (USD) and funds alice with 1000.
func (e *env) bank() {
	e.t.Helper()
	e.mustStatus(e.call("POST", "/v1/accounts/batch", "", `{"accounts":[
		{"id":"mint","currency":"EUR"},
		{"id":"alice","currency":"EUR","flags":["debits_must_not_exceed_credits"]},
		{"id":"bob","currency":"EUR","flags":["debits_must_not_exceed_credits"]},
		{"id":"jmint","currency":"JPY"},
		{"id":"jane","currency":"JPY","flags":["debits_must_not_exceed_credits"]},
		{"id":"usd","currency":"USD"}]}`), 200)
	e.mustStatus(e.call("POST", "/v1/transfers", "fund-alice", `{"id":"fund","debit_account_id":"mint","credit_account_id":"alice","amount":1000,"currency":"EUR"}`), 201)
}

func (e *env) balance(id string) int64 {
	e.t.Helper()
	m := e.mustStatus(e.call("GET", "/v1/accounts/"+id, "", ""), 200).json(e.t)
	return int64(m["balance"].(float64))
}

// fingerprint of everything observable: invariants plus every test account.
func (e *env) observe() string {
	e.t.Helper()
	var b bytes.Buffer
	b.Write(e.call("GET", "/v1/invariants", "", "").body)
	for _, id := range []string{"mint", "alice", "bob", "jmint", "jane", "usd"} {
		b.Write(e.call("GET", "/v1/accounts/"+id, "", "").body)
	}
	h := e.eng
	r := &engine.Request{Op: engine.OpHash}
	if err := h.Do(r); err != nil {
		e.t.Fatal(err)
	}
	b.Write(r.Hash[:])
	return b.String()
}
