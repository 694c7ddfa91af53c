package claims

import (
	"encoding/json"
	"net/http"

	bolt "go.etcd.io/bbolt"
)

// hBatch applies many operations in one transaction (one fsync). Ops run in
// order, so a batch may create a claim and move it through its lifecycle;
// each op succeeds or is rejected on its own and a rejected op changes
// nothing. Identities come from each op or, as a default, X-Actor.
func (s *Service) hBatch(w http.ResponseWriter, r *http.Request) {
	var req BatchRequest
	if !readBody(w, r, &req, "batch", 32<<20) {
		return
	}
	if len(req.Ops) == 0 || len(req.Ops) > MaxBatchOps {
		writeErr(w, badRequest("invalid_batch", "batch needs 1-%d ops, got %d", MaxBatchOps, len(req.Ops)))
		return
	}
	hdr := r.Header.Get("X-Actor")
	ops := make([]opFunc, len(req.Ops))
	pre := make([]*Error, len(req.Ops))
	for i := range req.Ops {
		ops[i], pre[i] = s.batchOp(&req.Ops[i], hdr)
	}
	var run []opFunc
	var idx []int
	for i, op := range ops {
		if pre[i] == nil {
			run = append(run, op)
			idx = append(idx, i)
		}
	}
	out := make([]BatchResult, len(req.Ops))
	for i, e := range pre {
		out[i].ID = req.Ops[i].ID
		if out[i].ID == "" && req.Ops[i].Claim != nil {
			out[i].ID = req.Ops[i].Claim.ID
		}
		if e != nil {
			s.m.reject(e.Code)
			out[i].Status, out[i].Code, out[i].Error = e.Status, e.Code, e.Msg
		}
	}
	if len(run) > 0 {
		res, err := s.exec(run)
		if err != nil {
			internalErr(w, err)
			return
		}
		for j, r := range res {
			i := idx[j]
			if r.err != nil {
				out[i].Status, out[i].Code, out[i].Error = r.err.Status, r.err.Code, r.err.Msg
				continue
			}
			out[i].Status, out[i].ID, out[i].State = r.status, r.claim.ID, r.claim.State
		}
	}
	writeJSON(w, 200, map[string]any{"results": out})
}

// batchOp turns one batch entry into an operation or a rejection.
func (s *Service) batchOp(op *BatchOp, hdr string) (opFunc, *Error) {
	switch op.Op {
	case "fnol":
		if op.Claim == nil {
			return nil, badRequest("claim_missing", `batch op fnol needs a "claim" object (an FNOL body)`)
		}
		actor, e := resolveActor("", firstNonEmpty(op.Actor, op.Claim.Actor, hdr), "actor")
		if e != nil {
			return nil, e
		}
		return s.opFNOL(op.Claim, actor), nil
	case "transition", "evaluate", "approve", "deny":
	default:
		return nil, badRequest("invalid_op", "batch op %q is unknown; use fnol, transition, evaluate, approve or deny", op.Op)
	}
	if op.ID == "" {
		return nil, badRequest("id_missing", "batch op %s needs the claim id in \"id\"", op.Op)
	}
	field, given := "actor", op.Actor
	if op.Op == "approve" {
		field, given = "approver", firstNonEmpty(op.Approver, op.Actor)
	}
	actor, e := resolveActor("", firstNonEmpty(given, hdr), field)
	if e != nil {
		return nil, e
	}
	switch op.Op {
	case "transition":
		return s.opTransition(op.ID, op.To, actor, op.Note), nil
	case "evaluate":
		return s.opEvaluate(op.ID, &EvaluateRequest{Reserve: op.Reserve, Note: op.Note, FraudFlags: op.FraudFlags}, actor), nil
	case "approve":
		return s.opApprove(op.ID, &ApproveRequest{Amount: op.Amount, Note: op.Note}, actor), nil
	default:
		return s.opDeny(op.ID, &DenyRequest{Reason: op.Reason}, actor), nil
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// GetPolicy returns a policy or nil.
func (s *Service) GetPolicy(id string) (*Policy, error) {
	var p *Policy
	err := s.store.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bPolicies).Get([]byte(id))
		if v == nil {
			return nil
		}
		p = new(Policy)
		return json.Unmarshal(v, p)
	})
	return p, err
}
