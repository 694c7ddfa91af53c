package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
)

// route is one API endpoint: its pattern, what it needs, and how it is audited. The same
// table drives the HTTP mux, RBAC, the audit trail and the OpenAPI document.
type Route struct {
	Method  string
	Path    string // ServeMux pattern path, e.g. /1.0/projects/{name}
	Summary string
	Perm    auth.Perm
	// Project names the project the permission applies to ("" for global actions).
	Project func(d *Daemon, r *http.Request) (string, error)
	Action  string // audit action, e.g. project.create; mutating routes only
	// Destructive says whether the request needs four-eyes approval in a protected project.
	Destructive func(r *http.Request, body []byte) bool
	// Target names the audited object from the request (default: the request path).
	Target func(r *http.Request) string
	Body   any // request body type, for OpenAPI
	Reply  any // success body type, for OpenAPI
	Status int // success status, for OpenAPI
	// StreamBody leaves the request body unread and uncapped for the handler to stream
	// (image import, file push). Such routes cannot be four-eyes destructive.
	StreamBody bool
	Handler    func(d *Daemon, w http.ResponseWriter, r *http.Request, rq *Request) error
}

func (rt *Route) pattern() string { return rt.Method + " " + rt.Path }

func (rt *Route) mutating() bool { return rt.Method != http.MethodGet && rt.Method != http.MethodHead }

// Request is what the middleware learned about a request.
type Request struct {
	id         string
	identity   string
	grants     []api.Grant
	source     string
	project    string
	target     string // audited object, e.g. project/bank; defaults to the request path
	body       []byte
	approvedBy string // set when carrying out an approved four-eyes request
	audited    bool   // the handler wrote the audit record in its own transaction
	route      *Route
}

// apiError is an error with the HTTP status it maps to.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, a ...any) error {
	return &apiError{status: status, msg: fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) error { return errorf(http.StatusBadRequest, format, a...) }
func notFound(format string, a ...any) error   { return errorf(http.StatusNotFound, format, a...) }
func conflict(format string, a ...any) error   { return errorf(http.StatusConflict, format, a...) }
func forbidden(format string, a ...any) error  { return errorf(http.StatusForbidden, format, a...) }

func pathProject(name string) func(*Daemon, *http.Request) (string, error) {
	return func(_ *Daemon, r *http.Request) (string, error) { return r.PathValue(name), nil }
}

func pathTarget(kind, param string) func(*http.Request) string {
	return func(r *http.Request) string { return kind + "/" + r.PathValue(param) }
}

func never(*http.Request, []byte) bool  { return false }
func always(*http.Request, []byte) bool { return true }

var requestIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errAnswered says the middleware already answered the request (a four-eyes approval was
// filed instead of running the handler).
var errAnswered = errors.New("answered")

// execKey carries a pre-authenticated Request for an approved request being carried out.
type execKey struct{}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Hijack lets a handler take over the connection (interactive console attach via HTTP
// Upgrade); the request is recorded as 101 Switching Protocols.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (d *Daemon) register(rt *Route) {
	if rt.Project == nil {
		rt.Project = func(*Daemon, *http.Request) (string, error) { return "", nil }
	}
	if rt.Destructive == nil {
		rt.Destructive = never
	}
	if rt.Status == 0 {
		rt.Status = http.StatusOK
	}
	d.routes = append(d.routes, rt)
	d.byPat[rt.pattern()] = rt
	d.mux.HandleFunc(rt.pattern(), func(w http.ResponseWriter, r *http.Request) { d.handle(rt, w, r) })
}

// handle is the middleware every request passes: request id, authentication, body cap,
// authorization, four-eyes, the handler, metrics and the audit record.
func (d *Daemon) handle(rt *Route, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	rc, pre := r.Context().Value(execKey{}).(*Request)
	if !pre {
		rc = &Request{id: r.Header.Get("X-Request-Id")}
		if !requestIDRe.MatchString(rc.id) {
			rc.id = newID()
		}
	}
	rc.route = rt
	sw.Header().Set("X-Request-Id", rc.id)
	err := d.prepare(rt, sw, r, rc, pre)
	if err == nil {
		err = rt.Handler(d, sw, r, rc)
	}
	if errors.Is(err, errAnswered) {
		err = nil
	}
	if err != nil {
		writeError(sw, err)
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	d.metrics.observe(rt, status, time.Since(start))
	if (rt.mutating() || status == http.StatusUnauthorized || status == http.StatusForbidden) && !rc.audited {
		d.auditRequest(r, rc, status, err)
	}
}

func (d *Daemon) prepare(rt *Route, w http.ResponseWriter, r *http.Request, rc *Request, pre bool) error {
	if !pre {
		rc.source = sourceOf(r)
		if err := d.authenticate(r, rc); err != nil {
			return err
		}
	}
	project, err := rt.Project(d, r)
	if err != nil {
		return err
	}
	rc.project = project
	if rt.Target != nil {
		rc.target = rt.Target(r)
	}
	if !auth.Allowed(rc.grants, rt.Perm, project) {
		return forbidden("%s may not %s %s: needs %s%s", rc.identity, r.Method, r.URL.Path, rt.Perm, projectSuffix(project))
	}
	if rt.mutating() && !pre && !rt.StreamBody {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.cfg.MaxBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", d.cfg.MaxBodyBytes)
			}
			return badRequest("read request body: %v", err)
		}
		rc.body = body
	}
	if rt.StreamBody {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(rc.body))
	if rt.mutating() && rc.approvedBy == "" && project != "" && rt.Destructive(r, rc.body) {
		p, err := d.getProject(r.Context(), project)
		if err == nil && p.Protected {
			if err := d.requestApproval(w, r, rc); err != nil {
				return err
			}
			return errAnswered
		}
		r.Body = io.NopCloser(bytes.NewReader(rc.body))
	}
	return nil
}

func projectSuffix(p string) string {
	if p == "" {
		return ""
	}
	return " on project " + p
}

// dispatchApproved carries out a stored request as its original requester, with the
// approver recorded, through the same route table and handlers as any other request.
func (d *Daemon) dispatchApproved(ctx context.Context, requester *Request, method, path string, body []byte) (int, []byte) {
	req, _ := http.NewRequestWithContext(context.WithValue(ctx, execKey{}, requester), method, path, bytes.NewReader(body))
	rec := &bufferWriter{header: http.Header{}}
	requester.body = body
	d.mux.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.buf.Bytes()
}

type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}
func (b *bufferWriter) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}

// routeNotFound answers unknown paths under /1.0/ in the API's error format.
func (d *Daemon) routeNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, notFound("no API route %s %s: see /1.0/openapi.json", r.Method, r.URL.Path))
}

func trimAPI(p string) string { return strings.TrimPrefix(p, "/"+api.Version) }
