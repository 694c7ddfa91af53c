package ledger

import "container/heap"

// KeyRecord remembers an Idempotency-Key: the request fingerprint and the
// response it produced (the code and the transfer as it was at that moment).
type KeyRecord struct {
	Key    string
	FP     [16]byte
	Code   Code
	idx    int32
	status Status
	upd    int64
}

// State is the whole ledger. Not safe for concurrent use by design: one goroutine owns it.
type State struct {
	accounts []Account
	accIdx   map[string]int32
	tr       transferStore
	keys     []KeyRecord
	keyIdx   map[string]int32
	expiry   expiryHeap
	lastTS   int64
	// NextBatch is the sequence number the next journal record must carry; it
	// lives here so snapshots carry it and replay can detect gaps.
	NextBatch uint64
}

// New returns an empty ledger.
func New() *State {
	return &State{accIdx: map[string]int32{}, tr: newTransferStore(), keyIdx: map[string]int32{}, NextBatch: 1}
}

// LastTimestamp is the largest timestamp assigned so far (ns since epoch).
func (s *State) LastTimestamp() int64 { return s.lastTS }

// NumAccounts and NumTransfers report sizes (for metrics and tests).
func (s *State) NumAccounts() int  { return len(s.accounts) }
func (s *State) NumTransfers() int { return s.tr.n }

// view materializes the stored transfer i (allocates its id string).
func (s *State) view(i int32) Transfer {
	r := s.tr.at(i)
	return s.viewAs(r, r.status, r.upd)
}

func (s *State) viewAs(r *rec, st Status, upd int64) Transfer {
	da, ca := &s.accounts[r.debit], &s.accounts[r.credit]
	return Transfer{TransferInput: TransferInput{ID: string(s.tr.idBytes(r)), DebitID: da.ID, CreditID: ca.ID, Amount: r.amount,
		Currency: da.Currency, Pending: r.pending, TimeoutSeconds: r.timeout}, Status: st, Timestamp: r.ts, UpdatedAt: upd}
}

// Account returns a copy of the account.
func (s *State) Account(id string) (Account, bool) {
	i, ok := s.accIdx[id]
	if !ok {
		return Account{}, false
	}
	return s.accounts[i], true
}

// Transfer returns a copy of the transfer.
func (s *State) Transfer(id string) (Transfer, bool) {
	i, ok := s.tr.lookup(id)
	if !ok {
		return Transfer{}, false
	}
	return s.view(i), true
}

// LookupKey returns the fingerprint and original result of an Idempotency-Key.
func (s *State) LookupKey(key string) (fp [16]byte, c Code, t Transfer, ok bool) {
	i, ok := s.keyIdx[key]
	if !ok {
		return fp, 0, t, false
	}
	k := &s.keys[i]
	return k.FP, k.Code, s.viewAs(s.tr.at(k.idx), k.status, k.upd), true
}

func (s *State) recordKey(key string, fp [16]byte, c Code, idx int32) {
	if key == "" {
		return
	}
	if _, dup := s.keyIdx[key]; dup {
		return
	}
	r := s.tr.at(idx)
	s.keyIdx[key] = int32(len(s.keys))
	s.keys = append(s.keys, KeyRecord{Key: key, FP: fp, Code: c, idx: idx, status: r.status, upd: r.upd})
}

// checkAccount validates a create-account event and reports whether it would create.
func (s *State) checkAccount(a *AccountInput) Code {
	if !ValidID(a.ID) {
		return InvalidID
	}
	if !ValidCurrency(a.Currency) {
		return InvalidCurrency
	}
	if a.Flags&^flagsKnown != 0 || a.Flags == flagsKnown {
		return InvalidFlags
	}
	if i, ok := s.accIdx[a.ID]; ok {
		ex := &s.accounts[i]
		switch {
		case ex.Currency != a.Currency:
			return ExistsWithDifferentCurrency
		case ex.Flags != a.Flags:
			return ExistsWithDifferentFlags
		}
		return Exists
	}
	return OK
}

func (s *State) createAccount(a *AccountInput, ts int64) Code {
	c := s.checkAccount(a)
	if c != OK {
		return c
	}
	s.accIdx[a.ID] = int32(len(s.accounts))
	s.accounts = append(s.accounts, Account{ID: a.ID, Currency: a.Currency, Flags: a.Flags, Timestamp: ts})
	return OK
}

// validateTransfer checks everything that does not need the accounts' balances.
func validateTransfer(t *TransferInput) Code {
	switch {
	case !ValidID(t.ID), !ValidID(t.DebitID), !ValidID(t.CreditID):
		return InvalidID
	case t.Amount <= 0:
		return InvalidAmount
	case !ValidCurrency(t.Currency):
		return InvalidCurrency
	case t.TimeoutSeconds < 0, t.TimeoutSeconds > 0 && !t.Pending, t.TimeoutSeconds > 1<<31:
		return InvalidTimeout
	case t.DebitID == t.CreditID:
		return AccountsMustBeDifferent
	}
	return OK
}

