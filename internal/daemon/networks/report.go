package networks

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/segment"
	"github.com/finvirt/finvirt/internal/revert"
)

// The segmentation report plugs one probe endpoint into every network: a network
// namespace <prefix>-probe-<network> (bind-mounted under /run/netns) whose eth0 is one end
// of a veth pair; the other end, <prefix>p<hash>, is attached to the network's bridge as a
// NIC "<prefix>-probe-<network>" with the network's ACLs and an IPAM address, exactly like
// an instance's NIC. The probes are real packets (ICMP echo, TCP SYN) between those
// endpoints and to each gateway. Everything is removed when the report ends; a daemon that
// dies during a report removes the leftover namespaces at its next start, which destroys
// their veth pairs too (the host end cannot outlive its peer).

// newNamedNS creates a named network namespace without entering it: NewNamed switches
// the calling thread, so it runs on a locked thread that is discarded afterwards (a
// goroutine that exits while locked takes its thread with it).
func newNamedNS(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		errc <- err
	}()
	return <-errc
}

func deleteNamedNS(name string) error { return netns.DeleteNamed(name) }

func shortHash(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

type probe struct {
	nsName, hostLink, nicID string
	ep                      segment.Endpoint
}

// plugProbe builds the probe endpoint of network n. Callers hold s.mu.
func (s *subsystem) plugProbe(ctx context.Context, n networkRecord) (p *probe, err error) {
	p = &probe{nsName: s.probeNSName(n.Name), hostLink: s.prefix + "p" + shortHash(n.Name), nicID: s.prefix + "-probe-" + n.Name}
	if len(p.nicID) > 63 { // NIC ids are at most 63 bytes; network names may be 63 too
		p.nicID = s.prefix + "-probe-" + shortHash(n.Name)
	}
	rv := revert.New()
	defer rv.Fail()
	deleteNamedNS(p.nsName) // a leftover of a report interrupted in this daemon's life
	if err := newNamedNS(p.nsName); err != nil {
		return nil, fmt.Errorf("probe namespace %s: %w", p.nsName, err)
	}
	rv.Add(func() { deleteNamedNS(p.nsName) })
	probeNS := network.NetNS{Path: filepath.Join(probeNSDir, p.nsName)}
	mac := network.DeriveMAC(n.Name, "segment-probe", p.nicID)
	pfd, err := netns.GetFromPath(probeNS.Path)
	if err != nil {
		return nil, err
	}
	defer pfd.Close()
	nh, err := s.ns.Netlink()
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p.hostLink}, PeerName: "eth0", PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(pfd))}
	if err := nh.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("probe veth %s: %w", p.hostLink, err)
	}
	rv.Add(func() { nh.LinkDel(veth) })
	r, err := s.m.AttachNIC(ctx, network.NIC{ID: p.nicID, Instance: "segment-probe", Network: n.Name, MAC: mac.String(),
		HostLink: p.hostLink, SecurityGroups: groupsOf(n)})
	if err != nil {
		return nil, fmt.Errorf("probe nic on %s: %w", n.Name, err)
	}
	rv.Add(func() { s.m.DetachNIC(context.Background(), p.nicID) })
	ph, err := probeNS.Netlink()
	if err != nil {
		return nil, err
	}
	defer ph.Close()
	lo, err := ph.LinkByName("lo")
	if err == nil {
		err = ph.LinkSetUp(lo)
	}
	if err != nil {
		return nil, err
	}
	eth, err := ph.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	rn, _ := s.m.Network(n.Name)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: r.Addr.AsSlice(), Mask: net.CIDRMask(rn.Prefix.Bits(), 32)}}
	if err := ph.AddrAdd(eth, addr); err != nil {
		return nil, err
	}
	if err := ph.LinkSetUp(eth); err != nil {
		return nil, err
	}
	if err := ph.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: rn.GatewayIP.AsSlice()}); err != nil {
		return nil, fmt.Errorf("probe default route via %s: %w", rn.GatewayIP, err)
	}
	p.ep = segment.Endpoint{Network: n.Name, NIC: p.nicID, IP: r.Addr.String(), NS: probeNS}
	rv.Success()
	return p, nil
}

// unplug removes the probe: NIC (rules, lease), veth, namespace.
func (s *subsystem) unplug(p *probe) {
	ctx := context.Background()
	s.m.DetachNIC(ctx, p.nicID)
	if nh, err := s.ns.Netlink(); err == nil {
		if l, err := nh.LinkByName(p.hostLink); err == nil {
			nh.LinkDel(l)
		}
		nh.Close()
	}
	deleteNamedNS(p.nsName)
}

func (s *subsystem) handleReport(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.SegmentationReportPost
	if len(rq.Body()) > 0 {
		if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
			return err
		}
	}
	for _, p := range req.TCPPorts {
		if p < 1 || p > 65535 {
			return daemon.BadRequest("tcp port %d is out of range 1-65535", p)
		}
	}
	if req.TimeoutMS < 0 || req.TimeoutMS > 30000 {
		return daemon.BadRequest("timeout_ms %d: use 1-30000 (default 2000)", req.TimeoutMS)
	}
	if err := s.ready(); err != nil {
		return err
	}
	rep, err := s.report(r.Context(), req)
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, rep)
}

// report runs the probes with s.mu held: no network changes while the ruleset is measured,
// so the reported ruleset hash is the one the packets met.
func (s *subsystem) report(ctx context.Context, req api.SegmentationReportPost) (*api.SegmentationReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nets, err := s.networks(ctx, "")
	if err != nil {
		return nil, err
	}
	sort.Slice(nets, func(i, j int) bool { return nets[i].Name < nets[j].Name })
	projects := map[string]string{}
	var eps []segment.Endpoint
	var probes []*probe
	defer func() {
		for _, p := range probes {
			s.unplug(p)
		}
	}()
	for _, n := range nets {
		p, err := s.plugProbe(ctx, n)
		if err != nil {
			return nil, err
		}
		probes = append(probes, p)
		eps = append(eps, p.ep)
		projects[n.Name] = n.Project
	}
	digest, err := s.fw.Digest(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := segment.Run(ctx, s.m.State(), eps, segment.Options{TCPPorts: req.TCPPorts,
		Timeout: time.Duration(req.TimeoutMS) * time.Millisecond, RulesetDigest: digest,
		// Most probes of a segmented host wait out their timeout: run many at once.
		Parallel: 16})
	if err != nil {
		return nil, err
	}
	// Same JSON shape: the api type mirrors segment.Report.
	b, _ := json.Marshal(rep)
	var out api.SegmentationReport
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	if out.Networks == nil {
		out.Networks = []string{}
	}
	out.Projects = projects
	return &out, nil
}
