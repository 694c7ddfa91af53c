package networks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/store"
)

func (s *subsystem) aclView(ctx context.Context, a aclRecord) api.NetworkACL {
	out := api.NetworkACL{NetworkACLsPost: a.NetworkACLsPost, Project: a.Project, CreatedAt: a.CreatedAt}
	out.Rules = append([]api.NetworkACLRule{}, a.Rules...)
	nets, _ := s.networks(ctx, a.Project)
	for _, n := range nets {
		for _, x := range n.ACLs {
			if x == a.Name {
				out.UsedBy = append(out.UsedBy, n.Name)
			}
		}
	}
	stats, err := s.fw.ACLStats(ctx)
	if err != nil {
		return out
	}
	for _, st := range stats {
		if st.Group != a.Name {
			continue
		}
		out.Counters = append(out.Counters, api.NetworkACLCounter{Rule: st.Rule, NIC: st.NIC, Packets: st.Packets, Bytes: st.Bytes})
		for i := range out.Rules {
			if out.Rules[i].ID == st.Rule {
				out.Rules[i].Packets += st.Packets
				out.Rules[i].Bytes += st.Bytes
			}
		}
	}
	return out
}

func (s *subsystem) handleACLList(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	recs, err := s.acls(r.Context(), rq.Project())
	if err != nil {
		return err
	}
	out := make([]api.NetworkACL, 0, len(recs))
	for _, a := range recs {
		out = append(out, s.aclView(r.Context(), a))
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) handleACLGet(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	a, err := s.acl(r.Context(), rq.Project(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, s.aclView(r.Context(), a))
}

// normalizeRules fills default rule ids (rule-N) and protocols, and checks what the
// library cannot: a rule needs a direction the user chose, not one left empty.
func normalizeRules(name string, rules []api.NetworkACLRule) ([]api.NetworkACLRule, error) {
	used := map[string]bool{}
	for _, r := range rules {
		used[r.ID] = true
	}
	next := 1
	out := make([]api.NetworkACLRule, 0, len(rules))
	for i, r := range rules {
		r.Packets, r.Bytes = 0, 0
		if r.ID == "" {
			for used["rule-"+strconv.Itoa(next)] {
				next++
			}
			r.ID = "rule-" + strconv.Itoa(next)
			used[r.ID] = true
		}
		if _, err := strconv.Atoi(r.ID); err == nil {
			return nil, daemon.BadRequest("network ACL %s rule %d: id %q must not be a number (numbers address rules by index)", name, i+1, r.ID)
		}
		if r.Protocol == "" {
			r.Protocol = "any"
		}
		r.Direction = strings.ToLower(r.Direction)
		out = append(out, r)
	}
	return out, nil
}

// putACL validates the ACL against the manager (networks and ACLs its rules name, ports,
// CIDRs), applies it in one firewall batch and commits the record with the audit entry;
// on a failed commit the previous rules go back.
func (s *subsystem) putACL(ctx context.Context, r *http.Request, rq *daemon.Request, status int, rec aclRecord, old *aclRecord) error {
	rules, err := normalizeRules(rec.Name, rec.Rules)
	if err != nil {
		return err
	}
	rec.Rules = rules
	if err := s.m.PutSecurityGroup(ctx, toGroup(rec)); err != nil {
		return netErr(fmt.Errorf("network ACL %s: %w", rec.Name, err))
	}
	err = s.d.Commit(ctx, r, rq, status, func(tx store.Tx) error {
		b, _ := json.Marshal(rec)
		if err := tx.Put(usedKey, []byte(`true`)); err != nil {
			return err
		}
		if old == nil {
			return tx.Create(aclPrefix+rec.Project+"/"+rec.Name, b)
		}
		return tx.Put(aclPrefix+rec.Project+"/"+rec.Name, b)
	})
	if err != nil {
		if old == nil {
			s.m.DeleteSecurityGroup(context.Background(), rec.Name)
		} else {
			s.m.PutSecurityGroup(context.Background(), toGroup(*old))
		}
		if errors.Is(err, store.ErrExists) {
			return daemon.Conflict("network ACL %s already exists", rec.Name)
		}
	}
	return err
}

func (s *subsystem) handleACLCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.NetworkACLsPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	project := rq.Project()
	rq.SetTarget("network-acl/" + project + "/" + req.Name)
	if err := s.ready(); err != nil {
		return err
	}
	if err := daemon.ValidName("network ACL", req.Name); err != nil {
		return err
	}
	if _, err := d.GetProject(r.Context(), project); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok, err := s.findACL(r.Context(), req.Name); err != nil {
		return err
	} else if ok {
		return daemon.Conflict("network ACL %s already exists (in project %s); ACL names are unique on the host: choose another name", req.Name, a.Project)
	}
	rec := aclRecord{NetworkACLsPost: req, Project: project, CreatedAt: time.Now().UTC()}
	if err := s.putACL(r.Context(), r, rq, http.StatusCreated, rec, nil); err != nil {
		return err
	}
	a, _ := s.acl(r.Context(), project, req.Name)
	d.Lifecycle(rq, "network-acl-created", project, "/1.0/network-acls/"+req.Name)
	return daemon.WriteJSON(w, http.StatusCreated, s.aclView(r.Context(), a))
}

func (s *subsystem) handleACLDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.acl(r.Context(), project, name)
	if err != nil {
		return err
	}
	if v := s.aclView(r.Context(), a); len(v.UsedBy) > 0 {
		return daemon.Conflict("network ACL %s is used by networks %s: delete those networks first", name, strings.Join(v.UsedBy, ", "))
	}
	if err := s.m.DeleteSecurityGroup(r.Context(), name); err != nil {
		return netErr(err)
	}
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		return tx.Delete(aclPrefix + project + "/" + name)
	})
	if err != nil {
		s.m.PutSecurityGroup(context.Background(), toGroup(a))
		return err
	}
	d.Lifecycle(rq, "network-acl-deleted", project, "/1.0/network-acls/"+name)
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (s *subsystem) handleRuleAdd(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var rule api.NetworkACLRule
	if err := daemon.DecodeJSON(rq.Body(), &rule); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.acl(r.Context(), project, name)
	if err != nil {
		return err
	}
	if rule.Direction == "" {
		return daemon.BadRequest("network ACL %s: a rule needs a direction: ingress or egress", name)
	}
	for _, x := range a.Rules {
		if rule.ID != "" && x.ID == rule.ID {
			return daemon.Conflict("network ACL %s already has a rule %s: choose another id or delete that rule first", name, rule.ID)
		}
	}
	old := a
	a.Rules = append(append([]api.NetworkACLRule{}, a.Rules...), rule)
	if err := s.putACL(r.Context(), r, rq, http.StatusCreated, a, &old); err != nil {
		return err
	}
	a, _ = s.acl(r.Context(), project, name)
	d.Lifecycle(rq, "network-acl-updated", project, "/1.0/network-acls/"+name)
	return daemon.WriteJSON(w, http.StatusCreated, s.aclView(r.Context(), a))
}

