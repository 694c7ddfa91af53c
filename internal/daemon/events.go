package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
)

// eventBus fans lifecycle and operation events out to /1.0/events subscribers. Slow
// subscribers lose events rather than slowing the daemon (they see a gap in "seq").
type eventBus struct {
	mu     sync.Mutex
	subs   map[chan api.Event]struct{}
	closed bool
}

func newEventBus() *eventBus { return &eventBus{subs: map[chan api.Event]struct{}{}} }

func (b *eventBus) publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (b *eventBus) subscribe() (chan api.Event, func()) {
	ch := make(chan api.Event, 256)
	b.mu.Lock()
	if b.closed {
		close(ch)
	} else {
		b.subs[ch] = struct{}{}
	}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
		b.mu.Unlock()
	}
}

func (b *eventBus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		close(ch)
		delete(b.subs, ch)
	}
}

// lifecycle publishes a change made by a request.
func (d *Daemon) lifecycle(rc *Request, action, project, source string) {
	md := map[string]string{"request_id": rc.id}
	if rc.approvedBy != "" {
		md["approved_by"] = rc.approvedBy
	}
	d.events.publish(api.Event{Type: "lifecycle", Action: action, Source: source, Project: project, Identity: rc.identity, Time: time.Now().UTC(), Metadata: md})
}

// handleEvents streams events as server-sent events, filtered to what the caller may see.
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request, rc *Request) error {
	fl, ok := w.(http.Flusher)
	if !ok {
		return errorf(http.StatusInternalServerError, "streaming unsupported")
	}
	typ := r.URL.Query().Get("type")
	ch, cancel := d.events.subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": finvirt event stream\n\n")
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-tick.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case ev, ok := <-ch:
			if !ok {
				return nil
			}
			if typ != "" && ev.Type != typ {
				continue
			}
			if ev.Project != "" && !auth.VisibleProject(rc.grants, ev.Project) {
				continue
			}
			if ev.Project == "" && !auth.Allowed(rc.grants, auth.PermGlobalRead, "") {
				continue
			}
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, b)
			fl.Flush()
		}
	}
}
