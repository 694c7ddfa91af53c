package engine

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/journal"
	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// Options configure an Engine.
type Options struct {
	Dir           string
	MaxBatch      int           // events per batch (default 8190, TigerBeetle's batch size)
	NoSync        bool          // skip fsync: benchmarks only, never production
	SnapshotBytes int64         // take a snapshot once the current segment exceeds this (default 64 MiB)
	QueueSize     int           // request queue capacity (default 4096)
	Tick          time.Duration // how often pending-transfer timeouts are swept when idle (default 100ms)
	Now           func() int64  // clock in ns (default time.Now)
}

// Engine is the running ledger service.
type Engine struct {
	opts  Options
	st    *ledger.State
	q     chan *Request
	wq    chan *job
	free  chan *job
	stop  chan struct{}
	done  chan struct{}
	mu    sync.RWMutex // guards closed against concurrent Do
	close bool
	log   *journal.Log
	rec   journal.Recovery

	failed   atomic.Pointer[error]
	snapping atomic.Bool
	segSize  atomic.Int64 // current segment size, written by the writer
	snapWG   sync.WaitGroup
	lastTS   int64
	stats    Stats
}

// Stats are cumulative counters for /metrics.
type Stats struct {
	Batches, Events, Records, Fsyncs, FsyncNanos, JournalBytes            atomic.Int64
	TransfersCreated, Rejected, Snapshots, SnapshotErrors, ExpiredPending atomic.Int64
	// FsyncLatency is per journal fsync; CommitLatency is from the state
	// machine taking a batch to every request of it being answered.
	FsyncLatency, CommitLatency Hist
}

type job struct {
	buf     []byte
	reqs    []*Request
	rotated chan struct{} // non-nil: rotate the segment after this job
	start   time.Time     // when the state machine took the batch
}

// Open recovers the data directory (snapshot + journal replay) and starts the engine.
func Open(opts Options) (*Engine, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 8190
	}
	if opts.SnapshotBytes <= 0 {
		opts.SnapshotBytes = 64 << 20
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = func() int64 { return time.Now().UnixNano() }
	}
	st, log, rec, err := Recover(opts.Dir, opts.NoSync)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, st: st, log: log, rec: rec,
		q: make(chan *Request, opts.QueueSize), wq: make(chan *job, 4), free: make(chan *job, 4),
		stop: make(chan struct{}), done: make(chan struct{}), lastTS: st.LastTimestamp()}
	e.segSize.Store(log.Size())
	for i := 0; i < cap(e.free); i++ {
		e.free <- &job{}
	}
	go e.writer()
	go e.loop()
	return e, nil
}

// Recover rebuilds the ledger from dir without starting anything; the
// returned Log is positioned for appending.
func Recover(dir string, noSync bool) (*ledger.State, *journal.Log, journal.Recovery, error) {
	st := ledger.New()
	var codes []ledger.Code
	log, rec, err := journal.Open(dir, noSync, journal.Handlers{
		Snapshot: func(p []byte) error {
			s, err := ledger.LoadSnapshot(p)
			if err == nil {
				st = s
			}
			return err
		},
		Record: func(seg uint64, off int64, p []byte) error {
			return replayRecord(st, p, &codes, func(reason string) error {
				return fmt.Errorf("journal %s offset %d: %s", journal.SegmentName(seg), off, reason)
			})
		},
	})
	if err != nil {
		return nil, nil, rec, err
	}
	return st, log, rec, nil
}

// replayRecord applies one journal record; every entry must apply exactly as
// it did the first time, otherwise the journal does not match this state.
func replayRecord(st *ledger.State, p []byte, codes *[]ledger.Code, fail func(string) error) error {
	seq, n := uvarint(p)
	if n <= 0 {
		return fail("missing batch sequence number")
	}
	if seq != st.NextBatch {
		return fail(fmt.Sprintf("batch sequence %d, expected %d (a record is missing or duplicated)", seq, st.NextBatch))
	}
	i := 0
	err := ledger.DecodeEntries(p[n:], func(en *ledger.Entry) error {
		i++
		if cap(*codes) < en.Events() {
			*codes = make([]ledger.Code, en.Events())
		}
		c := (*codes)[:en.Events()]
		if !st.Apply(en, c) {
			return fail(fmt.Sprintf("entry %d (kind %d) no longer applies: %v", i, en.Kind, c))
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.NextBatch++
	return nil
}

// Recovery describes what Open replayed.
func (e *Engine) Recovery() journal.Recovery { return e.rec }

// Stats exposes counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// QueueLen is the number of queued requests.
func (e *Engine) QueueLen() int { return len(e.q) }

// Err is the fatal journal error, if any (the engine then refuses all work).
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Do queues r and waits until its batch is durable. A non-nil error means the
// request's outcome is unknown to the caller (shutdown or a journal failure).
func (e *Engine) Do(r *Request) error {
	if r.done == nil {
		r.done = make(chan struct{}, 1)
	}
	e.mu.RLock()
	if e.close {
		e.mu.RUnlock()
		return ErrClosed
	}
	e.q <- r
	e.mu.RUnlock()
	<-r.done
	return r.err
}

// Close stops accepting requests, drains the queue, makes everything durable and closes the journal.
func (e *Engine) Close() error {
	e.mu.Lock()
	already := e.close
	e.close = true
	e.mu.Unlock()
	if !already {
		close(e.stop)
	}
	<-e.done
	e.snapWG.Wait()
	return e.Err()
}

func (e *Engine) nextTS(n int) int64 {
	t := e.opts.Now()
	if t <= e.lastTS {
		t = e.lastTS + 1
	}
	e.lastTS = t + int64(n) - 1
	return t
}

func (e *Engine) fail(err error) {
	e.failed.CompareAndSwap(nil, &err)
}
