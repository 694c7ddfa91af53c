package httpapi

import (
	"net/http"
	"strings"

	"github.com/finvirt/finvirt/workloads/remit/engine"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

type accountJSON struct {
	ID       string   `json:"id"`
	Currency string   `json:"currency"`
	Flags    []string `json:"flags"`
}

// toInput converts; bad flags become an impossible Flags value that the
// ledger rejects as invalid_flags, with the parse error kept for the message.
func (a *accountJSON) toInput() (ledger.AccountInput, error) {
	f, err := ledger.ParseFlags(a.Flags)
	if err != nil {
		f = 0xff
	}
	return ledger.AccountInput{ID: a.ID, Currency: a.Currency, Flags: f}, err
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var in accountJSON
	if !decodeJSON(w, r, MaxSingleBody, "account", &in) {
		return
	}
	ai, ferr := in.toInput()
	if ferr != nil {
		writeError(w, http.StatusBadRequest, ledger.InvalidFlags.Name(), "account "+in.ID+": "+ferr.Error())
		return
	}
	req := s.getReq(engine.OpCreateAccounts)
	defer s.putReq(req)
	req.Accounts = append(req.Accounts, ai)
	if !s.do(w, req) {
		return
	}
	c := req.Codes[0]
	if !c.Success() {
		writeCode(w, c, accountObject(c, in.ID))
		return
	}
	req.Reset()
	req.Op, req.ID = engine.OpGetAccount, ai.ID
	if !s.do(w, req) {
		return
	}
	b := getBuf()
	*b = appendAccount(*b, &req.Account)
	*b = append(*b, '\n')
	writeJSON(w, c.HTTPStatus(), *b)
	putBuf(b)
}

func accountObject(c ledger.Code, id string) string {
	if c == ledger.InvalidID || c == ledger.InvalidCurrency {
		return "account " + quoteID(id)
	}
	return id
}

func quoteID(id string) string {
	if len(id) > 80 {
		id = id[:80] + "..."
	}
	return "\"" + strings.ReplaceAll(id, "\"", "'") + "\""
}

type accountsBatchJSON struct {
	Accounts []accountJSON `json:"accounts"`
}

func (s *Server) createAccountsBatch(w http.ResponseWriter, r *http.Request) {
	var in accountsBatchJSON
	if !decodeJSON(w, r, MaxBatchBody, "account batch", &in) {
		return
	}
	if len(in.Accounts) == 0 || len(in.Accounts) > MaxBatchItems {
		writeError(w, http.StatusBadRequest, "invalid_batch", "account batch must hold 1-10000 accounts in \"accounts\"; split larger batches")
		return
	}
	req := &engine.Request{Op: engine.OpCreateAccounts, Accounts: make([]ledger.AccountInput, len(in.Accounts))}
	for i := range in.Accounts {
		req.Accounts[i], _ = in.Accounts[i].toInput()
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
		*b = appendResult(*b, in.Accounts[i].ID, c, accountObject(c, in.Accounts[i].ID))
	}
	*b = append(*b, ']', '}', '\n')
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !ledger.ValidID(id) {
		writeCode(w, ledger.InvalidID, "account "+quoteID(id))
		return
	}
	req := s.getReq(engine.OpGetAccount)
	defer s.putReq(req)
	req.ID = id
	if !s.do(w, req) {
		return
	}
	if !req.Found {
		writeCode(w, ledger.AccountNotFound, id)
		return
	}
	b := getBuf()
	*b = appendAccount(*b, &req.Account)
	*b = append(*b, '\n')
	writeJSON(w, http.StatusOK, *b)
	putBuf(b)
}
