package ledger

import (
	"testing"
)

// harness applies entries the way the engine does, with increasing timestamps.
type harness struct {
	t  *testing.T
	s  *State
	ts int64
}

func newHarness(t *testing.T) *harness { return &harness{t: t, s: New(), ts: 1000} }

func (h *harness) apply(e Entry) []Code {
	e.TS = h.ts
	h.ts += int64(e.Events())
	codes := make([]Code, e.Events())
	h.s.Apply(&e, codes)
	return codes
}

func (h *harness) account(id, ccy string, f Flags) Code {
	return h.apply(Entry{Kind: EntryAccount, Account: AccountInput{ID: id, Currency: ccy, Flags: f}})[0]
}

func (h *harness) transfer(t TransferInput) Code {
	return h.apply(Entry{Kind: EntryTransfers, Transfers: []TransferInput{t}})[0]
}

func (h *harness) acct(id string) Account {
	a, ok := h.s.Account(id)
	if !ok {
		h.t.Fatalf("account %s missing", id)
	}
	return a
}

func tr(id, dr, cr string, amt int64) TransferInput {
	return TransferInput{ID: id, DebitID: dr, CreditID: cr, Amount: amt, Currency: "EUR"}
}

// setup: mint (unflagged), alice+bob (no overdraft), ceil (credits_must_not_exceed_debits), usd.
func setup(t *testing.T) *harness {
	h := newHarness(t)
	for _, a := range []struct {
		id, ccy string
		f       Flags
	}{{"mint", "EUR", 0}, {"alice", "EUR", FlagDebitsMustNotExceedCredits}, {"bob", "EUR", FlagDebitsMustNotExceedCredits},
		{"ceil", "EUR", FlagCreditsMustNotExceedDebits}, {"usd", "USD", 0}} {
		if c := h.account(a.id, a.ccy, a.f); c != OK {
			t.Fatalf("create %s: %v", a.id, c)
		}
	}
	if c := h.transfer(tr("fund", "mint", "alice", 1000)); c != OK {
		t.Fatalf("fund: %v", c)
	}
	return h
}

func TestCreateAccount(t *testing.T) {
	h := setup(t)
	for _, tc := range []struct {
		name string
		in   AccountInput
		want Code
	}{
		{"identical is exists", AccountInput{"alice", "EUR", FlagDebitsMustNotExceedCredits}, Exists},
		{"other currency", AccountInput{"alice", "USD", FlagDebitsMustNotExceedCredits}, ExistsWithDifferentCurrency},
		{"other flags", AccountInput{"alice", "EUR", 0}, ExistsWithDifferentFlags},
		{"bad id", AccountInput{"a b", "EUR", 0}, InvalidID},
		{"long id", AccountInput{string(make([]byte, 65)), "EUR", 0}, InvalidID},
		{"bad currency", AccountInput{"x", "eur", 0}, InvalidCurrency},
		{"both flags", AccountInput{"x", "EUR", FlagDebitsMustNotExceedCredits | FlagCreditsMustNotExceedDebits}, InvalidFlags},
		{"unknown flag bit", AccountInput{"x", "EUR", 1 << 5}, InvalidFlags},
		{"new", AccountInput{"x", "EUR", 0}, OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.s.Hash()
			got := h.account(tc.in.ID, tc.in.Currency, tc.in.Flags)
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if got != OK && h.s.Hash() != before {
				t.Fatal("rejected account changed state")
			}
		})
	}
}

func TestTransfersTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   TransferInput
		want Code
	}{
		{"ok", tr("t", "alice", "bob", 400), OK},
		{"whole balance", tr("t", "alice", "bob", 1000), OK},
		{"overdraft", tr("t", "alice", "bob", 1001), ExceedsCredits},
		{"unflagged may go negative", tr("t", "mint", "bob", 1<<40), OK},
		{"credit ceiling", tr("t", "mint", "ceil", 1), ExceedsDebits},
		{"zero", tr("t", "alice", "bob", 0), InvalidAmount},
		{"negative", tr("t", "alice", "bob", -5), InvalidAmount},
		{"same account", tr("t", "alice", "alice", 5), AccountsMustBeDifferent},
		{"unknown debit", tr("t", "nobody", "bob", 5), DebitAccountNotFound},
		{"unknown credit", tr("t", "alice", "nobody", 5), CreditAccountNotFound},
		{"currency mismatch accounts", tr("t", "mint", "usd", 5), CurrencyMismatch},
		{"currency mismatch transfer", TransferInput{ID: "t", DebitID: "mint", CreditID: "bob", Amount: 5, Currency: "USD"}, CurrencyMismatch},
		{"bad currency", TransferInput{ID: "t", DebitID: "mint", CreditID: "bob", Amount: 5, Currency: "E"}, InvalidCurrency},
		{"bad id", tr("t/1", "alice", "bob", 5), InvalidID},
		{"bad account id", tr("t", "al ice", "bob", 5), InvalidID},
		{"timeout without pending", TransferInput{ID: "t", DebitID: "alice", CreditID: "bob", Amount: 5, Currency: "EUR", TimeoutSeconds: 5}, InvalidTimeout},
		{"exists identical", tr("fund", "mint", "alice", 1000), Exists},
		{"exists other amount", tr("fund", "mint", "alice", 999), ExistsWithDifferentAmount},
		{"exists other debit", tr("fund", "bob", "alice", 1000), ExistsWithDifferentDebitAccountID},
		{"exists other credit", tr("fund", "mint", "bob", 1000), ExistsWithDifferentCreditAccountID},
		{"exists other pending", TransferInput{ID: "fund", DebitID: "mint", CreditID: "alice", Amount: 1000, Currency: "EUR", Pending: true}, ExistsWithDifferentPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := setup(t)
			before := h.s.Hash()
			got := h.transfer(tc.in)
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if got != OK && h.s.Hash() != before {
				t.Fatal("rejected transfer changed state")
			}
			if ok, _, _ := h.s.Invariants(); !ok {
				t.Fatal("invariants violated")
			}
		})
	}
}

func TestBalancesAndOverflow(t *testing.T) {
	h := setup(t)
	if c := h.transfer(tr("t1", "alice", "bob", 300)); c != OK {
		t.Fatal(c)
	}
	a, b := h.acct("alice"), h.acct("bob")
	if a.DebitsPosted != 300 || a.CreditsPosted != 1000 || a.Balance() != 700 || b.Balance() != 300 {
		t.Fatalf("alice %+v bob %+v", a, b)
	}
	const max = 1<<63 - 1
	h.account("mint2", "EUR", 0)
	if c := h.transfer(tr("big", "mint2", "bob", max-300)); c != OK {
		t.Fatalf("filling bob to int64 max: %v", c)
	}
	before := h.s.Hash()
	if c := h.transfer(tr("over", "mint", "bob", 1)); c != Overflow {
		t.Fatalf("overflow: got %v", c)
	}
	if c := h.transfer(tr("over2", "mint2", "alice", 301)); c != Overflow { // mint2's debits would overflow
		t.Fatalf("debit overflow: got %v", c)
	}
	if h.s.Hash() != before {
		t.Fatal("overflow changed state")
	}
	ok, per, _ := h.s.Invariants()
	if !ok || !per["EUR"].SumBalances.IsZero() {
		t.Fatalf("invariants %v %+v", ok, per["EUR"])
	}
	if got := per["EUR"].TotalDebitsPosted.String(); got != "9223372036854776807" { // max + 1000: needs more than int64
		t.Fatalf("total debits %s", got)
	}
}

