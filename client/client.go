// Package client is the Go client of the finvirt REST API, used by the CLI and the tests.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/finvirt/finvirt.sock"

// Client talks to one daemon.
type Client struct {
	http  *http.Client
	base  string
	token string
	desc  string
}

// Error is an API error response.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// StatusOf returns the HTTP status of an API error, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// PendingApproval is returned by a destructive request on a protected project: nothing
// changed yet; a second identity must approve it.
type PendingApproval struct{ Approval api.Approval }

func (p *PendingApproval) Error() string {
	return fmt.Sprintf("four-eyes approval %s required: another identity must run 'finvirt approval approve %s'", p.Approval.ID, p.Approval.ID)
}

// NewUnix connects to a daemon's unix socket (the local administrator).
func NewUnix(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
	}
	return &Client{http: &http.Client{Transport: tr}, base: "http://finvirt", desc: socket}
}

// RemoteOptions configure a TCP connection.
type RemoteOptions struct {
	Token string
	// ServerCert is the daemon's PEM certificate, pinned: only that certificate is trusted.
	ServerCert []byte
	// ClientCert authenticates by certificate instead of (or besides) a token.
	ClientCert *tls.Certificate
}

// NewRemote connects to https://host:port with a pinned server certificate.
func NewRemote(baseURL string, opts RemoteOptions) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("remote %q: give https://HOST:PORT", baseURL)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(opts.ServerCert) == 0 {
		return nil, fmt.Errorf("remote %s: the server certificate is needed to pin it (FINVIRT_SERVER_CERT=path, from the daemon's state dir server.crt)", baseURL)
	}
	block, _ := pem.Decode(opts.ServerCert)
	if block == nil {
		return nil, fmt.Errorf("server certificate is not PEM")
	}
	pinned := block.Bytes
	cfg.InsecureSkipVerify = true // replaced by the exact-certificate check below
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 || !bytes.Equal(raw[0], pinned) {
			return fmt.Errorf("server certificate does not match the pinned one")
		}
		return nil
	}
	if opts.ClientCert != nil {
		cfg.Certificates = []tls.Certificate{*opts.ClientCert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64}
	return &Client{http: &http.Client{Transport: tr}, base: strings.TrimSuffix(baseURL, "/"), token: opts.Token, desc: baseURL}, nil
}

// FromEnv builds a client from FINVIRT_REMOTE (+ FINVIRT_TOKEN, FINVIRT_SERVER_CERT,
// FINVIRT_CLIENT_CERT/FINVIRT_CLIENT_KEY) or else FINVIRT_SOCKET / socket.
func FromEnv(socket string) (*Client, error) {
	if remote := os.Getenv("FINVIRT_REMOTE"); remote != "" {
		opts := RemoteOptions{Token: os.Getenv("FINVIRT_TOKEN")}
		if p := os.Getenv("FINVIRT_SERVER_CERT"); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("FINVIRT_SERVER_CERT: %w", err)
			}
			opts.ServerCert = b
		}
		if c, k := os.Getenv("FINVIRT_CLIENT_CERT"), os.Getenv("FINVIRT_CLIENT_KEY"); c != "" {
			cert, err := tls.LoadX509KeyPair(c, k)
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			opts.ClientCert = &cert
		}
		return NewRemote(remote, opts)
	}
	if socket == "" {
		socket = os.Getenv("FINVIRT_SOCKET")
	}
	if socket == "" {
		socket = DefaultSocket
	}
	return NewUnix(socket), nil
}

// Do sends a request and decodes a JSON answer into out (if non-nil). A 202 with an
// approval header becomes *PendingApproval.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return c.decode(resp, out)
}

// DoBody sends a raw (streamed) request body, e.g. a disk image or a file, and decodes the
// JSON answer into out.
func (c *Client) DoBody(ctx context.Context, method, path string, body io.Reader, out any) error {
	resp, err := c.stream(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return c.decode(resp, out)
}

// Raw sends a request and returns the undecoded response (for streams); the caller closes
// its body. Error statuses are turned into *Error.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	resp, err := c.raw(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, c.decode(resp, nil)
	}
	return resp, nil
}

func (c *Client) raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the finvirt daemon at %s: %v (is 'finvirt daemon' running? set FINVIRT_SOCKET or --socket)", c.desc, unwrapNet(err))
	}
	return resp, nil
}

func unwrapNet(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Client) decode(resp *http.Response, out any) error {
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &Error{Status: resp.StatusCode, Message: e.Error}
		}
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	if resp.StatusCode == http.StatusAccepted && resp.Header.Get("X-Finvirt-Approval") != "" {
		var a api.Approval
		if err := json.Unmarshal(b, &a); err != nil {
			return err
		}
		return &PendingApproval{Approval: a}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// Info returns server information and the caller's identity.
func (c *Client) Info(ctx context.Context) (api.ServerInfo, error) {
	var i api.ServerInfo
	return i, c.Do(ctx, "GET", "/1.0", nil, &i)
}

// Projects.

func (c *Client) ListProjects(ctx context.Context) ([]api.Project, error) {
	var out []api.Project
	return out, c.Do(ctx, "GET", "/1.0/projects", nil, &out)
}

func (c *Client) GetProject(ctx context.Context, name string) (api.Project, error) {
	var p api.Project
	return p, c.Do(ctx, "GET", "/1.0/projects/"+url.PathEscape(name), nil, &p)
}

func (c *Client) CreateProject(ctx context.Context, req api.ProjectsPost) (api.Project, error) {
	var p api.Project
	return p, c.Do(ctx, "POST", "/1.0/projects", req, &p)
}

func (c *Client) UpdateProject(ctx context.Context, name string, patch api.ProjectPatch) (api.Project, error) {
	var p api.Project
	return p, c.Do(ctx, "PATCH", "/1.0/projects/"+url.PathEscape(name), patch, &p)
}

func (c *Client) DeleteProject(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/1.0/projects/"+url.PathEscape(name), nil, nil)
}

// Identities and tokens.

func (c *Client) CreateToken(ctx context.Context, req api.TokensPost) (api.Token, error) {
	var t api.Token
	return t, c.Do(ctx, "POST", "/1.0/tokens", req, &t)
}

func (c *Client) ListTokens(ctx context.Context) ([]api.Token, error) {
	var out []api.Token
	return out, c.Do(ctx, "GET", "/1.0/tokens", nil, &out)
}

func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.Do(ctx, "DELETE", "/1.0/tokens/"+url.PathEscape(id), nil, nil)
}

