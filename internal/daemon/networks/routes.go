package networks

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/store"
)

func (s *subsystem) Routes() []*daemon.Route {
	pq := daemon.QueryProject
	netTarget := daemon.PathTarget("network", "name")
	aclTarget := daemon.PathTarget("network-acl", "name")
	return []*daemon.Route{
		{Method: "GET", Path: "/1.0/networks", Summary: "List a project's networks", Perm: auth.PermProjectRead, Project: pq, Reply: []api.Network{}, Handler: s.handleNetworkList},
		{Method: "POST", Path: "/1.0/networks", Summary: "Create an isolated network (bridge or vxlan) with IPAM, optional DHCP and NAT", Perm: auth.PermProjectWrite, Project: pq, Action: "network.create", Body: api.NetworksPost{}, Reply: api.Network{}, Status: 201, Handler: s.handleNetworkCreate},
		{Method: "GET", Path: "/1.0/networks/{name}", Summary: "Show a network with its bridge, addresses and NICs", Perm: auth.PermProjectRead, Project: pq, Reply: api.Network{}, Handler: s.handleNetworkGet},
		{Method: "DELETE", Path: "/1.0/networks/{name}", Summary: "Delete a network no NIC or ACL rule uses", Perm: auth.PermProjectWrite, Project: pq, Action: "network.delete", Target: netTarget, Destructive: daemon.Always, Handler: s.handleNetworkDelete},
		{Method: "GET", Path: "/1.0/networks/{name}/leases", Summary: "IPAM reservations and DHCP leases of a network", Perm: auth.PermProjectRead, Project: pq, Reply: []api.NetworkLease{}, Handler: s.handleLeases},

		{Method: "GET", Path: "/1.0/network-acls", Summary: "List a project's network ACLs", Perm: auth.PermProjectRead, Project: pq, Reply: []api.NetworkACL{}, Handler: s.handleACLList},
		{Method: "POST", Path: "/1.0/network-acls", Summary: "Create a network ACL (allow rules applied to the NICs of the networks naming it)", Perm: auth.PermProjectWrite, Project: pq, Action: "network-acl.create", Body: api.NetworkACLsPost{}, Reply: api.NetworkACL{}, Status: 201, Handler: s.handleACLCreate},
		{Method: "GET", Path: "/1.0/network-acls/{name}", Summary: "Show an ACL with per-rule packet and byte counters", Perm: auth.PermProjectRead, Project: pq, Reply: api.NetworkACL{}, Handler: s.handleACLGet},
		{Method: "DELETE", Path: "/1.0/network-acls/{name}", Summary: "Delete an ACL no network uses", Perm: auth.PermProjectWrite, Project: pq, Action: "network-acl.delete", Target: aclTarget, Destructive: daemon.Always, Handler: s.handleACLDelete},
		{Method: "POST", Path: "/1.0/network-acls/{name}/rules", Summary: "Add an allow rule to an ACL", Perm: auth.PermProjectWrite, Project: pq, Action: "network-acl.rule-add", Target: aclTarget, Body: api.NetworkACLRule{}, Reply: api.NetworkACL{}, Status: 201, Handler: s.handleRuleAdd},
		{Method: "DELETE", Path: "/1.0/network-acls/{name}/rules/{rule}", Summary: "Remove a rule (by id or 1-based index) from an ACL", Perm: auth.PermProjectWrite, Project: pq, Action: "network-acl.rule-delete", Target: aclTarget, Reply: api.NetworkACL{}, Handler: s.handleRuleDelete},

		{Method: "POST", Path: "/1.0/network-segmentation-report", Summary: "Probe every network from a probe endpoint plugged into it and return the reachability matrix", Perm: auth.PermAuditRead, Action: "network.segmentation-report", Body: api.SegmentationReportPost{}, Reply: api.SegmentationReport{}, Handler: s.handleReport},
	}
}

func (s *subsystem) view(ctx context.Context, rec networkRecord, nics []nicRecord) api.Network {
	out := api.Network{NetworksPost: rec.NetworksPost, Project: rec.Project, CreatedAt: rec.CreatedAt, Status: "up"}
	if out.Driver == "" {
		out.Driver = "bridge"
	}
	if r, ok := s.m.Network(rec.Name); ok {
		out.Bridge = r.BridgeName
		out.Gateway = r.GatewayIP.String()
	}
	info, err := s.m.NetworkInfo(ctx, rec.Name)
	switch {
	case err != nil:
		out.Status, out.StatusError = "unavailable", err.Error()
	case !info.BridgeUp:
		out.Status = "down"
	}
	out.Addresses, out.Ports = info.Addresses, info.Ports
	for _, n := range nics {
		if n.Network == rec.Name {
			out.NICs = append(out.NICs, n.ID)
		}
	}
	return out
}

