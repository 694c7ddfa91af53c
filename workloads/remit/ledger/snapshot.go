package ledger

import (
	"crypto/sha256"
	"fmt"
	"slices"
)

const snapshotVersion = 1

// AppendSnapshot encodes the complete state deterministically (insertion
// order everywhere, no map iteration), so equal states give equal bytes and
// the SHA-256 of the bytes is a state hash.
func (s *State) AppendSnapshot(b []byte) []byte {
	b = appendUvarint(b, snapshotVersion)
	b = appendVarint(b, s.lastTS)
	b = appendUvarint(b, s.NextBatch)
	b = appendUvarint(b, uint64(len(s.accounts)))
	for i := range s.accounts {
		a := &s.accounts[i]
		b = appendString(b, a.ID)
		b = appendString(b, a.Currency)
		b = append(b, byte(a.Flags))
		b = appendVarint(b, a.DebitsPosted)
		b = appendVarint(b, a.CreditsPosted)
		b = appendVarint(b, a.DebitsPending)
		b = appendVarint(b, a.CreditsPending)
		b = appendVarint(b, a.Timestamp)
	}
	b = appendUvarint(b, uint64(s.tr.n))
	for i := 0; i < s.tr.n; i++ {
		r := s.tr.at(int32(i))
		da := &s.accounts[r.debit]
		b = appendBytes(b, s.tr.idBytes(r))
		b = appendString(b, da.ID)
		b = appendString(b, s.accounts[r.credit].ID)
		b = appendVarint(b, r.amount)
		b = appendString(b, da.Currency)
		b = appendBool(b, r.pending)
		b = appendVarint(b, r.timeout)
		b = append(b, byte(r.status))
		b = appendVarint(b, r.ts)
		b = appendVarint(b, r.upd)
	}
	b = appendUvarint(b, uint64(len(s.keys)))
	for i := range s.keys {
		k := &s.keys[i]
		b = appendString(b, k.Key)
		b = append(b, k.FP[:]...)
		b = append(b, byte(k.Code))
		b = appendBytes(b, s.tr.idBytes(s.tr.at(k.idx)))
		b = append(b, byte(k.status))
		b = appendVarint(b, k.upd)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = appendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// rawStr is str without the copy: the bytes alias the snapshot buffer.
func (d *decoder) rawStr(what string) []byte {
	n := d.uvarint(what)
	if n > 1<<20 {
		d.fail(what)
		return nil
	}
	return d.bytesN(int(n), what)
}

// Hash is the SHA-256 of the snapshot encoding.
func (s *State) Hash() [32]byte { return sha256.Sum256(s.AppendSnapshot(nil)) }

// LoadSnapshot rebuilds a State from AppendSnapshot bytes, re-deriving the
// indexes and the expiry heap, and checking references so a bad snapshot is
// an error rather than a panic later.
func LoadSnapshot(b []byte) (*State, error) {
	d := &decoder{b: b}
	if v := d.uvarint("version"); d.err == nil && v != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d is not supported (want %d)", v, snapshotVersion)
	}
	s := New()
	s.lastTS = d.varint("last timestamp")
	s.NextBatch = d.uvarint("next batch")
	na := d.uvarint("account count")
	if na > uint64(len(b)) {
		return nil, fmt.Errorf("snapshot account count %d exceeds its size", na)
	}
	s.accounts = make([]Account, 0, na)
	for i := uint64(0); i < na && d.err == nil; i++ {
		var a Account
		a.ID = d.str("account id")
		a.Currency = d.str("account currency")
		a.Flags = Flags(d.byte1("account flags"))
		a.DebitsPosted = d.varint("debits posted")
		a.CreditsPosted = d.varint("credits posted")
		a.DebitsPending = d.varint("debits pending")
		a.CreditsPending = d.varint("credits pending")
		a.Timestamp = d.varint("account timestamp")
		s.accIdx[a.ID] = int32(len(s.accounts))
		s.accounts = append(s.accounts, a)
	}
	nt := d.uvarint("transfer count")
	if nt > uint64(len(b)) {
		return nil, fmt.Errorf("snapshot transfer count %d exceeds its size", nt)
	}
	// Hot loop of start-up: decode without allocating (byte views, map
	// lookups keyed by string(bytes) do not allocate, ids go straight into
	// the arena). Integrity is the snapshot's CRC; this only checks references.
	for i := uint64(0); i < nt && d.err == nil; i++ {
		id := d.rawStr("transfer id")
		dr := d.rawStr("debit account id")
		cr := d.rawStr("credit account id")
		r := rec{amount: d.varint("amount")}
		ccy := d.rawStr("currency")
		r.pending = d.boolean("pending")
		r.timeout = d.varint("timeout")
		r.status = Status(d.byte1("status"))
		r.ts = d.varint("timestamp")
		r.upd = d.varint("updated at")
		if d.err != nil {
			break
		}
		di, ok1 := s.accIdx[string(dr)]
		ci, ok2 := s.accIdx[string(cr)]
		if !ok1 || !ok2 || string(ccy) != s.accounts[di].Currency || len(id) == 0 || len(id) > 64 {
			return nil, fmt.Errorf("snapshot transfer %q references a missing account or is malformed", id)
		}
		r.debit, r.credit = di, ci
		idx := s.tr.addBytes(id, r)
		s.scheduleExpiry(idx)
	}
	nk := d.uvarint("key count")
	if nk > uint64(len(b)) {
		return nil, fmt.Errorf("snapshot key count %d exceeds its size", nk)
	}
	for i := uint64(0); i < nk && d.err == nil; i++ {
		var k KeyRecord
		k.Key = d.str("key")
		copy(k.FP[:], d.bytesN(16, "fingerprint"))
		k.Code = Code(d.byte1("key code"))
		tid := d.str("key transfer id")
		k.status = Status(d.byte1("key status"))
		k.upd = d.varint("key updated at")
		if d.err != nil {
			break
		}
		idx, ok := s.tr.lookup(tid)
		if !ok {
			return nil, fmt.Errorf("snapshot idempotency key %q references missing transfer %q", k.Key, tid)
		}
		k.idx = idx
		s.keyIdx[k.Key] = int32(len(s.keys))
		s.keys = append(s.keys, k)
	}
	if d.err != nil {
		return nil, fmt.Errorf("snapshot: %w", d.err)
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("snapshot has %d trailing bytes", len(b)-d.off)
	}
	return s, nil
}

// CurrencyTotals are the per-currency figures of GET /v1/invariants, summed in
// 128 bits so many large accounts cannot wrap the totals.
type CurrencyTotals struct {
	Accounts            int
	SumBalances         Int128
	TotalDebitsPosted   Int128
	TotalCreditsPosted  Int128
	TotalDebitsPending  Int128
	TotalCreditsPending Int128
}

// Invariants computes, per currency, the double-entry checks: the sum of
// balances is zero and total debits equal total credits (posted and pending).
func (s *State) Invariants() (ok bool, per map[string]*CurrencyTotals, currencies []string) {
	per = map[string]*CurrencyTotals{}
	for i := range s.accounts {
		a := &s.accounts[i]
		t := per[a.Currency]
		if t == nil {
			t = &CurrencyTotals{}
			per[a.Currency] = t
			currencies = append(currencies, a.Currency)
		}
		t.Accounts++
		t.SumBalances = t.SumBalances.Add(a.Balance())
		t.TotalDebitsPosted = t.TotalDebitsPosted.Add(a.DebitsPosted)
		t.TotalCreditsPosted = t.TotalCreditsPosted.Add(a.CreditsPosted)
		t.TotalDebitsPending = t.TotalDebitsPending.Add(a.DebitsPending)
		t.TotalCreditsPending = t.TotalCreditsPending.Add(a.CreditsPending)
	}
	slices.Sort(currencies)
	ok = true
	for _, t := range per {
		if !t.SumBalances.IsZero() || t.TotalDebitsPosted != t.TotalCreditsPosted || t.TotalDebitsPending != t.TotalCreditsPending {
			ok = false
		}
	}
	return ok, per, currencies
}
