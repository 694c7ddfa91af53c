package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Client is a small JSON-over-HTTP client shared by the scenarios.
type Client struct {
	Base string
	HC   *http.Client
}

// NewClient returns a client with a connection pool sized for load.
func NewClient(base string, timeout time.Duration) *Client {
	tr := &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	return &Client{Base: strings.TrimRight(base, "/"), HC: &http.Client{Transport: tr, Timeout: timeout}}
}

// APIError is a non-2xx response in the contracts' error format.
type APIError struct {
	Status int
	Code   string `json:"code"`
	Msg    string `json:"error"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("status %d %s: %s", e.Status, e.Code, e.Msg)
}

// Do sends body (JSON-encoded unless nil or []byte) and decodes a 2xx
// response into out. It returns the status; non-2xx yields *APIError;
// transport failures yield another error (outcome unknown).
func (c *Client) Do(ctx context.Context, method, path string, hdr map[string]string, body, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code = fmt.Sprintf("http_%d", resp.StatusCode)
			e.Msg = strings.TrimSpace(string(data))
		}
		return resp.StatusCode, e
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: response is not the expected JSON: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Kind classifies an error for the report: the contract code for API
// errors, "timeout", "conn_refused" or "transport" otherwise.
func Kind(err error) string {
	if err == nil {
		return ""
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if strings.Contains(err.Error(), "connection refused") {
		return "conn_refused"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "transport"
}

// WaitHealthy polls GET /healthz until 200 or timeout.
func (c *Client) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", c.Base+"/healthz", nil)
		resp, err := c.HC.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s/healthz not healthy within %v: %v", c.Base, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
