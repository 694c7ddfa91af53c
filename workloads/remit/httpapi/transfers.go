package httpapi

import (
	"net/http"
	"strconv"

	"github.com/finvirt/finvirt/workloads/remit/engine"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

type transferJSON struct {
	ID              string     `json:"id"`
	DebitAccountID  string     `json:"debit_account_id"`
	CreditAccountID string     `json:"credit_account_id"`
	Amount          jsonAmount `json:"amount"`
	Currency        string     `json:"currency"`
	Pending         bool       `json:"pending"`
	TimeoutSeconds  int64      `json:"timeout_seconds"`
}

// jsonAmount accepts only a JSON number that is an int64 integer; anything
// else (string, fraction, exponent, out of range, null) decodes to 0, which
// the ledger rejects as invalid_amount, so a batch reports it per item
// instead of failing as a whole.
type jsonAmount int64

func (a *jsonAmount) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		v = 0
	}
	*a = jsonAmount(v)
	return nil
}

// toInput converts the decoded JSON into a ledger transfer.
func (t *transferJSON) toInput() ledger.TransferInput {
	amt := int64(t.Amount)
	return ledger.TransferInput{ID: t.ID, DebitID: t.DebitAccountID, CreditID: t.CreditAccountID, Amount: amt,
		Currency: t.Currency, Pending: t.Pending, TimeoutSeconds: t.TimeoutSeconds}
}

func transferObject(c ledger.Code, id string) string {
	if c == ledger.InvalidID {
		return "transfer " + quoteID(id) + " (or one of its account ids)"
	}
	if c == ledger.InvalidCurrency {
		return "transfer " + quoteID(id)
	}
	return id
}

func (s *Server) createTransfer(w http.ResponseWriter, r *http.Request) {
	key, ok := idempotencyKey(w, r)
	if !ok {
		return
	}
	var in transferJSON
	if !decodeJSON(w, r, MaxSingleBody, "transfer", &in) {
		return
	}
	t := in.toInput()
	if !s.claimKey(key) {
		writeError(w, http.StatusConflict, "idempotency_key_in_flight", "a request with Idempotency-Key "+key+" is still being processed; retry after it completes")
		return
	}
	defer s.releaseKey(key)
	if s.opts.BeforeSubmit != nil {
		s.opts.BeforeSubmit(key)
	}
	req := s.getReq(engine.OpCreateTransfers)
	defer s.putReq(req)
	req.Transfers = append(req.Transfers, t)
	req.Key = key
	req.FP = fingerprint("POST /v1/transfers", t.ID, t.DebitID, t.CreditID, strconv.FormatInt(t.Amount, 10), t.Currency,
		strconv.FormatBool(t.Pending), strconv.FormatInt(t.TimeoutSeconds, 10))
	if !s.do(w, req) {
		return
	}
	s.answerTransfer(w, req, t.ID, true)
}

// answerTransfer writes a single-transfer result; creates says whether OK means 201 (creation) or 200 (post/void).
func (s *Server) answerTransfer(w http.ResponseWriter, req *engine.Request, id string, creates bool) {
	c := req.Codes[0]
	if req.Replayed {
		w.Header()["Idempotent-Replayed"] = []string{"true"}
		c = ledger.Exists
	}
	if c == ledger.IdempotencyKeyMismatch {
		writeCode(w, c, req.Key)
		return
	}
	if !c.Success() {
		writeCode(w, c, transferObject(c, id))
		return
	}
	status := http.StatusOK
	if c == ledger.OK && creates {
		status = http.StatusCreated
	}
	b := getBuf()
	*b = appendTransfer(*b, &req.Transfer)
	*b = append(*b, '\n')
	writeJSON(w, status, *b)
	putBuf(b)
}

type transfersBatchJSON struct {
	Linked    bool           `json:"linked"`
	Transfers []transferJSON `json:"transfers"`
}

func (s *Server) createTransfersBatch(w http.ResponseWriter, r *http.Request) {
	var in transfersBatchJSON
	if !decodeJSON(w, r, MaxBatchBody, "transfer batch", &in) {
		return
	}
	if len(in.Transfers) == 0 || len(in.Transfers) > MaxBatchItems {
		writeError(w, http.StatusBadRequest, "invalid_batch", "transfer batch must hold 1-10000 transfers in \"transfers\"; split larger batches")
		return
	}
	req := s.getReq(engine.OpCreateTransfers)
	defer s.putReq(req)
	req.Linked = in.Linked
	for i := range in.Transfers {
		req.Transfers = append(req.Transfers, in.Transfers[i].toInput())
	}
	if !s.do(w, req) {
		return
	}
	b := getBuf()
	*b = append(*b, `{"results":[`...)
	for i, c := range req.Codes {
		if i > 0 {
			*b = append(*b, ',')
		}
		id := in.Transfers[i].ID
		*b = appendResult(*b, id, c, transferObject(c, id))
	}
	*b = append(*b, ']', '}', '\n')
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}

// resolve handles POST /v1/transfers/{id}/post and /void.
func (s *Server) resolve(op engine.Op) http.HandlerFunc {
	path := "post"
	if op == engine.OpVoid {
		path = "void"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		key, ok := idempotencyKey(w, r)
		if !ok {
			return
		}
		if !ledger.ValidID(id) {
			writeCode(w, ledger.InvalidID, "transfer "+quoteID(id))
			return
		}
		if !s.claimKey(key) {
			writeError(w, http.StatusConflict, "idempotency_key_in_flight", "a request with Idempotency-Key "+key+" is still being processed; retry after it completes")
			return
		}
		defer s.releaseKey(key)
		if s.opts.BeforeSubmit != nil {
			s.opts.BeforeSubmit(key)
		}
		req := s.getReq(op)
		defer s.putReq(req)
		req.ID, req.Key = id, key
		req.FP = fingerprint("POST /v1/transfers/{id}/"+path, id)
		if !s.do(w, req) {
			return
		}
		s.answerTransfer(w, req, id, false)
	}
}

func (s *Server) getTransfer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ledger.ValidID(id) {
		writeCode(w, ledger.InvalidID, "transfer "+quoteID(id))
		return
	}
	req := s.getReq(engine.OpGetTransfer)
	defer s.putReq(req)
	req.ID = id
	if !s.do(w, req) {
		return
	}
	if !req.Found {
		writeCode(w, ledger.TransferNotFound, id)
		return
	}
	b := getBuf()
	*b = appendTransfer(*b, &req.Transfer)
	*b = append(*b, '\n')
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}
