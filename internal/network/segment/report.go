package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/network"
)

// Endpoint is the probe endpoint of one network: a namespace (later a VM NIC's agent)
// whose traffic enters the network through the NIC named NIC.
type Endpoint struct {
	Network string        `json:"network"`
	NIC     string        `json:"nic"`
	IP      string        `json:"ip"`
	NS      network.NetNS `json:"-"`
}

// Options tune the probes.
type Options struct {
	TCPPorts []int         // default 22, 443, 8080
	Timeout  time.Duration // per probe, default 2s
	// RulesetDigest is recorded as the ruleset hash (firewall.Digest).
	RulesetDigest string
	Host          string // default os.Hostname
	Parallel      int    // default 8
}

// HostTarget is the To of cells probing the host (the source network's gateway address).
const HostTarget = "host"

// Probe is one probe's outcome.
type Probe struct {
	Proto   string `json:"proto"` // icmp or tcp
	Port    int    `json:"port,omitempty"`
	Reached bool   `json:"reached"`
}

// Cell is one ordered pair.
type Cell struct {
	From      string   `json:"from"`
	To        string   `json:"to"`
	Target    string   `json:"target"`
	Probes    []Probe  `json:"probes"`
	Reachable bool     `json:"reachable"`
	Explained []string `json:"explained_by,omitempty"`
	// Unexplained is true when a probe passed that no rule of the model allows: a
	// finding to investigate, not a normal state.
	Unexplained bool `json:"unexplained,omitempty"`
}

// Report is the segmentation evidence.
type Report struct {
	Timestamp   time.Time `json:"timestamp"`
	Host        string    `json:"host"`
	RulesetHash string    `json:"ruleset_sha256"`
	Networks    []string  `json:"networks"`
	TCPPorts    []int     `json:"tcp_ports"`
	Cells       []Cell    `json:"cells"`
}

