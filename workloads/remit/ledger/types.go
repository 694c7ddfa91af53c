// Package ledger is remit's deterministic double-entry state machine: accounts,
// transfers, two-phase pending transfers and idempotency-key records. It owns
// no goroutines and no locks: exactly one goroutine (the engine's state-machine
// loop) calls it, which is what lets hot accounts go without lock contention.
// Every mutation is expressed as an Entry so the journal can replay it
// byte-for-byte into the same state.
package ledger

import (
	"fmt"
	"strings"
)

// Flags are account constraints checked on every transfer.
type Flags uint8

const (
	// FlagDebitsMustNotExceedCredits: debits_posted+debits_pending <= credits_posted (no overdraft).
	FlagDebitsMustNotExceedCredits Flags = 1 << 0
	// FlagCreditsMustNotExceedDebits: credits_posted+credits_pending <= debits_posted.
	FlagCreditsMustNotExceedDebits Flags = 1 << 1

	flagsKnown = FlagDebitsMustNotExceedCredits | FlagCreditsMustNotExceedDebits
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagDebitsMustNotExceedCredits, "debits_must_not_exceed_credits"},
	{FlagCreditsMustNotExceedDebits, "credits_must_not_exceed_debits"},
}

// ParseFlags converts API flag names to Flags; unknown names are an error naming the flag.
func ParseFlags(names []string) (Flags, error) {
	var f Flags
	for _, n := range names {
		found := false
		for _, fn := range flagNames {
			if fn.name == n {
				f |= fn.f
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown account flag %q; use debits_must_not_exceed_credits or credits_must_not_exceed_debits", n)
		}
	}
	if f&FlagDebitsMustNotExceedCredits != 0 && f&FlagCreditsMustNotExceedDebits != 0 {
		return 0, fmt.Errorf("account flags debits_must_not_exceed_credits and credits_must_not_exceed_debits are mutually exclusive; keep one")
	}
	return f, nil
}

// Names returns the flag names in a stable order (never nil, so JSON shows []).
func (f Flags) Names() []string {
	out := []string{}
	for _, fn := range flagNames {
		if f&fn.f != 0 {
			out = append(out, fn.name)
		}
	}
	return out
}

// Account is one ledger account. Balances are int64 minor units and only grow;
// the balance is CreditsPosted-DebitsPosted.
type Account struct {
	ID             string
	Currency       string
	Flags          Flags
	DebitsPosted   int64
	CreditsPosted  int64
	DebitsPending  int64
	CreditsPending int64
	Timestamp      int64
}

// Balance is credits_posted - debits_posted (both are non-negative, so it cannot overflow).
func (a *Account) Balance() int64 { return a.CreditsPosted - a.DebitsPosted }

// Status of a transfer.
type Status uint8

const (
	StatusPosted Status = iota + 1
	StatusPending
	StatusVoided
	StatusExpired
)

func (s Status) String() string {
	switch s {
	case StatusPosted:
		return "posted"
	case StatusPending:
		return "pending"
	case StatusVoided:
		return "voided"
	case StatusExpired:
		return "expired"
	}
	return "unknown"
}

// TransferInput is what a client asks for.
type TransferInput struct {
	ID             string
	DebitID        string
	CreditID       string
	Amount         int64
	Currency       string
	Pending        bool
	TimeoutSeconds int64
}

// Transfer is a stored transfer. Two-phase transfers keep their id; post/void
// change Status (and UpdatedAt) in place.
type Transfer struct {
	TransferInput
	Status    Status
	Timestamp int64 // creation, unique and strictly increasing
	UpdatedAt int64 // last status change
}

// AccountInput is what a client asks for when creating an account.
type AccountInput struct {
	ID       string
	Currency string
	Flags    Flags
}

// ValidID reports whether id is 1-64 chars of [A-Za-z0-9._:-].
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidCurrency reports whether c is three upper-case ASCII letters (ISO 4217 shape).
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	return strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) < 0
}