func (s *subsystem) handleRuleDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name, ref := rq.Project(), r.PathValue("name"), r.PathValue("rule")
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.acl(r.Context(), project, name)
	if err != nil {
		return err
	}
	idx := -1
	for i, x := range a.Rules {
		if x.ID == ref {
			idx = i
		}
	}
	if n, err := strconv.Atoi(ref); err == nil && idx < 0 {
		if n < 1 || n > len(a.Rules) {
			return daemon.NotFound("network ACL %s has %d rules: index %d is out of range (indexes start at 1, see 'finvirt network acl show %s')", name, len(a.Rules), n, name)
		}
		idx = n - 1
	}
	if idx < 0 {
		return daemon.NotFound("network ACL %s has no rule %q: see 'finvirt network acl show %s'", name, ref, name)
	}
	old := a
	a.Rules = append(append([]api.NetworkACLRule{}, a.Rules[:idx]...), a.Rules[idx+1:]...)
	if err := s.putACL(r.Context(), r, rq, http.StatusOK, a, &old); err != nil {
		return err
	}
	d.Lifecycle(rq, "network-acl-updated", project, "/1.0/network-acls/"+name)
	return daemon.WriteJSON(w, http.StatusOK, s.aclView(r.Context(), a))
}

// groupsOf are the ACLs a NIC on network n gets.
func groupsOf(n networkRecord) []string { return append([]string{}, n.ACLs...) }