func TestLinkedChainAtomic(t *testing.T) {
	h := setup(t)
	before := h.s.Hash()
	chain := []TransferInput{tr("l1", "alice", "bob", 600), tr("l2", "bob", "alice", 100), tr("l3", "alice", "bob", 600)}
	codes := h.apply(Entry{Kind: EntryTransfers, Transfers: chain})
	want := []Code{LinkedEventFailed, LinkedEventFailed, ExceedsCredits}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v", codes, want)
		}
	}
	if h.s.Hash() != before {
		t.Fatal("failed linked chain left state behind")
	}
	if _, ok := h.s.Transfer("l1"); ok {
		t.Fatal("l1 visible after rollback")
	}
	// later events see earlier ones: l2 funds alice enough for l3
	chain[2].Amount = 500
	codes = h.apply(Entry{Kind: EntryTransfers, Transfers: chain})
	for i, c := range codes {
		if c != OK {
			t.Fatalf("event %d: %v", i, c)
		}
	}
	if a := h.acct("alice"); a.Balance() != 0 {
		t.Fatalf("alice balance %d", a.Balance())
	}
}

func TestTwoPhase(t *testing.T) {
	h := setup(t)
	pend := func(id string, amt, timeout int64) TransferInput {
		return TransferInput{ID: id, DebitID: "alice", CreditID: "bob", Amount: amt, Currency: "EUR", Pending: true, TimeoutSeconds: timeout}
	}
	if c := h.transfer(pend("p1", 600, 0)); c != OK {
		t.Fatal(c)
	}
	if a := h.acct("alice"); a.DebitsPending != 600 || a.DebitsPosted != 0 {
		t.Fatalf("alice %+v", a)
	}
	// the reservation counts against the overdraft flag
	if c := h.transfer(tr("t2", "alice", "bob", 401)); c != ExceedsCredits {
		t.Fatalf("pending not reserved: %v", c)
	}
	res := func(kind EntryKind, id string) Code { return h.apply(Entry{Kind: kind, ID: id})[0] }
	for _, step := range []struct {
		kind EntryKind
		id   string
		want Code
	}{
		{EntryPost, "nope", TransferNotFound},
		{EntryPost, "fund", TransferNotPending},
		{EntryPost, "p1", OK},
		{EntryPost, "p1", Exists},
		{EntryVoid, "p1", PendingAlreadyPosted},
	} {
		if got := res(step.kind, step.id); got != step.want {
			t.Fatalf("%d %s: got %v want %v", step.kind, step.id, got, step.want)
		}
	}
	if a, b := h.acct("alice"), h.acct("bob"); a.DebitsPending != 0 || a.DebitsPosted != 600 || b.CreditsPosted != 600 || b.CreditsPending != 0 {
		t.Fatalf("after post alice %+v bob %+v", a, b)
	}
	if c := h.transfer(pend("p2", 400, 0)); c != OK {
		t.Fatal(c)
	}
	if got := res(EntryVoid, "p2"); got != OK {
		t.Fatal(got)
	}
	if got := res(EntryPost, "p2"); got != PendingAlreadyVoided {
		t.Fatal(got)
	}
	if a := h.acct("alice"); a.DebitsPending != 0 || a.Balance() != 400 {
		t.Fatalf("after void alice %+v", a)
	}
	// timeout: due only once the deadline passed
	if c := h.transfer(pend("p3", 100, 2)); c != OK {
		t.Fatal(c)
	}
	p3, _ := h.s.Transfer("p3")
	if ids := h.s.DueExpiries(p3.Timestamp+2e9-1, nil); len(ids) != 0 {
		t.Fatalf("expired early: %v", ids)
	}
	ids := h.s.DueExpiries(p3.Timestamp+2e9, nil)
	if len(ids) != 1 || ids[0] != "p3" {
		t.Fatalf("due %v", ids)
	}
	if got := res(EntryExpire, "p3"); got != OK {
		t.Fatal(got)
	}
	if got := res(EntryPost, "p3"); got != PendingExpired {
		t.Fatal(got)
	}
	if a := h.acct("alice"); a.DebitsPending != 0 {
		t.Fatalf("expired reservation kept: %+v", a)
	}
	if ok, _, _ := h.s.Invariants(); !ok {
		t.Fatal("invariants")
	}
}

