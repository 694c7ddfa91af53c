package engine

import (
	"encoding/binary"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/journal"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

func uvarint(b []byte) (uint64, int) { return binary.Uvarint(b) }

// loop is the state-machine goroutine: the only code that touches e.st.
func (e *Engine) loop() {
	defer close(e.wq)
	tick := time.NewTicker(e.opts.Tick)
	defer tick.Stop()
	var (
		entry   ledger.Entry
		expired []string
		batch   []*Request
		stopped bool
	)
	for {
		batch = batch[:0]
		if !stopped {
			select {
			case r := <-e.q:
				batch = append(batch, r)
			case <-tick.C:
			case <-e.stop:
				stopped = true
			}
		}
		n := 0
		if len(batch) > 0 {
			n = batch[0].events()
		}
	fill:
		for n < e.opts.MaxBatch {
			select {
			case r := <-e.q:
				batch = append(batch, r)
				n += r.events()
			default:
				break fill
			}
		}
		if stopped && len(batch) == 0 {
			return // queue drained; closing wq lets the writer sync and finish
		}
		if len(batch) == 0 && !e.st.HasDue(e.opts.Now()) {
			continue
		}
		j := <-e.free
		j.start = time.Now()
		j.buf = j.buf[:0]
		j.reqs = append(j.reqs[:0], batch...)
		var start int
		j.buf, start = journal.BeginRecord(j.buf)
		j.buf = binary.AppendUvarint(j.buf, e.st.NextBatch)
		hdrLen := len(j.buf)

		// Expire pending transfers first so a post racing its own timeout sees a decided state.
		expired = e.st.DueExpiries(e.opts.Now(), expired[:0])
		for _, id := range expired {
			entry = ledger.Entry{Kind: ledger.EntryExpire, TS: e.nextTS(1), ID: id}
			var c [1]ledger.Code
			if e.st.Apply(&entry, c[:]) {
				j.buf = ledger.AppendEntry(j.buf, &entry)
				e.stats.ExpiredPending.Add(1)
			}
		}
		failed := e.Err()
		for _, r := range batch {
			if failed != nil {
				r.err = failed
				continue
			}
			j.buf = e.process(r, &entry, j.buf)
		}
		if len(j.buf) == hdrLen {
			j.buf = j.buf[:start] // nothing changed: no record, but still answer after earlier records are durable
		} else {
			journal.FinishRecord(j.buf, start)
			e.st.NextBatch++
		}
		e.stats.Batches.Add(1)
		e.stats.Events.Add(int64(n))
		if !e.snapping.Load() && e.segSize.Load()+int64(len(j.buf)) > e.opts.SnapshotBytes && e.Err() == nil {
			j.rotated = make(chan struct{})
			rotated := j.rotated
			e.wq <- j
			<-rotated
			e.startSnapshot()
			continue
		}
		e.wq <- j
	}
}

// process applies one request, appending journal entries for what changed.
func (e *Engine) process(r *Request, en *ledger.Entry, buf []byte) []byte {
	st := e.st
	switch r.Op {
	case OpCreateAccounts:
		codes := r.codes(len(r.Accounts))
		for i := range r.Accounts {
			*en = ledger.Entry{Kind: ledger.EntryAccount, TS: e.nextTS(1), Account: r.Accounts[i]}
			if st.Apply(en, codes[i:i+1]) {
				buf = ledger.AppendEntry(buf, en)
			}
		}
	case OpCreateTransfers:
		codes := r.codes(len(r.Transfers))
		if r.Key != "" && len(r.Transfers) == 1 && e.replayKey(r) {
			return buf
		}
		if r.Linked {
			*en = ledger.Entry{Kind: ledger.EntryTransfers, TS: e.nextTS(len(r.Transfers)), Transfers: r.Transfers}
			if st.Apply(en, codes) {
				buf = ledger.AppendEntry(buf, en)
			}
		} else {
			for i := range r.Transfers {
				*en = ledger.Entry{Kind: ledger.EntryTransfers, TS: e.nextTS(1), Transfers: r.Transfers[i : i+1], Key: r.Key, FP: r.FP}
				if st.Apply(en, codes[i:i+1]) {
					buf = ledger.AppendEntry(buf, en)
				}
			}
		}
		ok := 0
		for _, c := range codes {
			if c == ledger.OK {
				ok++
			} else if !c.Success() {
				e.stats.Rejected.Add(1)
			}
		}
		e.stats.TransfersCreated.Add(int64(ok))
		if len(r.Transfers) == 1 {
			r.Transfer, r.Found = st.Transfer(r.Transfers[0].ID)
		}
	case OpPost, OpVoid:
		codes := r.codes(1)
		if r.Key != "" && e.replayKey(r) {
			return buf
		}
		kind := ledger.EntryPost
		if r.Op == OpVoid {
			kind = ledger.EntryVoid
		}
		*en = ledger.Entry{Kind: kind, TS: e.nextTS(1), ID: r.ID, Key: r.Key, FP: r.FP}
		if st.Apply(en, codes) {
			buf = ledger.AppendEntry(buf, en)
		}
		r.Transfer, r.Found = st.Transfer(r.ID)
	case OpGetAccount:
		r.Account, r.Found = st.Account(r.ID)
	case OpGetTransfer:
		r.Transfer, r.Found = st.Transfer(r.ID)
	case OpInvariants:
		r.InvOK, r.Inv, r.Currencies = st.Invariants()
	case OpHash:
		r.Hash = st.Hash()
	}
	return buf
}

// replayKey answers from a remembered Idempotency-Key: the original result
// when the fingerprint matches, idempotency_key_mismatch when it does not.
func (e *Engine) replayKey(r *Request) bool {
	fp, code, t, ok := e.st.LookupKey(r.Key)
	if !ok {
		return false
	}
	if fp != r.FP {
		r.Codes[0] = ledger.IdempotencyKeyMismatch
		return true
	}
	r.Codes[0], r.Transfer, r.Found, r.Replayed = code, t, true, true
	return true
}

// writer appends records and fsyncs once per group of jobs, then answers.
func (e *Engine) writer() {
	defer close(e.done)
	var group []*job
	for j := range e.wq {
		group = append(group[:0], j)
	more:
		for j.rotated == nil {
			select {
			case j2, ok := <-e.wq:
				if !ok {
					break more
				}
				group = append(group, j2)
				j = j2
			default:
				break more
			}
		}
		var err error
		if perr := e.failed.Load(); perr != nil {
			err = *perr
		}
		dirty := false
		for _, g := range group {
			if len(g.buf) > 0 && err == nil {
				err = e.log.Write(g.buf)
				e.stats.Records.Add(1)
				e.stats.JournalBytes.Add(int64(len(g.buf)))
				dirty = true
			}
		}
		if dirty && err == nil {
			t := time.Now()
			err = e.log.Sync()
			e.stats.Fsyncs.Add(1)
			d := time.Since(t)
			e.stats.FsyncNanos.Add(int64(d))
			e.stats.FsyncLatency.Observe(d)
		}
		last := group[len(group)-1]
		if last.rotated != nil && err == nil {
			err = e.log.Rotate()
		}
		e.segSize.Store(e.log.Size())
		if err != nil {
			e.fail(err)
		}
		for _, g := range group {
			e.stats.CommitLatency.Observe(time.Since(g.start))
			for _, r := range g.reqs {
				if err != nil {
					r.err = err
				}
				r.done <- struct{}{}
			}
			clear(g.reqs)
			if g.rotated != nil {
				close(g.rotated)
				g.rotated = nil
			}
			e.free <- g
		}
	}
	if err := e.log.Close(); err != nil {
		e.fail(err)
	}
}

// startSnapshot encodes the state (which now equals exactly the closed
// segments) and writes it in the background; the state machine carries on.
func (e *Engine) startSnapshot() {
	payload := e.st.AppendSnapshot(nil)
	seq := e.log.Seq() // the new segment: the snapshot is the state before it
	e.snapping.Store(true)
	e.snapWG.Add(1)
	go func() {
		defer e.snapWG.Done()
		defer e.snapping.Store(false)
		// A failed snapshot is not fatal: the journal still holds everything
		// and the next rotation tries again.
		if err := journal.WriteSnapshot(e.opts.Dir, seq, payload, e.opts.NoSync); err != nil {
			e.stats.SnapshotErrors.Add(1)
			return
		}
		e.stats.Snapshots.Add(1)
	}()
}
