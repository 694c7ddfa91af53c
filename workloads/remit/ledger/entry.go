package ledger

import "fmt"

// EntryKind says what a journaled event does.
type EntryKind uint8

const (
	EntryAccount   EntryKind = 1 // create one account
	EntryTransfers EntryKind = 2 // create a linked chain of transfers (a chain of one when not linked)
	EntryPost      EntryKind = 3 // post a pending transfer
	EntryVoid      EntryKind = 4 // void a pending transfer
	EntryExpire    EntryKind = 5 // a pending transfer's timeout elapsed
)

// Entry is one state change. Only entries that changed state are journaled;
// their timestamp is fixed at first application so replay is byte-identical.
type Entry struct {
	Kind      EntryKind
	TS        int64 // timestamp of the first event; a chain uses TS, TS+1, ...
	Account   AccountInput
	Transfers []TransferInput
	ID        string   // post/void/expire target
	Key       string   // Idempotency-Key to remember on success ("" for none)
	FP        [16]byte // request fingerprint for Key
}

// Events is how many timestamps the entry consumes.
func (e *Entry) Events() int {
	if e.Kind == EntryTransfers {
		return len(e.Transfers)
	}
	return 1
}

// Apply validates and applies the entry atomically, writing one code per event
// into codes (len >= Events()). It returns whether state changed; when it
// returns false, state is exactly as before.
func (s *State) Apply(e *Entry, codes []Code) bool {
	var changed bool
	switch e.Kind {
	case EntryAccount:
		codes[0] = s.createAccount(&e.Account, e.TS)
		changed = codes[0] == OK
	case EntryTransfers:
		changed = s.applyChain(e, codes)
	case EntryPost, EntryVoid, EntryExpire:
		to := StatusExpired
		switch e.Kind {
		case EntryPost:
			to = StatusPosted
		case EntryVoid:
			to = StatusVoided
		}
		c, idx := s.resolvePending(e.ID, to, e.TS)
		codes[0] = c
		changed = c == OK
		if changed {
			s.recordKey(e.Key, e.FP, c, idx)
		}
	default:
		codes[0] = InvalidID
	}
	if changed {
		if end := e.TS + int64(e.Events()) - 1; end > s.lastTS {
			s.lastTS = end
		}
	}
	return changed
}

// applyChain creates all transfers of the chain or none of them.
func (s *State) applyChain(e *Entry, codes []Code) bool {
	created := 0
	var createdIdx [16]int32
	idxs := createdIdx[:0]
	failed := -1
	for i := range e.Transfers {
		c, idx := s.createTransfer(&e.Transfers[i], e.TS+int64(i))
		codes[i] = c
		if !c.Success() {
			failed = i
			break
		}
		if c == OK {
			created++
			idxs = append(idxs, idx)
		}
	}
	if failed >= 0 {
		for j := len(idxs) - 1; j >= 0; j-- {
			s.undoTransfer(idxs[j])
		}
		for i := range e.Transfers {
			if i != failed {
				codes[i] = LinkedEventFailed
			}
		}
		return false
	}
	for _, idx := range idxs {
		s.scheduleExpiry(idx)
	}
	if created > 0 && len(e.Transfers) == 1 {
		s.recordKey(e.Key, e.FP, OK, idxs[0])
	}
	return created > 0
}

// AppendEntry encodes e onto b.
func AppendEntry(b []byte, e *Entry) []byte {
	b = append(b, byte(e.Kind))
	b = appendVarint(b, e.TS)
	switch e.Kind {
	case EntryAccount:
		b = appendString(b, e.Account.ID)
		b = appendString(b, e.Account.Currency)
		b = append(b, byte(e.Account.Flags))
	case EntryTransfers:
		b = appendUvarint(b, uint64(len(e.Transfers)))
		for i := range e.Transfers {
			b = appendTransferInput(b, &e.Transfers[i])
		}
	default:
		b = appendString(b, e.ID)
	}
	b = appendString(b, e.Key)
	if e.Key != "" {
		b = append(b, e.FP[:]...)
	}
	return b
}

func appendTransferInput(b []byte, t *TransferInput) []byte {
	b = appendString(b, t.ID)
	b = appendString(b, t.DebitID)
	b = appendString(b, t.CreditID)
	b = appendVarint(b, t.Amount)
	b = appendString(b, t.Currency)
	b = appendBool(b, t.Pending)
	return appendVarint(b, t.TimeoutSeconds)
}

func (d *decoder) transferInput(t *TransferInput) {
	t.ID = d.str("transfer id")
	t.DebitID = d.str("debit account id")
	t.CreditID = d.str("credit account id")
	t.Amount = d.varint("amount")
	t.Currency = d.str("currency")
	t.Pending = d.boolean("pending")
	t.TimeoutSeconds = d.varint("timeout")
}

// DecodeEntries decodes a journal payload produced by repeated AppendEntry
// calls, calling fn for each entry (e is reused between calls).
func DecodeEntries(b []byte, fn func(e *Entry) error) error {
	d := &decoder{b: b}
	var e Entry
	for d.off < len(b) && d.err == nil {
		e.Kind = EntryKind(d.byte1("entry kind"))
		e.TS = d.varint("timestamp")
		e.Transfers = e.Transfers[:0]
		e.ID, e.Key, e.Account = "", "", AccountInput{}
		switch e.Kind {
		case EntryAccount:
			e.Account.ID = d.str("account id")
			e.Account.Currency = d.str("account currency")
			e.Account.Flags = Flags(d.byte1("account flags"))
		case EntryTransfers:
			n := d.uvarint("chain length")
			if n == 0 || n > 1<<20 {
				return fmt.Errorf("decoding entry at byte %d: chain length %d out of range", d.off, n)
			}
			for i := uint64(0); i < n && d.err == nil; i++ {
				var t TransferInput
				d.transferInput(&t)
				e.Transfers = append(e.Transfers, t)
			}
		case EntryPost, EntryVoid, EntryExpire:
			e.ID = d.str("target id")
		default:
			return fmt.Errorf("decoding entry at byte %d: unknown entry kind %d", d.off-1, e.Kind)
		}
		e.Key = d.str("idempotency key")
		if e.Key != "" {
			copy(e.FP[:], d.bytesN(16, "fingerprint"))
		}
		if d.err != nil {
			return d.err
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return d.err
}