func TestIdempotencyKeyRecord(t *testing.T) {
	h := setup(t)
	fp := [16]byte{1}
	codes := h.apply(Entry{Kind: EntryTransfers, Transfers: []TransferInput{tr("k1", "alice", "bob", 5)}, Key: "key-1", FP: fp})
	if codes[0] != OK {
		t.Fatal(codes)
	}
	gfp, code, got, ok := h.s.LookupKey("key-1")
	if !ok || gfp != fp || code != OK || got.ID != "k1" || got.Amount != 5 || got.DebitID != "alice" || got.Currency != "EUR" {
		t.Fatalf("record %+v %v", got, ok)
	}
	// a failed request does not consume its key
	h.apply(Entry{Kind: EntryTransfers, Transfers: []TransferInput{tr("k2", "alice", "bob", 5000)}, Key: "key-2", FP: fp})
	if _, _, _, ok := h.s.LookupKey("key-2"); ok {
		t.Fatal("failed request recorded its key")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := setup(t)
	h.transfer(TransferInput{ID: "p", DebitID: "alice", CreditID: "bob", Amount: 7, Currency: "EUR", Pending: true, TimeoutSeconds: 60})
	h.apply(Entry{Kind: EntryTransfers, Transfers: []TransferInput{tr("k", "alice", "bob", 5)}, Key: "key", FP: [16]byte{9}})
	for i := 0; i < 5000; i++ { // more than one transfer chunk
		h.transfer(tr("m"+string(rune('a'+i%26))+itoa(i), "mint", "bob", 1))
	}
	snap := h.s.AppendSnapshot(nil)
	s2, err := LoadSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Hash() != h.s.Hash() {
		t.Fatal("snapshot round trip changed the state hash")
	}
	if !s2.HasDue(1 << 62) {
		t.Fatal("expiry heap not rebuilt from snapshot")
	}
	for _, cut := range []int{0, 1, len(snap) / 2, len(snap) - 1} {
		if _, err := LoadSnapshot(snap[:cut]); err == nil {
			t.Fatalf("truncated snapshot (%d bytes) accepted", cut)
		}
	}
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}

func TestEntryCodecRoundTrip(t *testing.T) {
	entries := []Entry{
		{Kind: EntryAccount, TS: 5, Account: AccountInput{"a", "EUR", FlagDebitsMustNotExceedCredits}},
		{Kind: EntryTransfers, TS: 6, Transfers: []TransferInput{tr("x", "a", "b", 9), {ID: "y", DebitID: "b", CreditID: "a", Amount: 1, Currency: "EUR", Pending: true, TimeoutSeconds: 3}}, Key: "k", FP: [16]byte{1, 2}},
		{Kind: EntryPost, TS: 8, ID: "y"},
		{Kind: EntryVoid, TS: 9, ID: "y", Key: "k2", FP: [16]byte{3}},
		{Kind: EntryExpire, TS: 10, ID: "z"},
	}
	var b []byte
	for i := range entries {
		b = AppendEntry(b, &entries[i])
	}
	i := 0
	err := DecodeEntries(b, func(e *Entry) error {
		var re []byte
		re = AppendEntry(re, e)
		var want []byte
		want = AppendEntry(want, &entries[i])
		if string(re) != string(want) {
			t.Fatalf("entry %d round trip mismatch", i)
		}
		i++
		return nil
	})
	if err != nil || i != len(entries) {
		t.Fatalf("decoded %d, err %v", i, err)
	}
	if err := DecodeEntries(b[:len(b)-3], func(*Entry) error { return nil }); err == nil {
		t.Fatal("truncated entries accepted")
	}
}