func (s *subsystem) handleNetworkList(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	recs, err := s.networks(r.Context(), rq.Project())
	if err != nil {
		return err
	}
	nics, _ := s.nics(r.Context(), "")
	out := make([]api.Network, 0, len(recs))
	for _, rec := range recs {
		out = append(out, s.view(r.Context(), rec, nics))
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) handleNetworkGet(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	rec, err := s.network(r.Context(), rq.Project(), r.PathValue("name"))
	if err != nil {
		return err
	}
	nics, _ := s.nics(r.Context(), rec.Name)
	return daemon.WriteJSON(w, http.StatusOK, s.view(r.Context(), rec, nics))
}

// checkNetworkRequest validates what the library does not know about: names, the project,
// the ACLs (same project), the DHCP range syntax.
func (s *subsystem) checkNetworkRequest(ctx context.Context, project string, req *api.NetworksPost) error {
	if err := daemon.ValidName("network", req.Name); err != nil {
		return err
	}
	if _, err := s.d.GetProject(ctx, project); err != nil {
		return err
	}
	if n, ok, err := s.findNetwork(ctx, req.Name); err != nil {
		return err
	} else if ok {
		return daemon.Conflict("network %s already exists (in project %s); network names are unique on the host: choose another name", req.Name, n.Project)
	}
	switch req.Driver {
	case "", "bridge":
		if req.VXLAN != nil {
			return daemon.BadRequest("network %s: vxlan settings need --driver vxlan", req.Name)
		}
	case "vxlan":
		if req.VXLAN == nil {
			return daemon.BadRequest("network %s: driver vxlan needs --vni and --local", req.Name)
		}
	default:
		return daemon.BadRequest("network %s: driver %q is not known: use bridge or vxlan", req.Name, req.Driver)
	}
	if req.DHCPRange != "" {
		a, b, ok := strings.Cut(req.DHCPRange, "-")
		_, e1 := netip.ParseAddr(a)
		_, e2 := netip.ParseAddr(b)
		if !ok || e1 != nil || e2 != nil {
			return daemon.BadRequest("network %s: dhcp range %q: use FIRST-LAST, e.g. 10.10.0.100-10.10.0.200", req.Name, req.DHCPRange)
		}
	}
	for _, a := range req.ACLs {
		if _, err := s.acl(ctx, project, a); err != nil {
			return daemon.BadRequest("network %s: ACL %s does not exist in project %s: create it first with 'finvirt network acl create %s --project %s'", req.Name, a, project, a, project)
		}
	}
	return nil
}

func (s *subsystem) handleNetworkCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.NetworksPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	project := rq.Project()
	rq.SetTarget("network/" + project + "/" + req.Name)
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkNetworkRequest(r.Context(), project, &req); err != nil {
		return err
	}
	rec := networkRecord{NetworksPost: req, Project: project, CreatedAt: time.Now().UTC()}
	if rec.Driver == "" {
		rec.Driver = "bridge"
	}
	n := toNetwork(rec)
	if _, err := s.m.ResolveNetwork(n); err != nil {
		return netErr(err)
	}
	if _, err := s.m.CreateNetwork(r.Context(), n); err != nil {
		return netErr(err)
	}
	err := d.Commit(r.Context(), r, rq, http.StatusCreated, func(tx store.Tx) error {
		b, _ := json.Marshal(rec)
		if err := tx.Put(usedKey, []byte(`true`)); err != nil {
			return err
		}
		return tx.Create(networkPrefix+project+"/"+rec.Name, b)
	})
	if err != nil {
		// The record is the network's existence: without it, undo the kernel side.
		s.m.DeleteNetwork(context.Background(), rec.Name)
		if errors.Is(err, store.ErrExists) {
			return daemon.Conflict("network %s already exists in project %s", rec.Name, project)
		}
		return err
	}
	d.Lifecycle(rq, "network-created", project, "/1.0/networks/"+rec.Name)
	return daemon.WriteJSON(w, http.StatusCreated, s.view(r.Context(), rec, nil))
}

func (s *subsystem) handleNetworkDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	if err := s.ready(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.network(r.Context(), project, name)
	if err != nil {
		return err
	}
	nics, err := s.nics(r.Context(), name)
	if err != nil {
		return err
	}
	if len(nics) > 0 {
		var ids []string
		for _, n := range nics {
			ids = append(ids, n.ID+" (instance "+n.Instance+")")
		}
		return daemon.Conflict("network %s is in use by NICs %s: detach them (stop or delete the instances) first", name, strings.Join(ids, ", "))
	}
	if err := s.m.DeleteNetwork(r.Context(), name); err != nil {
		return netErr(err)
	}
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		if err := tx.Delete(networkPrefix + project + "/" + name); err != nil {
			return err
		}
		// Leases of a deleted network would be found by a new network of the same name.
		leases, _ := tx.List(leasePrefix + name + "/")
		for _, l := range leases {
			tx.Delete(l.Key)
		}
		return nil
	})
	if err != nil {
		s.m.EnsureNetwork(context.Background(), toNetwork(rec))
		return err
	}
	d.Lifecycle(rq, "network-deleted", project, "/1.0/networks/"+name)
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (s *subsystem) handleLeases(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	rec, err := s.network(r.Context(), rq.Project(), r.PathValue("name"))
	if err != nil {
		return err
	}
	leases, err := s.leases.List(rec.Name)
	if err != nil {
		return err
	}
	nics, _ := s.nics(r.Context(), rec.Name)
	byMAC := map[string]nicRecord{}
	for _, n := range nics {
		mac := strings.ToLower(n.MAC)
		if mac == "" {
			mac = network.DeriveMAC(n.Network, n.Instance, n.ID).String()
		}
		byMAC[mac] = n
	}
	out := make([]api.NetworkLease, 0, len(leases))
	for _, l := range leases {
		nl := api.NetworkLease{Network: l.Network, MAC: l.Owner, IP: l.IP, Static: l.Static, Expires: l.Expires, Hostname: l.Hostname}
		if n, ok := byMAC[strings.ToLower(l.Owner)]; ok {
			nl.NIC, nl.Instance = n.ID, n.Instance
		}
		out = append(out, nl)
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}