func (c *Client) AddCertificate(ctx context.Context, req api.CertificatesPost) (api.Identity, error) {
	var id api.Identity
	return id, c.Do(ctx, "POST", "/1.0/certificates", req, &id)
}

func (c *Client) ListIdentities(ctx context.Context) ([]api.Identity, error) {
	var out []api.Identity
	return out, c.Do(ctx, "GET", "/1.0/identities", nil, &out)
}

func (c *Client) GetIdentity(ctx context.Context, name string) (api.Identity, error) {
	var id api.Identity
	return id, c.Do(ctx, "GET", "/1.0/identities/"+url.PathEscape(name), nil, &id)
}

func (c *Client) DeleteIdentity(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/1.0/identities/"+url.PathEscape(name), nil, nil)
}

// Approvals.

func (c *Client) ListApprovals(ctx context.Context, status string) ([]api.Approval, error) {
	var out []api.Approval
	p := "/1.0/approvals"
	if status != "" {
		p += "?status=" + url.QueryEscape(status)
	}
	return out, c.Do(ctx, "GET", p, nil, &out)
}

func (c *Client) GetApproval(ctx context.Context, id string) (api.Approval, error) {
	var a api.Approval
	return a, c.Do(ctx, "GET", "/1.0/approvals/"+url.PathEscape(id), nil, &a)
}

func (c *Client) DecideApproval(ctx context.Context, id string, approve bool, reason string) (api.Approval, error) {
	var a api.Approval
	verb := "reject"
	if approve {
		verb = "approve"
	}
	return a, c.Do(ctx, "POST", "/1.0/approvals/"+url.PathEscape(id)+"/"+verb, api.ApprovalDecision{Reason: reason}, &a)
}

// Audit.

// AuditList returns audit records; since may be "", an RFC 3339 time, a sequence number
// or a duration ("1h").
func (c *Client) AuditList(ctx context.Context, since string, limit int) ([]api.AuditRecord, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []api.AuditRecord
	return out, c.Do(ctx, "GET", "/1.0/audit?"+q.Encode(), nil, &out)
}

// AuditExport streams the records as JSON lines (for a SIEM) into w.
func (c *Client) AuditExport(ctx context.Context, since string, w io.Writer) error {
	q := url.Values{"format": {"jsonl"}}
	if since != "" {
		q.Set("since", since)
	}
	resp, err := c.raw(ctx, "GET", "/1.0/audit?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return c.decode(resp, nil)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func (c *Client) AuditVerify(ctx context.Context) (api.AuditVerifyResult, error) {
	var r api.AuditVerifyResult
	return r, c.Do(ctx, "GET", "/1.0/audit/verify", nil, &r)
}

// Operations.

func (c *Client) ListOperations(ctx context.Context) ([]api.Operation, error) {
	var out []api.Operation
	return out, c.Do(ctx, "GET", "/1.0/operations", nil, &out)
}

func (c *Client) GetOperation(ctx context.Context, id string, wait time.Duration) (api.Operation, error) {
	var op api.Operation
	p := "/1.0/operations/" + url.PathEscape(id)
	if wait > 0 {
		p += "?wait=" + strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)
	}
	return op, c.Do(ctx, "GET", p, nil, &op)
}

func (c *Client) CancelOperation(ctx context.Context, id string) (api.Operation, error) {
	var op api.Operation
	return op, c.Do(ctx, "DELETE", "/1.0/operations/"+url.PathEscape(id), nil, &op)
}

// WaitOperation polls until the operation ends, calling progress on each change. It
// returns an error carrying the operation's error when it failed.
func (c *Client) WaitOperation(ctx context.Context, id string, progress func(api.Operation)) (api.Operation, error) {
	last := -1
	for {
		op, err := c.GetOperation(ctx, id, time.Second)
		if err != nil {
			return op, err
		}
		if progress != nil && (op.Progress != last || op.Status != api.OperationRunning) {
			progress(op)
			last = op.Progress
		}
		switch op.Status {
		case api.OperationSuccess:
			return op, nil
		case api.OperationFailure, api.OperationCancelled:
			return op, fmt.Errorf("operation %s %s: %s", op.ID, op.Status, op.Error)
		}
		if err := ctx.Err(); err != nil {
			return op, err
		}
	}
}

// Backup starts a state backup and returns its operation.
func (c *Client) Backup(ctx context.Context, name string) (api.Operation, error) {
	var op api.Operation
	return op, c.Do(ctx, "POST", "/1.0/backups", api.BackupsPost{Name: name}, &op)
}

// Events subscribes to the server-sent event stream (typ "" for all types).
func (c *Client) Events(ctx context.Context, typ string) (<-chan api.Event, error) {
	p := "/1.0/events"
	if typ != "" {
		p += "?type=" + url.QueryEscape(typ)
	}
	resp, err := c.raw(ctx, "GET", p, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, c.decode(resp, nil)
	}
	ch := make(chan api.Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var ev api.Event
			if json.Unmarshal([]byte(data), &ev) == nil {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}
