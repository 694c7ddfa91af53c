package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
)

// TestBankConcurrent is a Jepsen-"bank"-style check over real HTTP: random
// transfers between no-overdraft accounts from many clients, while readers
// repeatedly read the invariants and every balance. Every read must see
// balances summing to zero and no flagged account below zero.
func TestBankConcurrent(t *testing.T) {
	e := newEnv(t, Options{})
	const n = 8
	var accs []string
	for i := 0; i < n; i++ {
		accs = append(accs, fmt.Sprintf(`{"id":"b%d","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`, i))
	}
	e.mustStatus(e.call("POST", "/v1/accounts/batch", "", `{"accounts":[{"id":"mint","currency":"EUR"},`+strings.Join(accs, ",")+`]}`), 200)
	for i := 0; i < n; i++ {
		e.mustStatus(e.call("POST", "/v1/transfers", fmt.Sprintf("f%d", i), fmt.Sprintf(`{"id":"f%d","debit_account_id":"mint","credit_account_id":"b%d","amount":1000,"currency":"EUR"}`, i, i)), 201)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < 150; i++ {
				a, b := rng.Intn(n), rng.Intn(n-1)
				if b >= a {
					b++
				}
				r := e.call("POST", "/v1/transfers", fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf(`{"id":"w%d-%d","debit_account_id":"b%d","credit_account_id":"b%d","amount":%d,"currency":"EUR"}`, w, i, a, b, rng.Intn(400)+1))
				if r.status != 201 && r.code(t) != "exceeds_credits" {
					t.Errorf("transfer: %d %s", r.status, r.body)
					return
				}
			}
		}(w)
	}
	var readers sync.WaitGroup
	for rd := 0; rd < 2; rd++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				inv := e.call("GET", "/v1/invariants", "", "")
				if inv.status != 200 || !strings.Contains(string(inv.body), `"sum_balances":0`) {
					t.Errorf("invariants read: %d %s", inv.status, inv.body)
					return
				}
				// balances are read one by one (not a snapshot), so only the per-account bound holds here
				for i := 0; i < n; i++ {
					var a struct{ Balance int64 }
					json.Unmarshal(e.call("GET", fmt.Sprintf("/v1/accounts/b%d", i), "", "").body, &a)
					if a.Balance < 0 {
						t.Errorf("b%d went negative: %d", i, a.Balance)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	var total int64
	for i := 0; i < n; i++ {
		var a struct{ Balance int64 }
		json.Unmarshal(e.call("GET", fmt.Sprintf("/v1/accounts/b%d", i), "", "").body, &a)
		total += a.Balance
	}
	if total != n*1000 {
		t.Fatalf("customer balances sum to %d, the mint issued %d", total, n*1000)
	}
}
