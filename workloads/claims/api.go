package claims

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"strconv"
)

// Handler returns the claims HTTP API (see docs/claims.md).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/claims", s.hFNOL)
	mux.HandleFunc("GET /v1/claims", s.hList)
	mux.HandleFunc("POST /v1/claims/wait", s.hWait)
	mux.HandleFunc("GET /v1/claims/{id}", s.hGet)
	mux.HandleFunc("POST /v1/claims/{id}/transition", s.hTransition)
	mux.HandleFunc("POST /v1/claims/{id}/evaluate", s.hEvaluate)
	mux.HandleFunc("POST /v1/claims/{id}/approve", s.hApprove)
	mux.HandleFunc("POST /v1/claims/{id}/deny", s.hDeny)
	mux.HandleFunc("POST /v1/batch", s.hBatch)
	mux.HandleFunc("POST /v1/policies", s.hPolicy)
	mux.HandleFunc("GET /v1/policies/{id}", s.hGetPolicy)
	mux.HandleFunc("GET /v1/stats", s.hStats)
	mux.HandleFunc("GET /v1/outbox", s.hOutbox)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /metrics", s.hMetrics)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.m.requests.Add(1)
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, e *Error) { writeJSON(w, e.Status, e) }

func internalErr(w http.ResponseWriter, err error) {
	log.Printf("claims: internal error: %v", err)
	writeErr(w, storageErr(err))
}

// readBody reads a bounded request body and decodes it strictly.
func readBody(w http.ResponseWriter, r *http.Request, v any, what string, limit int64) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeErr(w, errf(413, "body_too_large", "%s body exceeds %d bytes; split it", what, limit))
		return false
	}
	if e := DecodeStrict(data, v, what); e != nil {
		writeErr(w, e)
		return false
	}
	return true
}

// respond maps an operation result to the HTTP response.
func respond(w http.ResponseWriter, c *Claim, status int, e *Error, err error) {
	switch {
	case err != nil:
		internalErr(w, err)
	case e != nil:
		writeErr(w, e)
	default:
		writeJSON(w, status, c)
	}
}

// command serves the state-changing POSTs: the bounded body decoded strictly into req, the
// acting identity from X-Actor or the body's field (*claimed, named role in errors), then the
// operation op builds for it.
func (s *Service) command(w http.ResponseWriter, r *http.Request, req any, what string, limit int64, claimed *string, role string, op func(actor string) opFunc) {
	if !readBody(w, r, req, what, limit) {
		return
	}
	actor, e := resolveActor(r.Header.Get("X-Actor"), *claimed, role)
	if e != nil {
		writeErr(w, e)
		return
	}
	c, st, e, err := s.do(op(actor))
	respond(w, c, st, e, err)
}

// found writes v with status 200, the error notFound gives when v is nil, or the internal error.
func found[T any](w http.ResponseWriter, v *T, err error, notFound func() *Error) {
	switch {
	case err != nil:
		internalErr(w, err)
	case v == nil:
		writeErr(w, notFound())
	default:
		writeJSON(w, 200, v)
	}
}

func (s *Service) hFNOL(w http.ResponseWriter, r *http.Request) {
	var req FNOLRequest
	s.command(w, r, &req, "FNOL", 1<<20, &req.Actor, "actor", func(actor string) opFunc {
		return s.opFNOL(&req, actor)
	})
}

func (s *Service) hGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if wf := r.URL.Query().Get("wait_for"); wf != "" {
		if !ValidState(State(wf)) {
			writeErr(w, badRequest("invalid_state", "wait_for %q is not a claim state; use one of %s", wf, stateList()))
			return
		}
		ms := 0
		if v := r.URL.Query().Get("timeout_ms"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				writeErr(w, badRequest("invalid_timeout", "timeout_ms %q must be a positive integer (max 60000)", v))
				return
			}
			ms = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), waitTimeout(ms))
		defer cancel()
		cs, _, err := s.Wait(ctx, []string{id}, State(wf), true)
		var c *Claim
		if err == nil {
			c = cs[0]
		}
		found(w, c, err, func() *Error { return claimNotFound(id) })
		return
	}
	c, err := s.Get(id)
	found(w, c, err, func() *Error { return claimNotFound(id) })
}

func (s *Service) hTransition(w http.ResponseWriter, r *http.Request) {
	var req TransitionRequest
	s.command(w, r, &req, "transition", 64<<10, &req.Actor, "actor", func(actor string) opFunc {
		return s.opTransition(r.PathValue("id"), req.To, actor, req.Note)
	})
}

