// Package httpapi is remit's HTTP/JSON API (contract v1) and its ISO 20022
// pacs.008 endpoint. Handlers only decode, queue a request into the engine
// and encode the answer; all ledger logic runs in the engine's single
// state-machine goroutine.
package httpapi

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/finvirt/finvirt/workloads/remit/engine"
)

// Body limits: a single object is small; a batch holds at most MaxBatchItems.
const (
	MaxSingleBody = 64 << 10
	MaxBatchBody  = 16 << 20
	MaxBatchItems = 10000
	MaxXMLBody    = 4 << 20
	maxKeyLen     = 255
)

// Options tune the server.
type Options struct {
	// BeforeSubmit, when set, runs after an Idempotency-Key is marked in
	// flight and before the request is queued. Tests use it to hold a request
	// in flight deliberately (to provoke 409).
	BeforeSubmit func(key string)
}

// Server serves the API on top of an engine.
type Server struct {
	eng  *engine.Engine
	opts Options
	mux  *http.ServeMux

	inflightMu sync.Mutex
	inflight   map[string]struct{}

	reqPool sync.Pool
}

// New builds the handler tree.
func New(eng *engine.Engine, opts Options) *Server {
	s := &Server{eng: eng, opts: opts, mux: http.NewServeMux(), inflight: map[string]struct{}{}}
	s.reqPool.New = func() any { return &engine.Request{} }
	s.mux.HandleFunc("POST /v1/accounts", s.createAccount)
	s.mux.HandleFunc("POST /v1/accounts/batch", s.createAccountsBatch)
	s.mux.HandleFunc("GET /v1/accounts/{id}", s.getAccount)
	s.mux.HandleFunc("POST /v1/transfers", s.createTransfer)
	s.mux.HandleFunc("POST /v1/transfers/batch", s.createTransfersBatch)
	s.mux.HandleFunc("POST /v1/transfers/{id}/post", s.resolve(engine.OpPost))
	s.mux.HandleFunc("POST /v1/transfers/{id}/void", s.resolve(engine.OpVoid))
	s.mux.HandleFunc("GET /v1/transfers/{id}", s.getTransfer)
	s.mux.HandleFunc("GET /v1/invariants", s.invariants)
	s.mux.HandleFunc("POST /v1/iso20022/pacs.008", s.pacs008)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s; see docs/remit.md for the API", r.Method, r.URL.Path))
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) getReq(op engine.Op) *engine.Request {
	r := s.reqPool.Get().(*engine.Request)
	r.Reset()
	r.Op = op
	return r
}

func (s *Server) putReq(r *engine.Request) {
	if cap(r.Transfers) <= 1024 {
		s.reqPool.Put(r)
	}
}

// do runs a request through the engine, writing a 503 if the engine cannot answer.
func (s *Server) do(w http.ResponseWriter, r *engine.Request) bool {
	if err := s.eng.Do(r); err != nil {
		status := http.StatusServiceUnavailable
		writeError(w, status, "unavailable", err.Error())
		return false
	}
	return true
}

// claimKey marks an Idempotency-Key in flight; false means another request holds it.
func (s *Server) claimKey(key string) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	if _, busy := s.inflight[key]; busy {
		return false
	}
	s.inflight[key] = struct{}{}
	return true
}

func (s *Server) releaseKey(key string) {
	s.inflightMu.Lock()
	delete(s.inflight, key)
	s.inflightMu.Unlock()
}

// idempotencyKey reads and checks the header; it writes the 400 itself.
func idempotencyKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	k := r.Header.Get("Idempotency-Key")
	// The draft defines the value as a Structured Header sf-string; accept a quoted or bare token.
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" {
		writeError(w, http.StatusBadRequest, "idempotency_key_missing", "header Idempotency-Key is required on this endpoint; send a unique key (e.g. a UUID) per logical request and reuse it on retries")
		return "", false
	}
	if len(k) > maxKeyLen || strings.IndexFunc(k, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		writeError(w, http.StatusBadRequest, "idempotency_key_invalid", fmt.Sprintf("header Idempotency-Key must be 1-%d printable ASCII characters without spaces; use e.g. a UUID", maxKeyLen))
		return "", false
	}
	return k, true
}

// fingerprint identifies a request's meaning (endpoint + decoded fields), so
// a retry with different whitespace still matches but a changed field does not.
func fingerprint(parts ...string) [16]byte {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	var sum [32]byte
	var fp [16]byte
	copy(fp[:], h.Sum(sum[:0]))
	return fp
}

// decodeJSON decodes exactly one JSON value with unknown fields rejected; it writes the 400 itself.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, what string, v any) bool {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("%s body exceeds %d bytes; split it into smaller requests", what, limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_json", fmt.Sprintf("%s body is not valid: %v; send one JSON object with the documented fields", what, err))
		return false
	}
	return true
}
