package daemon

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
)

// operations tracks long-running work. Operations live in memory: after a daemon restart a
// client sees 404 for an old id and re-reads the object it was changing (as with Incus).
type operations struct {
	mu  sync.Mutex
	ops map[string]*operation
}

type operation struct {
	mu     sync.Mutex
	op     api.Operation
	done   chan struct{}
	cancel context.CancelFunc
}

func newOperations() *operations { return &operations{ops: map[string]*operation{}} }

// progressFunc reports percent (0-100) and a short message.
type progressFunc func(pct int, msg string)

// start runs fn in the background as an operation.
func (d *Daemon) startOperation(desc, project string, resources map[string]string, fn func(ctx context.Context, progress progressFunc) error) api.Operation {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now().UTC()
	o := &operation{op: api.Operation{ID: newID(), Description: desc, Project: project, Status: api.OperationRunning, CreatedAt: now, UpdatedAt: now, Resources: resources}, done: make(chan struct{}), cancel: cancel}
	d.ops.mu.Lock()
	d.ops.ops[o.op.ID] = o
	d.ops.gc()
	d.ops.mu.Unlock()
	d.publishOp(o.snapshot())
	go func() {
		defer cancel()
		err := fn(ctx, func(pct int, msg string) {
			o.mu.Lock()
			if pct > o.op.Progress && pct <= 100 {
				o.op.Progress = pct
			}
			o.op.Message, o.op.UpdatedAt = msg, time.Now().UTC()
			o.mu.Unlock()
			d.publishOp(o.snapshot())
		})
		o.mu.Lock()
		o.op.UpdatedAt = time.Now().UTC()
		switch {
		case err == nil:
			o.op.Status, o.op.Progress = api.OperationSuccess, 100
		case ctx.Err() != nil:
			o.op.Status, o.op.Error = api.OperationCancelled, err.Error()
		default:
			o.op.Status, o.op.Error = api.OperationFailure, err.Error()
		}
		o.mu.Unlock()
		close(o.done)
		d.publishOp(o.snapshot())
	}()
	return o.snapshot()
}

func (d *Daemon) publishOp(op api.Operation) {
	d.events.publish(api.Event{Type: "operation", Action: "operation-" + op.Status, Source: "/1.0/operations/" + op.ID, Project: op.Project, Time: time.Now().UTC(),
		Metadata: map[string]string{"progress": strconv.Itoa(op.Progress), "message": op.Message}})
}

func (o *operation) snapshot() api.Operation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.op
}

// gc forgets finished operations beyond the newest 1000. Caller holds mu.
func (ops *operations) gc() {
	if len(ops.ops) <= 1000 {
		return
	}
	var finished []*operation
	for _, o := range ops.ops {
		select {
		case <-o.done:
			finished = append(finished, o)
		default:
		}
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].op.UpdatedAt.Before(finished[j].op.UpdatedAt) })
	for i := 0; i < len(finished) && len(ops.ops) > 1000; i++ {
		delete(ops.ops, finished[i].op.ID)
	}
}

func (ops *operations) cancelAll() {
	ops.mu.Lock()
	defer ops.mu.Unlock()
	for _, o := range ops.ops {
		o.cancel()
	}
}

func (ops *operations) get(id string) (*operation, bool) {
	ops.mu.Lock()
	defer ops.mu.Unlock()
	o, ok := ops.ops[id]
	return o, ok
}

func (d *Daemon) handleOperationList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	d.ops.mu.Lock()
	out := []api.Operation{}
	for _, o := range d.ops.ops {
		op := o.snapshot()
		if op.Project == "" && auth.Allowed(rc.grants, auth.PermGlobalRead, "") || op.Project != "" && auth.VisibleProject(rc.grants, op.Project) {
			out = append(out, op)
		}
	}
	d.ops.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) visibleOp(rc *Request, id string) (*operation, error) {
	o, ok := d.ops.get(id)
	if ok {
		op := o.snapshot()
		if op.Project == "" && auth.Allowed(rc.grants, auth.PermGlobalRead, "") || op.Project != "" && auth.VisibleProject(rc.grants, op.Project) {
			return o, nil
		}
	}
	return nil, notFound("operation %s not found (finished operations are forgotten after a daemon restart)", id)
}

// handleOperationGet returns an operation; with ?wait=N it blocks up to N seconds (or
// until the operation finishes).
func (d *Daemon) handleOperationGet(w http.ResponseWriter, r *http.Request, rc *Request) error {
	o, err := d.visibleOp(rc, r.PathValue("id"))
	if err != nil {
		return err
	}
	if s := r.URL.Query().Get("wait"); s != "" {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil || secs < 0 || secs > 3600 {
			return badRequest("wait=%q: give seconds between 0 and 3600", s)
		}
		select {
		case <-o.done:
		case <-time.After(time.Duration(secs * float64(time.Second))):
		case <-r.Context().Done():
		}
	}
	return writeJSON(w, http.StatusOK, o.snapshot())
}

func (d *Daemon) handleOperationCancel(w http.ResponseWriter, r *http.Request, rc *Request) error {
	o, err := d.visibleOp(rc, r.PathValue("id"))
	if err != nil {
		return err
	}
	op := o.snapshot()
	if op.Project != "" && !auth.Allowed(rc.grants, auth.PermProjectWrite, op.Project) || op.Project == "" && !auth.Allowed(rc.grants, auth.PermAdmin, "") {
		return forbidden("%s may not cancel operation %s", rc.identity, op.ID)
	}
	select {
	case <-o.done:
		return conflict("operation %s already finished (%s)", op.ID, op.Status)
	default:
	}
	o.cancel()
	<-o.done
	return writeJSON(w, http.StatusOK, o.snapshot())
}