func (s *State) compareExisting(ex *rec, t *TransferInput) Code {
	da := &s.accounts[ex.debit]
	switch {
	case da.ID != t.DebitID:
		return ExistsWithDifferentDebitAccountID
	case s.accounts[ex.credit].ID != t.CreditID:
		return ExistsWithDifferentCreditAccountID
	case ex.amount != t.Amount:
		return ExistsWithDifferentAmount
	case da.Currency != t.Currency:
		return ExistsWithDifferentCurrency
	case ex.pending != t.Pending:
		return ExistsWithDifferentPending
	case ex.timeout != t.TimeoutSeconds:
		return ExistsWithDifferentTimeout
	}
	return Exists
}

func addOverflows(a, b int64) bool { return a > (1<<63-1)-b }

// createTransfer validates and applies one transfer; on anything but OK nothing changed.
func (s *State) createTransfer(t *TransferInput, ts int64) (Code, int32) {
	if c := validateTransfer(t); c != OK {
		return c, -1
	}
	if i, ok := s.tr.lookup(t.ID); ok {
		return s.compareExisting(s.tr.at(i), t), i
	}
	di, ok := s.accIdx[t.DebitID]
	if !ok {
		return DebitAccountNotFound, -1
	}
	ci, ok := s.accIdx[t.CreditID]
	if !ok {
		return CreditAccountNotFound, -1
	}
	da, ca := &s.accounts[di], &s.accounts[ci]
	if da.Currency != t.Currency || ca.Currency != t.Currency {
		return CurrencyMismatch, -1
	}
	dTotal, cTotal := da.DebitsPosted+da.DebitsPending, ca.CreditsPosted+ca.CreditsPending
	if addOverflows(dTotal, t.Amount) || addOverflows(cTotal, t.Amount) {
		return Overflow, -1
	}
	if da.Flags&FlagDebitsMustNotExceedCredits != 0 && dTotal+t.Amount > da.CreditsPosted {
		return ExceedsCredits, -1
	}
	if ca.Flags&FlagCreditsMustNotExceedDebits != 0 && cTotal+t.Amount > ca.DebitsPosted {
		return ExceedsDebits, -1
	}
	st := StatusPosted
	if t.Pending {
		st = StatusPending
		da.DebitsPending += t.Amount
		ca.CreditsPending += t.Amount
	} else {
		da.DebitsPosted += t.Amount
		ca.CreditsPosted += t.Amount
	}
	idx := s.tr.add(t.ID, rec{amount: t.Amount, ts: ts, upd: ts, timeout: t.TimeoutSeconds, debit: di, credit: ci, status: st, pending: t.Pending})
	return OK, idx
}

// undoTransfer reverses the most recently created transfer (linked-chain rollback).
func (s *State) undoTransfer(idx int32) {
	tr := s.tr.at(idx)
	da, ca := &s.accounts[tr.debit], &s.accounts[tr.credit]
	if tr.status == StatusPending {
		da.DebitsPending -= tr.amount
		ca.CreditsPending -= tr.amount
	} else {
		da.DebitsPosted -= tr.amount
		ca.CreditsPosted -= tr.amount
	}
	s.tr.popLast()
}

// resolvePending posts, voids or expires a pending transfer.
func (s *State) resolvePending(id string, to Status, ts int64) (Code, int32) {
	i, ok := s.tr.lookup(id)
	if !ok {
		return TransferNotFound, -1
	}
	tr := s.tr.at(i)
	if !tr.pending {
		return TransferNotPending, i
	}
	switch tr.status {
	case StatusPosted:
		if to == StatusPosted {
			return Exists, i
		}
		return PendingAlreadyPosted, i
	case StatusVoided:
		if to == StatusVoided {
			return Exists, i
		}
		return PendingAlreadyVoided, i
	case StatusExpired:
		return PendingExpired, i
	}
	da, ca := &s.accounts[tr.debit], &s.accounts[tr.credit]
	da.DebitsPending -= tr.amount
	ca.CreditsPending -= tr.amount
	if to == StatusPosted {
		da.DebitsPosted += tr.amount
		ca.CreditsPosted += tr.amount
	}
	tr.status = to
	tr.upd = ts
	return OK, i
}

// DueExpiries returns the ids of pending transfers whose timeout elapsed at or
// before now. The caller turns each into an EntryExpire so replay is exact.
func (s *State) DueExpiries(now int64, out []string) []string {
	for len(s.expiry) > 0 && s.expiry[0].deadline <= now {
		e := heap.Pop(&s.expiry).(expiryItem)
		if tr := s.tr.at(e.idx); tr.status == StatusPending {
			out = append(out, string(s.tr.idBytes(tr)))
		}
	}
	return out
}

// HasDue reports whether a pending-transfer timeout may be due at now.
func (s *State) HasDue(now int64) bool { return len(s.expiry) > 0 && s.expiry[0].deadline <= now }

func (s *State) scheduleExpiry(idx int32) {
	tr := s.tr.at(idx)
	if tr.status == StatusPending && tr.timeout > 0 {
		heap.Push(&s.expiry, expiryItem{deadline: tr.ts + tr.timeout*1e9, idx: idx})
	}
}

type expiryItem struct {
	deadline int64
	idx      int32
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if h[i].deadline != h[j].deadline {
		return h[i].deadline < h[j].deadline
	}
	return h[i].idx < h[j].idx
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)   { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
