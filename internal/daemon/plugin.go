package daemon

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/audit"
	"github.com/finvirt/finvirt/internal/store"
)

// This file is the surface subsystem packages (internal/daemon/<subsystem>) build on: they
// declare Routes with these helpers and get authentication, RBAC, four-eyes, audit,
// metrics and OpenAPI from the core.

// ProgressFunc reports an operation's percent (0-100) and a short message.
type ProgressFunc = progressFunc

// ID is the request id (also in the X-Request-Id response header and the audit record).
func (rq *Request) ID() string { return rq.id }

// Identity is the authenticated caller (or, for an approved request, its requester).
func (rq *Request) Identity() string { return rq.identity }

// Grants are the caller's roles.
func (rq *Request) Grants() []api.Grant { return rq.grants }

// Project is the project the route's permission was checked against.
func (rq *Request) Project() string { return rq.project }

// Body is the request body (already size-capped).
func (rq *Request) Body() []byte { return rq.body }

// ApprovedBy names the second identity when a four-eyes request is being carried out.
func (rq *Request) ApprovedBy() string { return rq.approvedBy }

// SetTarget names the audited object, e.g. "instance/bank/ledger-1".
func (rq *Request) SetTarget(t string) { rq.target = t }

// Config returns the daemon's configuration (defaults filled in).
func (d *Daemon) Config() Config { return d.cfg }

// Logger is the daemon's structured logger.
func (d *Daemon) Logger() *slog.Logger { return d.log }

// Commit applies fn and the request's audit record in one transaction.
func (d *Daemon) Commit(ctx context.Context, r *http.Request, rq *Request, status int, fn func(tx store.Tx) error) error {
	return d.commit(ctx, r, rq, status, fn)
}

// AdjustUsage changes a project's quota usage inside tx (see adjustUsage).
func AdjustUsage(tx store.Tx, project string, delta api.ProjectUsage) (api.Project, error) {
	return adjustUsage(tx, project, delta)
}

// GetProject reads a project (404 error when missing).
func (d *Daemon) GetProject(ctx context.Context, name string) (api.Project, error) {
	return d.getProject(ctx, name)
}

// Lifecycle publishes a lifecycle event for a change made by rq.
func (d *Daemon) Lifecycle(rq *Request, action, project, source string) {
	d.lifecycle(rq, action, project, source)
}

// Publish sends any event (e.g. an instance that crashed on its own) to subscribers.
func (d *Daemon) Publish(ev api.Event) { d.events.publish(ev) }

// StartOperation runs fn in the background as an API operation with progress.
func (d *Daemon) StartOperation(desc, project string, resources map[string]string, fn func(ctx context.Context, progress ProgressFunc) error) api.Operation {
	return d.startOperation(desc, project, resources, fn)
}

// AuditEvent appends an audit record for something the daemon did on its own (a restart
// policy acting, a reconcile removing a stray), with identity "finvirt".
func (d *Daemon) AuditEvent(ctx context.Context, action, target, project, outcome, detail string) error {
	rq := &Request{id: newID(), identity: "finvirt", source: "daemon", project: project, target: target}
	rec := d.record(rq, "INTERNAL", target, 0, outcome, detail)
	rec.Action = action
	return d.store.Update(ctx, func(tx store.Tx) error {
		_, err := audit.Append(tx, rec)
		return err
	})
}

// Response helpers.

func WriteJSON(w http.ResponseWriter, status int, v any) error { return writeJSON(w, status, v) }
func DecodeJSON(body []byte, v any) error                      { return decodeJSON(body, v) }
func Errorf(status int, format string, a ...any) error         { return errorf(status, format, a...) }
func BadRequest(format string, a ...any) error                 { return badRequest(format, a...) }
func NotFound(format string, a ...any) error                   { return notFound(format, a...) }
func Conflict(format string, a ...any) error                   { return conflict(format, a...) }
func Forbidden(format string, a ...any) error                  { return forbidden(format, a...) }

// ValidName checks an object name (1-63 lower-case letters, digits, dashes).
func ValidName(kind, name string) error { return validName(kind, name) }

// Route helpers.

func PathProject(param string) func(*Daemon, *http.Request) (string, error) {
	return pathProject(param)
}
func QueryProject(d *Daemon, r *http.Request) (string, error)  { return queryProject(d, r) }
func PathTarget(kind, param string) func(*http.Request) string { return pathTarget(kind, param) }
func Always(r *http.Request, b []byte) bool                    { return always(r, b) }
func Never(r *http.Request, b []byte) bool                     { return never(r, b) }

// Routes lists every route the daemon serves (core and subsystems).
func (d *Daemon) Routes() []*Route { return d.routes }

// Pattern is the ServeMux pattern of a route ("GET /1.0/projects/{name}").
func (rt *Route) Pattern() string { return rt.pattern() }
