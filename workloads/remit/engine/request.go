// Package engine runs remit's ledger the TigerBeetle way: every request goes
// into one queue; a single state-machine goroutine takes a batch (up to
// MaxBatch events, or whatever is queued), validates and applies it against
// the in-memory ledger it alone owns, and hands the batch's journal record to
// a writer goroutine that appends it and fsyncs once for the whole batch
// (group commit). Only after that fsync is any request of the batch
// answered, so an acknowledged transfer is always durable. While the writer
// syncs batch N the state machine already applies batch N+1; N+1 is answered
// only after its own (later) fsync, so nothing is acknowledged early.
package engine

import (
	"errors"

	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// Op is the kind of request.
type Op uint8

const (
	OpCreateAccounts  Op = iota + 1 // Accounts
	OpCreateTransfers               // Transfers, Linked; Key/FP only with exactly one transfer
	OpPost                          // ID, Key, FP
	OpVoid                          // ID, Key, FP
	OpGetAccount                    // ID
	OpGetTransfer                   // ID
	OpInvariants
	OpHash // state hash (tests and tooling)
)

// ErrClosed is returned once the engine is shutting down.
var ErrClosed = errors.New("remit engine is shutting down; retry against the restarted service")

// Request is one queued operation with its results. Reuse a Request (its
// done channel is allocated once) to keep the hot path allocation-free.
type Request struct {
	Op        Op
	Accounts  []ledger.AccountInput
	Transfers []ledger.TransferInput
	Linked    bool
	ID        string
	Key       string
	FP        [16]byte

	// Results, valid after Do returns nil.
	Codes      []ledger.Code   // one per account/transfer, or one for post/void/get
	Transfer   ledger.Transfer // single transfer, post/void, get
	Account    ledger.Account
	Found      bool
	Replayed   bool // answered from the Idempotency-Key record
	InvOK      bool
	Inv        map[string]*ledger.CurrencyTotals
	Currencies []string
	Hash       [32]byte
	err        error

	done chan struct{}
}

// Reset clears inputs and results for reuse, keeping slice capacity.
func (r *Request) Reset() {
	done := r.done
	accounts, transfers, codes := r.Accounts[:0], r.Transfers[:0], r.Codes[:0]
	*r = Request{done: done, Accounts: accounts, Transfers: transfers, Codes: codes}
}

func (r *Request) events() int {
	switch r.Op {
	case OpCreateAccounts:
		return len(r.Accounts)
	case OpCreateTransfers:
		return len(r.Transfers)
	}
	return 1
}

func (r *Request) codes(n int) []ledger.Code {
	if cap(r.Codes) < n {
		r.Codes = make([]ledger.Code, n)
	}
	r.Codes = r.Codes[:n]
	return r.Codes
}
