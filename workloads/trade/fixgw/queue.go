package fixgw

import (
	"sync"

	"github.com/finvirt/finvirt/workloads/trade/engine"
)

// queue carries execution events from the engine (called under the engine
// lock, so in apply order) to one dispatcher goroutine, which waits until
// each command is durable in the journal and then sends the reports. It is
// unbounded so the engine never blocks on a slow FIX client.
type queue struct {
	g      *Gateway
	mu     sync.Mutex
	cond   *sync.Cond
	items  []batch
	closed bool
	done   chan struct{}
}

type batch struct {
	lsn uint64
	evs []engine.Event
}

func newQueue(g *Gateway) *queue {
	q := &queue{g: g, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(lsn uint64, evs []engine.Event) {
	cp := make([]engine.Event, len(evs))
	copy(cp, evs)
	q.mu.Lock()
	q.items = append(q.items, batch{lsn, cp})
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
	<-q.done
}

func (q *queue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		items := q.items
		q.items = nil
		q.mu.Unlock()
		for _, b := range items {
			// Never report an execution the journal could still lose.
			if err := q.g.e.WaitDurable(b.lsn); err != nil {
				continue
			}
			for i := range b.evs {
				ev := &b.evs[i]
				if id, ok := q.g.session(ev.Order.Origin); ok {
					q.g.stats.Reports.Add(1)
					q.g.send(executionReport(ev), id)
				}
			}
		}
	}
}
