package loadgen

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Op performs one request. It returns "" on success or an error kind (a
// short machine string such as "http_500", "exceeds_credits", "transport")
// counted in the report. It must honour ctx.
type Op func(ctx context.Context, worker int) (errKind string)

// Config selects the run mode: Rate > 0 is open loop, otherwise
// Concurrency workers run closed loop.
type Config struct {
	Rate        float64       // open loop: intended requests per second
	Concurrency int           // closed loop: workers issuing back to back
	Duration    time.Duration // how long to issue requests
	MaxWorkers  int           // open loop: cap on concurrent in-flight requests (default 4096)
	// LateAfter: an open-loop request that starts later than this after
	// its intended time is counted as not sent on time (default 1ms).
	LateAfter time.Duration
	// Drain bounds the wait for in-flight requests after Duration.
	Drain time.Duration
}

// Result is a finished run (see Report for the JSON form).
type Result struct {
	Mode     string // "open" | "closed"
	Rate     float64
	Workers  int
	Elapsed  time.Duration
	Requests uint64
	OK       uint64
	Errors   map[string]uint64
	Late     uint64        // open loop: started after intended+LateAfter
	MaxLag   time.Duration // open loop: worst send lag behind schedule
	Latency  *Histogram    // open: from intended send time; closed: from start
	Service  *Histogram    // from actual send to completion
	Unsent   uint64        // scheduled but never started (drain timeout)
}

// Throughput is completed requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

type workerStats struct {
	lat, svc *Histogram
	ok, late uint64
	maxLag   time.Duration
	errs     map[string]uint64
}

func newWorkerStats() *workerStats {
	return &workerStats{lat: NewHistogram(), svc: NewHistogram(), errs: map[string]uint64{}}
}

func (w *workerStats) record(kind string, intended, start, end time.Time) {
	w.lat.RecordDuration(end.Sub(intended))
	w.svc.RecordDuration(end.Sub(start))
	if kind == "" {
		w.ok++
	} else {
		w.errs[kind]++
	}
}

// Run executes op according to cfg and aggregates per-worker statistics.
func Run(ctx context.Context, cfg Config, op Op) (*Result, error) {
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("duration %v must be > 0", cfg.Duration)
	}
	if cfg.Rate > 0 {
		return runOpen(ctx, cfg, op)
	}
	if cfg.Concurrency <= 0 {
		return nil, fmt.Errorf("set a rate (open loop) or a concurrency >= 1 (closed loop)")
	}
	return runClosed(ctx, cfg, op)
}

func aggregate(res *Result, stats []*workerStats) {
	res.Latency, res.Service, res.Errors = NewHistogram(), NewHistogram(), map[string]uint64{}
	for _, w := range stats {
		res.Latency.Merge(w.lat)
		res.Service.Merge(w.svc)
		res.OK += w.ok
		res.Late += w.late
		res.MaxLag = max(res.MaxLag, w.maxLag)
		for k, v := range w.errs {
			res.Errors[k] += v
		}
	}
	res.Requests = res.Latency.Count()
}

func runClosed(ctx context.Context, cfg Config, op Op) (*Result, error) {
	stats := make([]*workerStats, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	for i := range stats {
		stats[i] = newWorkerStats()
		wg.Add(1)
		go func(i int, ws *workerStats) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				kind := op(ctx, i)
				ws.record(kind, t0, t0, time.Now())
			}
		}(i, stats[i])
	}
	wg.Wait()
	res := &Result{Mode: "closed", Workers: cfg.Concurrency, Elapsed: time.Since(start)}
	aggregate(res, stats)
	return res, nil
}

// runOpen schedules request i at start + i/rate regardless of how long
// earlier requests take. A request is handed to an idle worker; when none
// is idle a new worker is started (up to MaxWorkers). If the scheduler
// itself falls behind, the request still carries its intended time, so the
// delay shows up in the latency instead of being silently omitted.
func runOpen(ctx context.Context, cfg Config, op Op) (*Result, error) {
	maxW := cfg.MaxWorkers
	if maxW <= 0 {
		maxW = 4096
	}
	late := cfg.LateAfter
	if late <= 0 {
		late = time.Millisecond
	}
	drain := cfg.Drain
	if drain <= 0 {
		drain = 30 * time.Second
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	if interval <= 0 {
		return nil, fmt.Errorf("rate %v is too high to schedule (max 1e9/s)", cfg.Rate)
	}
	// Unbuffered: a send succeeds at once only if a worker is waiting, which
	// is exactly the "is a worker idle?" test that decides to grow the pool.
	jobs := make(chan time.Time)
	var (
		mu      sync.Mutex
		stats   []*workerStats
		wg      sync.WaitGroup
		nWork   int
		unsent  atomic.Uint64
		opCtx   context.Context
		stopOps context.CancelFunc
	)
	opCtx, stopOps = context.WithCancel(ctx)
	defer stopOps()
	spawn := func() {
		ws := newWorkerStats()
		mu.Lock()
		stats = append(stats, ws)
		id := nWork
		nWork++
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for intended := range jobs {
				if opCtx.Err() != nil {
					unsent.Add(1)
					continue
				}
				t0 := time.Now()
				if lag := t0.Sub(intended); lag > late {
					ws.late++
					ws.maxLag = max(ws.maxLag, lag)
				}
				kind := op(opCtx, id)
				ws.record(kind, intended, t0, time.Now())
			}
		}()
	}
	for i := 0; i < min(maxW, 8); i++ {
		spawn()
	}
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := int64(0); ; i++ {
		// Computed from i (not accumulated), so rounding never drifts.
		intended := start.Add(time.Duration(float64(i) * 1e9 / cfg.Rate))
		if intended.Sub(start) >= cfg.Duration || ctx.Err() != nil {
			break
		}
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		select {
		case jobs <- intended:
		default:
			if nWork < maxW {
				spawn()
			}
			jobs <- intended // blocks only when MaxWorkers are all busy
		}
	}
	close(jobs)
	sent := time.Since(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		stopOps()
		<-done
	}
	res := &Result{Mode: "open", Rate: cfg.Rate, Workers: nWork, Elapsed: max(sent, time.Since(start)), Unsent: unsent.Load()}
	aggregate(res, stats)
	return res, nil
}

// ErrorKinds returns error kinds sorted by count, descending.
func (r *Result) ErrorKinds() []string {
	var ks []string
	for k := range r.Errors {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if r.Errors[ks[i]] != r.Errors[ks[j]] {
			return r.Errors[ks[i]] > r.Errors[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}
