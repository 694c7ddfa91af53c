package claims

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// RemitTransfer is the body of remit's POST /v1/transfers (contract v1).
type RemitTransfer struct {
	ID              string `json:"id"`
	DebitAccountID  string `json:"debit_account_id"`
	CreditAccountID string `json:"credit_account_id"`
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	Pending         bool   `json:"pending"`
	TimeoutSeconds  int    `json:"timeout_seconds"`
}

// RemitResult is the outcome of one transfer submission.
type RemitResult struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Error  string `json:"error"`
}

// Acked reports whether remit acknowledged the transfer: created (201) or
// an idempotent replay of the identical transfer (200).
func (r RemitResult) Acked() bool { return r.Status == 201 || r.Status == 200 }

// RemitClient talks to remit's HTTP API.
type RemitClient struct {
	base    string
	hc      *http.Client
	noBatch atomic.Bool // remit without a batch endpoint: send one by one
}

// NewRemitClient returns a client for base (e.g. http://127.0.0.1:8081).
func NewRemitClient(base string) *RemitClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	return &RemitClient{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

var errBatchUnsupported = errors.New("remit has no batch endpoint")

// Send submits transfers, as one batch request when possible. keys holds
// the Idempotency-Key for each transfer (used by the single endpoint; in a
// batch the transfer id gives idempotency). A transport or 5xx failure of
// the whole request returns an error: the outcome is unknown and the caller
// retries the same transfers, which remit deduplicates.
func (c *RemitClient) Send(ctx context.Context, trs []RemitTransfer, keys []string) ([]RemitResult, error) {
	if len(trs) > 1 && !c.noBatch.Load() {
		res, err := c.sendBatch(ctx, trs)
		if !errors.Is(err, errBatchUnsupported) {
			return res, err
		}
		c.noBatch.Store(true)
	}
	out := make([]RemitResult, len(trs))
	for i := range trs {
		r, err := c.sendOne(ctx, &trs[i], keys[i])
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func (c *RemitClient) sendOne(ctx context.Context, tr *RemitTransfer, key string) (RemitResult, error) {
	body, _ := json.Marshal(tr)
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/transfers", bytes.NewReader(body))
	if err != nil {
		return RemitResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return RemitResult{}, fmt.Errorf("remit POST /v1/transfers %s: %w", tr.ID, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 500 {
		return RemitResult{}, fmt.Errorf("remit POST /v1/transfers %s: status %d: %s", tr.ID, resp.StatusCode, bytes.TrimSpace(data))
	}
	r := RemitResult{ID: tr.ID, Status: resp.StatusCode}
	if !r.Acked() {
		var e struct{ Error, Code string }
		_ = json.Unmarshal(data, &e)
		r.Code, r.Error = e.Code, e.Error
	}
	return r, nil
}

func (c *RemitClient) sendBatch(ctx context.Context, trs []RemitTransfer) ([]RemitResult, error) {
	body, _ := json.Marshal(map[string]any{"linked": false, "transfers": trs})
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/v1/transfers/batch", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("remit POST /v1/transfers/batch (%d transfers): %w", len(trs), err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode == 404 || resp.StatusCode == 405 {
		var e struct{ Code string }
		if json.Unmarshal(data, &e) != nil || e.Code == "" || e.Code == "not_found" {
			return nil, errBatchUnsupported
		}
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("remit POST /v1/transfers/batch: status %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var out struct {
		Results []RemitResult `json:"results"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("remit batch response is not the contract's JSON: %w", err)
	}
	if len(out.Results) != len(trs) {
		return nil, fmt.Errorf("remit batch returned %d results for %d transfers", len(out.Results), len(trs))
	}
	for i := range out.Results {
		if out.Results[i].ID == "" {
			out.Results[i].ID = trs[i].ID
		}
		if out.Results[i].ID != trs[i].ID {
			return nil, fmt.Errorf("remit batch result %d is for %q, expected %q", i, out.Results[i].ID, trs[i].ID)
		}
	}
	return out.Results, nil
}