// Run probes every ordered pair of endpoints and every endpoint to the host.
func Run(ctx context.Context, st network.State, eps []Endpoint, o Options) (*Report, error) {
	if len(o.TCPPorts) == 0 {
		o.TCPPorts = []int{22, 443, 8080}
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Parallel == 0 {
		o.Parallel = 8
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	nets := map[string]network.ResolvedNetwork{}
	for _, n := range st.Networks {
		nets[n.Name] = n
	}
	rep := &Report{Timestamp: time.Now().UTC(), Host: o.Host, RulesetHash: o.RulesetDigest, TCPPorts: o.TCPPorts}
	for _, e := range eps {
		if _, ok := nets[e.Network]; !ok {
			return nil, fmt.Errorf("segment: endpoint %s: network %q does not exist", e.IP, e.Network)
		}
		rep.Networks = append(rep.Networks, e.Network)
	}
	for _, src := range eps {
		for _, dst := range eps {
			if src.Network != dst.Network {
				rep.Cells = append(rep.Cells, Cell{From: src.Network, To: dst.Network, Target: dst.IP})
			}
		}
		rep.Cells = append(rep.Cells, Cell{From: src.Network, To: HostTarget, Target: nets[src.Network].GatewayIP.String()})
	}
	epOf := map[string]Endpoint{}
	for _, e := range eps {
		epOf[e.Network] = e
	}
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range rep.Cells {
		cell := &rep.Cells[i]
		src := epOf[cell.From]
		cell.Probes = append([]Probe{{Proto: "icmp"}}, tcpProbes(o.TCPPorts)...)
		for j := range cell.Probes {
			p := &cell.Probes[j]
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				var ok bool
				var err error
				if p.Proto == "icmp" {
					ok, err = pingOnce(ctx, src.NS, cell.Target, o.Timeout)
				} else {
					ok, err = tcpSYN(ctx, src.NS, cell.Target, p.Port, o.Timeout)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("segment: probe %s %s -> %s: %w", p.Proto, cell.From, cell.Target, err)
				}
				p.Reached = ok
			}()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	for i := range rep.Cells {
		c := &rep.Cells[i]
		var why []string
		for _, p := range c.Probes {
			if !p.Reached {
				continue
			}
			c.Reachable = true
			e := Explain(st, epOf[c.From], c.To, c.Target, p)
			if len(e) == 0 {
				c.Unexplained = true
			}
			why = append(why, e...)
		}
		c.Explained = uniq(why)
	}
	return rep, nil
}

func tcpProbes(ports []int) []Probe {
	var out []Probe
	for _, p := range ports {
		out = append(out, Probe{Proto: "tcp", Port: p})
	}
	return out
}

func uniq(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Explain lists the rules of the state that allow probe p from src to target: "same
// network", "group/rule" of an ingress rule on the target NIC, "dhcp"/"dns" for the host.
func Explain(st network.State, src Endpoint, to, target string, p Probe) []string {
	srcIP, _ := netip.ParseAddr(src.IP)
	if to == src.Network {
		return []string{"same network"}
	}
	if to == HostTarget {
		if p.Proto == "tcp" && p.Port == 53 {
			return []string{"host: dns"}
		}
		return nil
	}
	dstIP, _ := netip.ParseAddr(target)
	groups := map[string]network.SecurityGroup{}
	for _, g := range st.Groups {
		groups[g.Name] = g
	}
	var dstNIC, srcNIC *network.ResolvedNIC
	for i := range st.NICs {
		if st.NICs[i].Addr == dstIP {
			dstNIC = &st.NICs[i]
		}
		if st.NICs[i].Addr == srcIP {
			srcNIC = &st.NICs[i]
		}
	}
	if dstNIC == nil {
		return nil
	}
	nets := map[string]network.ResolvedNetwork{}
	for _, n := range st.Networks {
		nets[n.Name] = n
	}
	members := func(g string) []netip.Addr {
		var out []netip.Addr
		for _, n := range st.NICs {
			for _, sg := range n.SecurityGroups {
				if sg == g {
					out = append(out, n.Addr)
				}
			}
		}
		return out
	}
	var out []string
	for _, gname := range dstNIC.SecurityGroups {
		for _, r := range groups[gname].Rules {
			if r.Direction == network.Ingress && ruleMatches(r, srcIP, p, nets, members) {
				out = append(out, gname+"/"+r.ID)
			}
		}
	}
	if len(out) == 0 || srcNIC == nil {
		return out
	}
	// With egress rules on the source NIC, one of them must allow the probe too.
	var egress, egOK []string
	for _, gname := range srcNIC.SecurityGroups {
		for _, r := range groups[gname].Rules {
			if r.Direction != network.Egress {
				continue
			}
			egress = append(egress, r.ID)
			if ruleMatches(r, dstIP, p, nets, members) {
				egOK = append(egOK, gname+"/"+r.ID)
			}
		}
	}
	if len(egress) > 0 {
		if len(egOK) == 0 {
			return nil
		}
		out = append(out, egOK...)
	}
	return out
}

func ruleMatches(r network.Rule, peer netip.Addr, p Probe, nets map[string]network.ResolvedNetwork, members func(string) []netip.Addr) bool {
	switch r.Protocol {
	case "icmp":
		if p.Proto != "icmp" {
			return false
		}
	case "tcp":
		if p.Proto != "tcp" {
			return false
		}
		if len(r.Ports) > 0 {
			ok := false
			for _, s := range r.Ports {
				pr, err := network.ParsePort(s)
				if err == nil && p.Port >= int(pr.From) && p.Port <= int(pr.To) {
					ok = true
				}
			}
			if !ok {
				return false
			}
		}
	case "udp":
		return false
	}
	if len(r.CIDRs)+len(r.Networks)+len(r.Groups) == 0 {
		return true
	}
	for _, c := range r.CIDRs {
		if pf, err := netip.ParsePrefix(c); err == nil && pf.Contains(peer) {
			return true
		}
		if a, err := netip.ParseAddr(c); err == nil && a == peer {
			return true
		}
	}
	for _, n := range r.Networks {
		if rn, ok := nets[n]; ok && rn.Prefix.Contains(peer) {
			return true
		}
	}
	for _, g := range r.Groups {
		for _, a := range members(g) {
			if a == peer {
				return true
			}
		}
	}
	return false
}

// JSON renders the report for archiving.
func (r *Report) JSON() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

// Text renders the matrix as a table: rows are sources, columns destinations; a cell lists
// what passed ("icmp", "tcp/8080") or "-" when everything was blocked.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Network segmentation report (PCI DSS 11.4.5/11.4.6)\n")
	fmt.Fprintf(&b, "time: %s  host: %s\nruleset sha256: %s\nprobes: icmp echo, tcp syn to %v\n\n",
		r.Timestamp.Format(time.RFC3339), r.Host, r.RulesetHash, r.TCPPorts)
	cols := append(append([]string{}, r.Networks...), HostTarget)
	cell := map[[2]string]Cell{}
	for _, c := range r.Cells {
		cell[[2]string{c.From, c.To}] = c
	}
	w := 12
	for _, c := range cols {
		w = max(w, len(c)+2)
	}
	fmt.Fprintf(&b, "%-*s", w, "from \\ to")
	for _, c := range cols {
		fmt.Fprintf(&b, "%-*s", w, c)
	}
	b.WriteString("\n")
	for _, from := range r.Networks {
		fmt.Fprintf(&b, "%-*s", w, from)
		for _, to := range cols {
			s := "-"
			if from == to {
				s = "(same)"
			} else if c, ok := cell[[2]string{from, to}]; ok && c.Reachable {
				var parts []string
				for _, p := range c.Probes {
					if p.Reached {
						if p.Proto == "icmp" {
							parts = append(parts, "icmp")
						} else {
							parts = append(parts, fmt.Sprintf("tcp/%d", p.Port))
						}
					}
				}
				s = strings.Join(parts, ",")
				if c.Unexplained {
					s += "!"
				}
			}
			fmt.Fprintf(&b, "%-*s", w, s)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nAllowed paths and the rules that allow them:\n")
	n := 0
	for _, c := range r.Cells {
		if !c.Reachable {
			continue
		}
		n++
		why := strings.Join(c.Explained, ", ")
		if c.Unexplained {
			why += " UNEXPLAINED (a probe passed that no rule allows)"
		}
		fmt.Fprintf(&b, "  %s -> %s (%s): %s\n", c.From, c.To, c.Target, why)
	}
	if n == 0 {
		b.WriteString("  none: every network is isolated from every other and from the host\n")
	}
	return b.String()
}
