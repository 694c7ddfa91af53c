package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/audit"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/store"
)

const approvalPrefix = "approvals/"

// requestApproval parks a destructive request on a protected project until a second,
// different identity approves it (four-eyes). The request, its body and requester are kept;
// the audit log records the request as pending.
func (d *Daemon) requestApproval(w http.ResponseWriter, r *http.Request, rc *Request) error {
	now := time.Now().UTC()
	a := api.Approval{
		ID: newID(), Project: rc.project, Method: r.Method, Path: r.URL.RequestURI(), Body: string(rc.body),
		Summary:     rc.route.Action + " " + r.URL.RequestURI(),
		RequestedBy: rc.identity, RequestedAt: now, Status: api.ApprovalPending,
		ExpiresAt: now.Add(d.cfg.ApprovalTTL),
	}
	err := d.store.Update(r.Context(), func(tx store.Tx) error {
		b, _ := json.Marshal(a)
		if err := tx.Create(approvalPrefix+a.ID, b); err != nil {
			return err
		}
		rec := d.record(rc, r.Method, r.URL.Path, http.StatusAccepted, api.OutcomePending, "four-eyes approval "+a.ID+" requested")
		_, err := audit.Append(tx, rec)
		return err
	})
	if err != nil {
		return err
	}
	rc.audited = true
	d.lifecycle(rc, "approval-requested", a.Project, "/1.0/approvals/"+a.ID)
	w.Header().Set("X-Finvirt-Approval", a.ID)
	w.Header().Set("Location", "/1.0/approvals/"+a.ID)
	return writeJSON(w, http.StatusAccepted, a)
}

func approvalProject(d *Daemon, r *http.Request) (string, error) {
	a, err := d.getApproval(r, r.PathValue("id"))
	if err != nil {
		return "", err
	}
	return a.Project, nil
}

func (d *Daemon) getApproval(r *http.Request, id string) (api.Approval, error) {
	var a api.Approval
	e, err := d.store.Get(r.Context(), approvalPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return a, notFound("approval %s not found: see 'finvirt approval list'", id)
	}
	if err != nil {
		return a, err
	}
	err = json.Unmarshal(e.Value, &a)
	if a.Status == api.ApprovalPending && time.Now().After(a.ExpiresAt) {
		a.Status = api.ApprovalExpired
	}
	return a, err
}

func (d *Daemon) handleApprovalList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	entries, err := d.store.List(r.Context(), approvalPrefix)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	out := []api.Approval{}
	for _, e := range entries {
		var a api.Approval
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return err
		}
		if a.Status == api.ApprovalPending && time.Now().After(a.ExpiresAt) {
			a.Status = api.ApprovalExpired
		}
		if !auth.VisibleProject(rc.grants, a.Project) || (status != "" && a.Status != status) {
			continue
		}
		out = append(out, a)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleApprovalGet(w http.ResponseWriter, r *http.Request, rc *Request) error {
	a, err := d.getApproval(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !auth.VisibleProject(rc.grants, a.Project) {
		return notFound("approval %s not found: see 'finvirt approval list'", a.ID)
	}
	return writeJSON(w, http.StatusOK, a)
}

func approvalDecide(approve bool) func(*Daemon, http.ResponseWriter, *http.Request, *Request) error {
	return func(d *Daemon, w http.ResponseWriter, r *http.Request, rc *Request) error {
		var dec api.ApprovalDecision
		if len(rc.body) > 0 {
			if err := decodeJSON(rc.body, &dec); err != nil {
				return err
			}
		}
		id := r.PathValue("id")
		var a api.Approval
		// Claim the approval atomically so two approvers racing cannot both carry it out.
		err := d.store.Update(r.Context(), func(tx store.Tx) error {
			e, err := tx.Get(approvalPrefix + id)
			if err != nil {
				return notFound("approval %s not found", id)
			}
			if err := json.Unmarshal(e.Value, &a); err != nil {
				return err
			}
			if a.Status != api.ApprovalPending {
				return conflict("approval %s is already %s", id, a.Status)
			}
			if time.Now().After(a.ExpiresAt) {
				return conflict("approval %s expired at %s: ask for the change again", id, a.ExpiresAt.Format(time.RFC3339))
			}
			if a.RequestedBy == rc.identity {
				return forbidden("four-eyes: %s requested %s and cannot also decide it; another identity must", rc.identity, id)
			}
			a.DecidedBy, a.DecidedAt, a.Reason = rc.identity, time.Now().UTC(), dec.Reason
			if approve {
				a.Status = api.ApprovalApproved
			} else {
				a.Status = api.ApprovalRejected
			}
			b, _ := json.Marshal(a)
			if err := tx.CompareAndSwap(e.Key, b, e.ModRev); err != nil {
				return err
			}
			_, err = audit.Append(tx, d.record(rc, r.Method, r.URL.Path, http.StatusOK, api.OutcomeSuccess, a.Status+" "+a.Summary+" requested by "+a.RequestedBy))
			return err
		})
		if err != nil {
			return err
		}
		rc.audited = true
		if approve {
			// Carry out the original request as its requester, with the approver recorded.
			grants, gerr := d.grantsOf(r.Context(), a.RequestedBy)
			status, body := http.StatusForbidden, []byte(`{"error":"requester no longer exists"}`)
			if gerr == nil {
				requester := &Request{id: rc.id, identity: a.RequestedBy, grants: grants, source: rc.source, approvedBy: rc.identity}
				status, body = d.dispatchApproved(r.Context(), requester, a.Method, a.Path, []byte(a.Body))
			}
			a.Result = string(body)
			if status >= 300 {
				a.Status = api.ApprovalFailed
			}
			d.store.Update(r.Context(), func(tx store.Tx) error {
				b, _ := json.Marshal(a)
				return tx.Put(approvalPrefix+a.ID, b)
			})
		}
		d.lifecycle(rc, "approval-"+a.Status, a.Project, "/1.0/approvals/"+a.ID)
		return writeJSON(w, http.StatusOK, a)
	}
}
