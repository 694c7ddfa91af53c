package daemon

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/audit"
	"github.com/finvirt/finvirt/internal/store"
)

func (d *Daemon) record(rc *Request, method, target string, status int, outcome, detail string) api.AuditRecord {
	action := ""
	if rc.route != nil {
		action = rc.route.Action
		if action == "" {
			action = strings.ToLower(method) + " " + rc.route.Path
		}
	}
	if rc.target != "" {
		target = rc.target
	}
	return api.AuditRecord{
		Time:      time.Now().UTC(),
		Identity:  rc.identity,
		Source:    rc.source,
		Method:    method,
		Action:    action,
		Target:    target,
		Project:   rc.project,
		Outcome:   outcome,
		Status:    status,
		Detail:    detail,
		RequestID: rc.id,
		Approver:  rc.approvedBy,
	}
}

// commit applies a change and its audit record in one transaction: the log can never claim
// a change that did not happen, nor miss one that did.
func (d *Daemon) commit(ctx context.Context, r *http.Request, rc *Request, status int, fn func(tx store.Tx) error) error {
	err := d.store.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := audit.Append(tx, d.record(rc, r.Method, r.URL.Path, status, api.OutcomeSuccess, ""))
		return err
	})
	if err == nil {
		rc.audited = true
	}
	return err
}

// auditRequest records a mutating request that did not commit a change (rejected, denied,
// failed) or any denied read.
func (d *Daemon) auditRequest(r *http.Request, rc *Request, status int, herr error) {
	outcome := api.OutcomeFailed
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		outcome = api.OutcomeDenied
	case status < 300:
		outcome = api.OutcomeSuccess
	}
	detail := ""
	if herr != nil {
		detail = herr.Error()
	}
	rec := d.record(rc, r.Method, r.URL.Path, status, outcome, detail)
	err := d.store.Update(context.Background(), func(tx store.Tx) error {
		_, err := audit.Append(tx, rec)
		return err
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		d.log.Error("audit append failed", "err", err, "request_id", rc.id)
	}
}

func (d *Daemon) handleAuditList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	q := r.URL.Query()
	var since time.Time
	var fromSeq uint64
	if s := q.Get("since"); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			since = t
		} else if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			fromSeq = n
		} else if dur, err := time.ParseDuration(s); err == nil {
			since = time.Now().Add(-dur)
		} else {
			return badRequest("since=%q: give an RFC 3339 time, a sequence number or a duration such as 1h", s)
		}
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badRequest("limit=%q: give a number of records", s)
		}
		limit = n
	}
	entries, err := d.store.List(r.Context(), audit.Prefix)
	if err != nil {
		return err
	}
	out := make([]api.AuditRecord, 0, len(entries))
	for _, e := range entries {
		var rec api.AuditRecord
		if err := jsonUnmarshal(e.Value, &rec); err != nil {
			return errorf(http.StatusInternalServerError, "audit record %s is corrupt: run 'finvirt audit verify'", e.Key)
		}
		if rec.Seq < fromSeq || (!since.IsZero() && rec.Time.Before(since)) {
			continue
		}
		out = append(out, rec)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	if q.Get("format") == "jsonl" {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		for _, rec := range out {
			b, _ := jsonMarshal(rec)
			w.Write(append(b, '\n'))
		}
		return nil
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleAuditVerify(w http.ResponseWriter, r *http.Request, rc *Request) error {
	var res api.AuditVerifyResult
	// One snapshot for records and head, so appends during the check are not read as a
	// truncated log.
	err := d.store.View(r.Context(), func(tx store.Tx) error {
		entries, err := tx.List(audit.Prefix)
		if err != nil {
			return err
		}
		var hp *store.Entry
		if h, err := tx.Get(audit.HeadKey()); err == nil {
			hp = &h
		}
		res = audit.Verify(entries, hp)
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
