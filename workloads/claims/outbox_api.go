package claims

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OutboxView is one pending payout as shown by GET /v1/outbox, with the
// dispatcher's retry state so an operator can see why a payout is stuck
// (e.g. the payer account is underfunded) and fix it.
type OutboxView struct {
	OutboxEntry
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

func (s *Service) hOutbox(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeErr(w, badRequest("invalid_limit", "limit %q must be an integer 1-1000", v))
			return
		}
		limit = n
	}
	out := []OutboxView{}
	err := s.store.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bOutbox).Cursor()
		for k, v := cur.First(); k != nil && len(out) < limit; k, v = cur.Next() {
			var e OutboxView
			if err := json.Unmarshal(v, &e.OutboxEntry); err != nil {
				return err
			}
			if s.inspect != nil {
				if st, ok := s.inspect(e.Seq); ok {
					e.Attempts, e.LastError, e.NextAttempt = st.attempts, st.lastErr, st.next
				}
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		internalErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]any{"pending": out})
}
