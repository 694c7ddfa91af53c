package claims

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Get returns a claim or nil.
func (s *Service) Get(id string) (*Claim, error) {
	var c *Claim
	err := s.store.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bClaims).Get([]byte(id))
		if v == nil {
			return nil
		}
		c = new(Claim)
		return json.Unmarshal(v, c)
	})
	return c, err
}

// List returns up to limit claims in state st (all states when st is "")
// with id > after, in id order, and the id to pass as after for the next
// page ("" when done).
func (s *Service) List(st State, after string, limit int) ([]*Claim, string, error) {
	var out []*Claim
	next := ""
	err := s.store.db.View(func(tx *bolt.Tx) error {
		claims := tx.Bucket(bClaims)
		if st == "" {
			cur := claims.Cursor()
			k, v := cur.Seek([]byte(after))
			for ; k != nil; k, v = cur.Next() {
				if string(k) == after {
					continue
				}
				if len(out) == limit {
					next = out[len(out)-1].ID
					return nil
				}
				c := new(Claim)
				if err := json.Unmarshal(v, c); err != nil {
					return fmt.Errorf("decode stored claim %q: %w", k, err)
				}
				out = append(out, c)
			}
			return nil
		}
		prefix := []byte(string(st) + "/")
		cur := tx.Bucket(bIdx).Cursor()
		k, _ := cur.Seek(append(append([]byte{}, prefix...), after...))
		for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
			id := string(k[len(prefix):])
			if id == after {
				continue
			}
			if len(out) == limit {
				next = out[len(out)-1].ID
				return nil
			}
			c := new(Claim)
			if err := json.Unmarshal(claims.Get([]byte(id)), c); err != nil {
				return fmt.Errorf("decode stored claim %q: %w", id, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, next, err
}

// Stats is GET /v1/stats.
type Stats struct {
	ByState       map[State]int64 `json:"claims_by_state"`
	Total         int64           `json:"total"`
	OutboxPending int64           `json:"outbox_pending"`
	PayoutsAcked  int64           `json:"payouts_acked"`
	PayoutErrors  int64           `json:"payout_errors"`
	AutoApproved  int64           `json:"auto_approved"`
	Config        Config          `json:"config"`
}

// Stats reads the transactional counters.
func (s *Service) Stats() (Stats, error) {
	st := Stats{ByState: map[State]int64{}, Config: s.cfg}
	err := s.store.db.View(func(tx *bolt.Tx) error {
		ctr := tx.Bucket(bCounters)
		for _, state := range AllStates {
			n := readCounter(ctr, []byte(state))
			st.ByState[state] = n
			st.Total += n
		}
		st.OutboxPending = int64(tx.Bucket(bOutbox).Stats().KeyN)
		return nil
	})
	st.PayoutsAcked = s.m.payoutsAcked.Load()
	st.PayoutErrors = s.m.payoutErrors.Load()
	st.AutoApproved = s.m.autoApproved.Load()
	return st, err
}

// reached reports whether a claim in state have satisfies a wait for want.
// Waiting for paid is also satisfied by closed (paid then closed).
func reached(have, want State) bool {
	return have == want || (want == StatePaid && have == StateClosed)
}

// claimBrief is the part of a claim a waiter needs; decoding only it skips
// allocating the history on every wake-up.
type claimBrief struct {
	ID             string `json:"id"`
	State          State  `json:"state"`
	ApprovedAmount int64  `json:"approved_amount"`
	Payouts        []struct {
		TransferID string `json:"transfer_id"`
	} `json:"payouts"`
}

// Wait blocks until every claim in ids reached state want, or ctx ends. It
// returns the claims (nil for unknown ids; with full=false only id, state,
// approved amount and payout transfer ids are filled) and the ids still
// not there.
func (s *Service) Wait(ctx context.Context, ids []string, want State, full bool) ([]*Claim, []string, error) {
	ch := make(chan struct{}, 1)
	pending := append([]string(nil), ids...)
	s.waiters.add(pending, ch)
	defer s.waiters.remove(ids, ch)
	known := make(map[string]bool, len(ids))
	for {
		var still []string
		// The state index answers "is it there yet?" without decoding
		// the claim; claims are decoded once, at the end.
		err := s.store.db.View(func(tx *bolt.Tx) error {
			b, idx := tx.Bucket(bClaims), tx.Bucket(bIdx)
			for _, id := range pending {
				if !known[id] {
					if b.Get([]byte(id)) == nil {
						continue // unknown: nothing to wait for
					}
					known[id] = true
				}
				if idx.Get(idxKey(want, id)) != nil || (want == StatePaid && idx.Get(idxKey(StateClosed, id)) != nil) {
					continue
				}
				still = append(still, id)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		pending = still
		if len(pending) == 0 {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			goto done
		}
	}
done:
	out := make([]*Claim, len(ids))
	err := s.store.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bClaims)
		for i, id := range ids {
			v := b.Get([]byte(id))
			if v == nil {
				continue
			}
			if full {
				c := new(Claim)
				if err := json.Unmarshal(v, c); err != nil {
					return err
				}
				out[i] = c
				continue
			}
			var br claimBrief
			if err := json.Unmarshal(v, &br); err != nil {
				return err
			}
			c := &Claim{ID: br.ID, State: br.State, ApprovedAmount: br.ApprovedAmount}
			for _, p := range br.Payouts {
				c.Payouts = append(c.Payouts, Payout{TransferID: p.TransferID})
			}
			out[i] = c
		}
		return nil
	})
	return out, pending, err
}

// waiters maps claim ids to channels nudged after a commit touching them.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

func newWaiters() *waiters { return &waiters{m: map[string][]chan struct{}{}} }

func (w *waiters) add(ids []string, ch chan struct{}) {
	w.mu.Lock()
	for _, id := range ids {
		w.m[id] = append(w.m[id], ch)
	}
	w.mu.Unlock()
}

func (w *waiters) remove(ids []string, ch chan struct{}) {
	w.mu.Lock()
	for _, id := range ids {
		l := w.m[id]
		for i, c := range l {
			if c == ch {
				l = append(l[:i], l[i+1:]...)
				break
			}
		}
		if len(l) == 0 {
			delete(w.m, id)
		} else {
			w.m[id] = l
		}
	}
	w.mu.Unlock()
}

func (w *waiters) notify(id string) {
	w.mu.Lock()
	for _, ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
}

// waitTimeout clamps a client-supplied wait timeout.
func waitTimeout(ms int) time.Duration {
	if ms <= 0 {
		return 10 * time.Second
	}
	if ms > 60000 {
		ms = 60000
	}
	return time.Duration(ms) * time.Millisecond
}
