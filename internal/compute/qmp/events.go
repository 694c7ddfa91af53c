package qmp

import (
	"context"
	"fmt"
	"sync"
)

// Subscription receives events in arrival order. Its queue is unbounded so a slow subscriber
// never stalls replies to commands (which share the socket with events).
type Subscription struct {
	c      *Client
	filter map[string]bool // nil = all events

	mu     sync.Mutex
	queue  []Event
	ended  bool
	wake   chan struct{}
	ch     chan Event
	closed chan struct{}
	once   sync.Once
}

// Subscribe delivers the named events (all events when names is empty) from now on. The
// channel from Events is closed when the subscription or the connection is closed.
func (c *Client) Subscribe(names ...string) *Subscription {
	s := &Subscription{c: c, wake: make(chan struct{}, 1), ch: make(chan Event), closed: make(chan struct{})}
	if len(names) > 0 {
		s.filter = map[string]bool{}
		for _, n := range names {
			s.filter[n] = true
		}
	}
	c.mu.Lock()
	dead := c.err != nil
	if !dead {
		c.subs[s] = struct{}{}
	}
	c.mu.Unlock()
	go s.pump()
	if dead {
		s.end()
	}
	return s
}

func (c *Client) dispatch(ev Event) {
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		if s.filter == nil || s.filter[ev.Name] {
			s.mu.Lock()
			s.queue = append(s.queue, ev)
			s.mu.Unlock()
			s.poke()
		}
	}
}

func (s *Subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end marks the subscription finished; queued events are still delivered.
func (s *Subscription) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.poke()
}

func (s *Subscription) pump() {
	defer close(s.ch)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			ended := s.ended
			s.mu.Unlock()
			if ended {
				return
			}
			select {
			case <-s.wake:
				continue
			case <-s.closed:
				return
			}
		}
		ev := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.ch <- ev:
		case <-s.closed:
			return
		}
	}
}

// Events is the delivery channel.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Close stops delivery and releases the subscription.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.c.mu.Lock()
		delete(s.c.subs, s)
		s.c.mu.Unlock()
		close(s.closed)
	})
}

// Wait returns the first event for which match returns true (match nil = any event).
func (s *Subscription) Wait(ctx context.Context, match func(Event) bool) (Event, error) {
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				if err := s.c.Err(); err != nil {
					return Event{}, err
				}
				return Event{}, fmt.Errorf("qmp: subscription closed")
			}
			if match == nil || match(ev) {
				return ev, nil
			}
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}