func (s *Service) hEvaluate(w http.ResponseWriter, r *http.Request) {
	var req EvaluateRequest
	s.command(w, r, &req, "evaluate", 64<<10, &req.Actor, "actor", func(actor string) opFunc {
		return s.opEvaluate(r.PathValue("id"), &req, actor)
	})
}

func (s *Service) hApprove(w http.ResponseWriter, r *http.Request) {
	var req ApproveRequest
	s.command(w, r, &req, "approve", 64<<10, &req.Approver, "approver", func(approver string) opFunc {
		return s.opApprove(r.PathValue("id"), &req, approver)
	})
}

func (s *Service) hDeny(w http.ResponseWriter, r *http.Request) {
	var req DenyRequest
	s.command(w, r, &req, "deny", 64<<10, &req.Actor, "actor", func(actor string) opFunc {
		return s.opDeny(r.PathValue("id"), &req, actor)
	})
}

func (s *Service) hList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st := State(q.Get("state"))
	if st != "" && !ValidState(st) {
		writeErr(w, badRequest("invalid_state", "list ?state= must be one of %s (or omitted for all), got %q", stateList(), st))
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeErr(w, badRequest("invalid_limit", "limit %q must be an integer 1-1000", v))
			return
		}
		limit = n
	}
	cs, next, err := s.List(st, q.Get("after"), limit)
	if err != nil {
		internalErr(w, err)
		return
	}
	if cs == nil {
		cs = []*Claim{}
	}
	writeJSON(w, 200, map[string]any{"claims": cs, "next_after": next})
}

func (s *Service) hWait(w http.ResponseWriter, r *http.Request) {
	var req WaitRequest
	if !readBody(w, r, &req, "wait", 4<<20) {
		return
	}
	if !ValidState(req.State) {
		writeErr(w, badRequest("invalid_state", "wait state %q is not a claim state; use one of %s", req.State, stateList()))
		return
	}
	if req.TimeoutMS < 0 || req.TimeoutMS > 60000 {
		writeErr(w, badRequest("invalid_timeout", "wait timeout_ms %d must be 0-60000 (0 = 10s default)", req.TimeoutMS))
		return
	}
	if len(req.IDs) == 0 || len(req.IDs) > MaxBatchOps {
		writeErr(w, badRequest("invalid_ids", "wait needs 1-%d claim ids, got %d", MaxBatchOps, len(req.IDs)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), waitTimeout(req.TimeoutMS))
	defer cancel()
	cs, pending, err := s.Wait(ctx, req.IDs, req.State, false)
	if err != nil {
		internalErr(w, err)
		return
	}
	type brief struct {
		ID             string `json:"id"`
		State          State  `json:"state,omitempty"`
		Found          bool   `json:"found"`
		ApprovedAmount int64  `json:"approved_amount,omitempty"`
		TransferID     string `json:"payout_transfer_id,omitempty"`
	}
	out := make([]brief, len(cs))
	for i, c := range cs {
		out[i].ID = req.IDs[i]
		if c != nil {
			out[i].Found, out[i].State, out[i].ApprovedAmount = true, c.State, c.ApprovedAmount
			if n := len(c.Payouts); n > 0 {
				out[i].TransferID = c.Payouts[n-1].TransferID
			}
		}
	}
	if pending == nil {
		pending = []string{}
	}
	writeJSON(w, 200, map[string]any{"claims": out, "pending": pending})
}

func (s *Service) hPolicy(w http.ResponseWriter, r *http.Request) {
	var p Policy
	if !readBody(w, r, &p, "policy", 64<<10) {
		return
	}
	st, e, err := s.PutPolicy(&p)
	switch {
	case err != nil:
		internalErr(w, err)
	case e != nil:
		writeErr(w, e)
	default:
		writeJSON(w, st, p)
	}
}

func (s *Service) hGetPolicy(w http.ResponseWriter, r *http.Request) {
	p, err := s.GetPolicy(r.PathValue("id"))
	found(w, p, err, func() *Error {
		return errf(404, "policy_not_found", "policy %q does not exist; register it with POST /v1/policies", r.PathValue("id"))
	})
}

func (s *Service) hStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.Stats()
	if err != nil {
		internalErr(w, err)
		return
	}
	writeJSON(w, 200, st)
}

func (s *Service) hMetrics(w http.ResponseWriter, r *http.Request) {
	st, err := s.Stats()
	if err != nil {
		internalErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.m.write(w, st)
}
