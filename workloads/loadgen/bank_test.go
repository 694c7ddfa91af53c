package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestCheckBank(t *testing.T) {
	model := BankModel{Accounts: []string{"a", "b", "c"}, Flagged: map[string]bool{"a": true, "b": true, "c": true}, Total: 300}
	now := time.Now()
	cases := []struct {
		name  string
		read  BankRead
		wants []string // substrings of expected violations; empty = pass
	}{
		{"consistent", BankRead{At: now, Quiescent: true, Balances: map[string]int64{"a": 50, "b": 150, "c": 100}}, nil},
		{"money created", BankRead{At: now, Quiescent: true, Balances: map[string]int64{"a": 51, "b": 150, "c": 100}}, []string{"sum to 301, expected 300"}},
		{"non-snapshot sum ignored", BankRead{At: now, Balances: map[string]int64{"a": 0, "b": 150, "c": 100}}, nil},
		{"negative", BankRead{At: now, Balances: map[string]int64{"a": -1, "b": 201, "c": 100}}, []string{"account a has negative balance -1"}},
		{"missing", BankRead{At: now, Quiescent: true, Balances: map[string]int64{"a": 100, "b": 200}, Missing: []string{"c"}}, []string{"account c is missing"}},
		{"unexpected", BankRead{At: now, Quiescent: true, Balances: map[string]int64{"a": 100, "b": 100, "c": 100, "zz": 5}}, []string{"unexpected account zz"}},
		{"partial", BankRead{At: now, Balances: map[string]int64{"a": 100}}, []string{"covers 1 of 3"}},
		{"invariants ok", BankRead{At: now, Balances: map[string]int64{"a": 0, "b": 0, "c": 0}, Invariants: &InvariantsRead{OK: true, MintBalance: -300}}, nil},
		{"invariants broken", BankRead{At: now, Balances: map[string]int64{"a": 0, "b": 0, "c": 0}, Invariants: &InvariantsRead{OK: false, SumBalances: 7, MintBalance: -300}}, []string{"ok=false sum_balances=7"}},
		{"mint moved", BankRead{At: now, Balances: map[string]int64{"a": 0, "b": 0, "c": 0}, Invariants: &InvariantsRead{OK: true, MintBalance: -299}}, []string{"mint balance -299, expected -300"}},
	}
	for _, c := range cases {
		v := CheckBank(model, []BankRead{c.read})
		if len(v) != len(c.wants) {
			t.Errorf("%s: violations %q, want %d", c.name, v, len(c.wants))
			continue
		}
		for i, w := range c.wants {
			if !strings.Contains(v[i], w) {
				t.Errorf("%s: violation %q lacks %q", c.name, v[i], w)
			}
		}
	}
}

func TestReconcile(t *testing.T) {
	accts := []string{"a", "b"}
	init := map[string]int64{"a": 100, "b": 100}
	tr := []TransferRec{{ID: "t1", Debit: 0, Credit: 1, Amount: 30}}
	if v := Reconcile(init, tr, accts, map[string]int64{"a": 70, "b": 130}); len(v) != 0 {
		t.Fatalf("consistent ledger flagged: %v", v)
	}
	// The same transfer applied twice shows up as a mismatch on both sides.
	if v := Reconcile(init, tr, accts, map[string]int64{"a": 40, "b": 160}); len(v) != 2 {
		t.Fatalf("duplicate not detected: %v", v)
	}
}
