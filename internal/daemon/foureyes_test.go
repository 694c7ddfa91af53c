package daemon_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

func TestFourEyesApproval(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	td.MustProject(t, "vault", true)
	alice := td.TokenFor(t, "alice", api.RoleOperator, "vault") // a second identity entitled to approve
	mallory := td.TokenFor(t, "mallory", api.RoleViewer, "vault")

	// The local administrator asks to delete a protected project: nothing happens yet.
	err := td.Local.DeleteProject(ctx, "vault")
	var pa *client.PendingApproval
	if !errors.As(err, &pa) || pa.Approval.Status != api.ApprovalPending || pa.Approval.RequestedBy != "local:root" {
		t.Fatalf("delete of protected project: %v", err)
	}
	if _, err := td.Local.GetProject(ctx, "vault"); err != nil {
		t.Fatalf("project gone before approval: %v", err)
	}
	// The requester cannot approve their own request.
	if _, err := td.Local.DecideApproval(ctx, pa.Approval.ID, true, ""); client.StatusOf(err) != 403 || !strings.Contains(err.Error(), "four-eyes") {
		t.Fatalf("self-approval: %v, want 403 four-eyes", err)
	}
	// A viewer may not approve.
	if _, err := mallory.DecideApproval(ctx, pa.Approval.ID, true, ""); client.StatusOf(err) != 403 {
		t.Fatalf("viewer approval: %v, want 403", err)
	}
	// A different, entitled identity approves: the delete is carried out.
	a, err := alice.DecideApproval(ctx, pa.Approval.ID, true, "end of life")
	if err != nil || a.Status != api.ApprovalApproved || a.DecidedBy != "alice" {
		t.Fatalf("approve = %+v, %v", a, err)
	}
	if _, err := td.Local.GetProject(ctx, "vault"); client.StatusOf(err) != 404 {
		t.Fatalf("project still exists after approved delete: %v", err)
	}
	// Deleting the project dropped alice's grants on it; an admin trying again is refused
	// because the approval is spent.
	bob := td.TokenFor(t, "bob", api.RoleAdmin, "")
	if _, err := bob.DecideApproval(ctx, pa.Approval.ID, true, ""); client.StatusOf(err) != 409 {
		t.Fatalf("second approval: %v, want 409", err)
	}
	if _, err := alice.GetProject(ctx, "vault"); client.StatusOf(err) != 403 {
		t.Fatalf("grant on deleted project still works: %v", err)
	}
	// Both identities are in the audit log: the delete by its requester with the approver.
	recs, _ := td.Local.AuditList(ctx, "", 0)
	var sawDelete, sawApprove bool
	for _, r := range recs {
		if r.Action == "project.delete" && r.Outcome == api.OutcomeSuccess && r.Identity == "local:root" && r.Approver == "alice" {
			sawDelete = true
		}
		if r.Action == "approval.approve" && r.Identity == "alice" && r.Outcome == api.OutcomeSuccess {
			sawApprove = true
		}
	}
	if !sawDelete || !sawApprove {
		t.Fatalf("audit lacks the approved delete (%v) or the approval (%v)", sawDelete, sawApprove)
	}

	// Rejection leaves the project alone; removing protection is itself four-eyes.
	td.MustProject(t, "vault2", true)
	off := false
	_, err = td.Local.UpdateProject(ctx, "vault2", api.ProjectPatch{Protected: &off})
	if !errors.As(err, &pa) {
		t.Fatalf("unprotect did not need approval: %v", err)
	}
	if a, err := bob.DecideApproval(ctx, pa.Approval.ID, false, "no"); err != nil || a.Status != api.ApprovalRejected {
		t.Fatalf("reject = %+v, %v", a, err)
	}
	p, _ := td.Local.GetProject(ctx, "vault2")
	if !p.Protected {
		t.Fatal("rejected unprotect was applied")
	}
	list, _ := td.Local.ListApprovals(ctx, api.ApprovalRejected)
	if len(list) != 1 || list[0].DecidedBy != "bob" {
		t.Fatalf("rejected approvals = %+v", list)
	}
	// Non-destructive changes to a protected project need no approval.
	desc := "still protected"
	if _, err := td.Local.UpdateProject(ctx, "vault2", api.ProjectPatch{Description: &desc}); err != nil {
		t.Fatalf("description change on protected project: %v", err)
	}
}
