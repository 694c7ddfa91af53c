package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/finvirt/finvirt/workloads/remit/engine"
)

// fuzzServer uses a real engine without fsync: the target is the decoders, and
// fsync per input would make fuzzing useless.
func fuzzServer(f *testing.F) *Server {
	eng, err := engine.Open(engine.Options{Dir: f.TempDir(), NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { eng.Close() })
	s := New(eng, Options{})
	for _, b := range []string{`{"id":"mint","currency":"EUR"}`, `{"id":"a","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/accounts", bytes.NewReader([]byte(b))))
	}
	return s
}

func checkJSONAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	if rec.Code >= 500 {
		t.Fatalf("server error %d: %s", rec.Code, rec.Body)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not JSON (%v): %q", err, rec.Body)
	}
	if rec.Code >= 400 && (v["code"] == "" || v["error"] == "") {
		t.Fatalf("error without code/message: %s", rec.Body)
	}
}

func FuzzTransferJSON(f *testing.F) {
	s := fuzzServer(f)
	f.Add([]byte(`{"id":"t1","debit_account_id":"mint","credit_account_id":"a","amount":1234,"currency":"EUR"}`))
	f.Add([]byte(`{"id":"t2","debit_account_id":"a","credit_account_id":"mint","amount":5,"currency":"EUR","pending":true,"timeout_seconds":3}`))
	f.Add([]byte(`{"id":"t3","amount":1e99}`))
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		n++
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/transfers", bytes.NewReader(body))
		req.Header.Set("Idempotency-Key", "fuzz-"+string(rune('a'+n%26)))
		s.ServeHTTP(rec, req)
		checkJSONAnswer(t, rec)
		inv := httptest.NewRecorder()
		s.ServeHTTP(inv, httptest.NewRequest("GET", "/v1/invariants", nil))
		if inv.Code != http.StatusOK {
			t.Fatalf("invariants broken after %q: %s", body, inv.Body)
		}
	})
}

func FuzzBatchJSON(f *testing.F) {
	s := fuzzServer(f)
	f.Add([]byte(`{"linked":true,"transfers":[{"id":"b1","debit_account_id":"mint","credit_account_id":"a","amount":1,"currency":"EUR"},{"id":"b2","debit_account_id":"a","credit_account_id":"mint","amount":2,"currency":"EUR"}]}`))
	f.Add([]byte(`{"transfers":[{"id":"x"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/transfers/batch", bytes.NewReader(body)))
		checkJSONAnswer(t, rec)
	})
}

func FuzzAccountJSON(f *testing.F) {
	s := fuzzServer(f)
	f.Add([]byte(`{"id":"acc-1","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`))
	f.Add([]byte(`{"id":"acc-2","currency":"JPY","flags":["credits_must_not_exceed_debits","x"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/accounts", bytes.NewReader(body)))
		checkJSONAnswer(t, rec)
	})
}
