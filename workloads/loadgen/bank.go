package loadgen

import (
	"fmt"
	"sort"
	"time"
)

// BankModel is what a Jepsen-"bank"-style check knows about the ledger:
// the customer accounts it created, which are flagged
// debits_must_not_exceed_credits, and the total the mint issued to them.
type BankModel struct {
	Accounts []string
	Flagged  map[string]bool
	Total    int64
}

// BankRead is one read of all customer balances. Quiescent reads (taken
// when no transfer is in flight) must sum exactly to the total; reads
// during load are not snapshots (the contract reads one account at a
// time), so for them only per-account rules are checked.
type BankRead struct {
	At        time.Time
	Quiescent bool
	Balances  map[string]int64 // account -> balance (credits - debits posted)
	Missing   []string         // accounts that returned 404
	// Atomic evidence for reads during load: remit's /v1/invariants (one
	// consistent computation) says all balances of the currency sum to 0,
	// and the mint's balance is unchanged, so the customer accounts sum to
	// exactly what the mint issued at that instant.
	Invariants *InvariantsRead
}

// InvariantsRead is one GET /v1/invariants plus the mint balance.
type InvariantsRead struct {
	OK          bool
	SumBalances int64
	MintBalance int64
}

// CheckBank returns every violation found in reads (empty = pass).
func CheckBank(m BankModel, reads []BankRead) []string {
	var v []string
	want := make(map[string]bool, len(m.Accounts))
	for _, a := range m.Accounts {
		want[a] = true
	}
	for i, r := range reads {
		tag := fmt.Sprintf("read %d at %s", i, r.At.Format("15:04:05.000"))
		for _, a := range r.Missing {
			v = append(v, fmt.Sprintf("%s: account %s is missing (404)", tag, a))
		}
		var sum int64
		var unexpected []string
		for a, b := range r.Balances {
			if !want[a] {
				unexpected = append(unexpected, a)
				continue
			}
			sum += b
			if m.Flagged[a] && b < 0 {
				v = append(v, fmt.Sprintf("%s: account %s has negative balance %d despite debits_must_not_exceed_credits", tag, a, b))
			}
		}
		sort.Strings(unexpected)
		for _, a := range unexpected {
			v = append(v, fmt.Sprintf("%s: unexpected account %s", tag, a))
		}
		seen := len(r.Balances) - len(unexpected) + len(r.Missing)
		if seen != len(m.Accounts) {
			v = append(v, fmt.Sprintf("%s: read covers %d of %d accounts", tag, seen, len(m.Accounts)))
		}
		if iv := r.Invariants; iv != nil {
			if !iv.OK || iv.SumBalances != 0 {
				v = append(v, fmt.Sprintf("%s: /v1/invariants ok=%v sum_balances=%d", tag, iv.OK, iv.SumBalances))
			}
			if iv.MintBalance != -m.Total {
				v = append(v, fmt.Sprintf("%s: mint balance %d, expected %d (customer accounts no longer hold exactly the issued total)", tag, iv.MintBalance, -m.Total))
			}
		}
		if r.Quiescent && len(r.Missing) == 0 && sum != m.Total {
			v = append(v, fmt.Sprintf("%s: balances sum to %d, expected %d (money created or destroyed: %+d)", tag, sum, m.Total, sum-m.Total))
		}
	}
	return v
}

// Reconcile compares actual balances with the balances implied by the
// transfers remit holds (each applied exactly once): a duplicate or lost
// transfer shows up as a mismatch on its accounts.
func Reconcile(initial map[string]int64, applied []TransferRec, accounts []string, actual map[string]int64) []string {
	exp := make(map[string]int64, len(initial))
	for k, v := range initial {
		exp[k] = v
	}
	for _, t := range applied {
		exp[accounts[t.Debit]] -= t.Amount
		exp[accounts[t.Credit]] += t.Amount
	}
	var v []string
	for _, a := range accounts {
		if got, ok := actual[a]; ok && got != exp[a] {
			v = append(v, fmt.Sprintf("account %s balance %d, expected %d from its transfers (difference %+d)", a, got, exp[a], got-exp[a]))
		}
	}
	return v
}
