package claims

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
)

// metrics are process-lifetime counters exposed on /metrics (Prometheus
// text format, written by hand to keep the appliance binary small).
type metrics struct {
	outboxQueued  atomic.Int64
	payoutsAcked  atomic.Int64
	payoutErrors  atomic.Int64
	payoutBatches atomic.Int64
	autoApproved  atomic.Int64
	requests      atomic.Int64

	mu      sync.Mutex
	rejects map[string]int64
}

func newMetrics() *metrics { return &metrics{rejects: map[string]int64{}} }

func (m *metrics) reject(code string) {
	m.mu.Lock()
	m.rejects[code]++
	m.mu.Unlock()
}

// write renders the metrics plus per-state gauges from the store.
func (m *metrics) write(w io.Writer, st Stats) {
	fmt.Fprintf(w, "# TYPE claims_state gauge\n")
	for _, s := range AllStates {
		fmt.Fprintf(w, "claims_state{state=%q} %d\n", s, st.ByState[s])
	}
	fmt.Fprintf(w, "# TYPE claims_outbox_pending gauge\nclaims_outbox_pending %d\n", st.OutboxPending)
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"claims_outbox_queued_total", m.outboxQueued.Load()},
		{"claims_payouts_acked_total", m.payoutsAcked.Load()},
		{"claims_payout_errors_total", m.payoutErrors.Load()},
		{"claims_payout_batches_total", m.payoutBatches.Load()},
		{"claims_auto_approved_total", m.autoApproved.Load()},
		{"claims_http_requests_total", m.requests.Load()},
	} {
		fmt.Fprintf(w, "# TYPE %s counter\n%s %d\n", c.name, c.name, c.v)
	}
	m.mu.Lock()
	codes := make([]string, 0, len(m.rejects))
	for c := range m.rejects {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	fmt.Fprintf(w, "# TYPE claims_rejections_total counter\n")
	for _, c := range codes {
		fmt.Fprintf(w, "claims_rejections_total{code=%q} %d\n", c, m.rejects[c])
	}
	m.mu.Unlock()
}
