package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/finvirt/finvirt/workloads/remit/engine"
)

func (s *Server) invariants(w http.ResponseWriter, r *http.Request) {
	req := &engine.Request{Op: engine.OpInvariants}
	if !s.do(w, req) {
		return
	}
	b := getBuf()
	*b = append(*b, `{"ok":`...)
	*b = strconv.AppendBool(*b, req.InvOK)
	*b = append(*b, `,"currencies":{`...)
	for i, c := range req.Currencies {
		t := req.Inv[c]
		if i > 0 {
			*b = append(*b, ',')
		}
		*b = appendJSONString(*b, c)
		*b = fmt.Appendf(*b, `:{"accounts":%d,"sum_balances":%s,"total_debits_posted":%s,"total_credits_posted":%s,"total_debits_pending":%s,"total_credits_pending":%s}`,
			t.Accounts, t.SumBalances, t.TotalDebitsPosted, t.TotalCreditsPosted, t.TotalDebitsPending, t.TotalCreditsPending)
	}
	*b = append(*b, '}', '}', '\n')
	status := http.StatusOK
	if !req.InvOK {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, *b)
	putBuf(b)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.eng.Err(); err != nil {
		http.Error(w, "journal failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok"))
}

// metrics writes Prometheus text format by hand: a handful of counters does
// not justify a registry, and this keeps the binary small.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	st := s.eng.Stats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b := getBuf()
	for _, m := range []struct {
		name, help, typ string
		v               int64
	}{
		{"remit_batches_total", "State-machine batches processed.", "counter", st.Batches.Load()},
		{"remit_events_total", "Events (accounts, transfers, post/void, reads) processed.", "counter", st.Events.Load()},
		{"remit_transfers_created_total", "Transfers created.", "counter", st.TransfersCreated.Load()},
		{"remit_transfers_rejected_total", "Transfer events rejected.", "counter", st.Rejected.Load()},
		{"remit_pending_expired_total", "Pending transfers expired by timeout.", "counter", st.ExpiredPending.Load()},
		{"remit_journal_records_total", "Journal records appended.", "counter", st.Records.Load()},
		{"remit_journal_bytes_total", "Journal bytes appended.", "counter", st.JournalBytes.Load()},
		{"remit_fsyncs_total", "Journal fsyncs (group commits).", "counter", st.Fsyncs.Load()},
		{"remit_snapshots_total", "Snapshots written.", "counter", st.Snapshots.Load()},
		{"remit_snapshot_errors_total", "Snapshots that failed to write.", "counter", st.SnapshotErrors.Load()},
		{"remit_queue_length", "Requests waiting for the state machine.", "gauge", int64(s.eng.QueueLen())},
	} {
		*b = fmt.Appendf(*b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
	*b = appendHist(*b, "remit_fsync_seconds", "Journal fsync latency.", &st.FsyncLatency)
	*b = appendHist(*b, "remit_batch_commit_seconds", "From the state machine taking a batch to all its requests being answered.", &st.CommitLatency)
	w.Write(*b)
	putBuf(b)
}

func appendHist(b []byte, name, help string, h *engine.Hist) []byte {
	counts, sum := h.Counts()
	b = fmt.Appendf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum int64
	for i, c := range counts {
		cum += c
		le := "+Inf"
		if i < len(engine.HistBounds) {
			le = strconv.FormatFloat(engine.HistBounds[i], 'g', -1, 64)
		}
		b = fmt.Appendf(b, "%s_bucket{le=%q} %d\n", name, le, cum)
	}
	return fmt.Appendf(b, "%s_sum %g\n%s_count %d\n", name, sum, name, cum)
}
