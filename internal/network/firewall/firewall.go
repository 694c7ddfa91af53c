// Package firewall renders the network state into nftables over netlink: default-deny
// isolation between networks and towards the host, anti-spoofing per NIC port in the bridge
// family, security groups per NIC with counters, and NAT. Every change rebuilds the
// finvirt tables from the whole state in ONE netlink batch (delete table + add table +
// contents), so the kernel applies all of it or none of it, and the ruleset is a pure
// function of the state: a restarted daemon rebuilding from the same state yields the same
// ruleset. Large peer lists are nftables interval sets, NIC dispatch is verdict maps, so the
// number of rules does not grow with the number of addresses.
package firewall

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Firewall is a network.Service.
type Firewall struct {
	ns     network.NetNS
	prefix string
	mu     sync.Mutex
	state  network.State
}

// Option configures a Firewall.
type Option func(*Firewall)

// WithPrefix names the tables (default "finvirt"): inet PREFIX, bridge PREFIX, ip PREFIX_nat.
func WithPrefix(p string) Option { return func(f *Firewall) { f.prefix = p } }

// New returns a firewall acting in ns.
func New(ns network.NetNS, opts ...Option) *Firewall {
	f := &Firewall{ns: ns, prefix: "finvirt"}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Tables are the tables this firewall owns, as "family name".
func (f *Firewall) Tables() []string {
	return []string{"inet " + f.prefix, "bridge " + f.prefix, "ip " + f.natName()}
}

func (f *Firewall) natName() string { return f.prefix + "_nat" }

func (f *Firewall) isStray(t *nftables.Table) bool {
	if t.Name != f.prefix && !strings.HasPrefix(t.Name, f.prefix+"_") && !strings.HasPrefix(t.Name, f.prefix+"-") {
		return false
	}
	inet, br, nat := f.tables()
	for _, m := range []*nftables.Table{inet, br, nat} {
		if m.Family == t.Family && m.Name == t.Name {
			return false
		}
	}
	return true
}

func (f *Firewall) tables() (inet, br, nat *nftables.Table) {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: f.prefix},
		&nftables.Table{Family: nftables.TableFamilyBridge, Name: f.prefix},
		&nftables.Table{Family: nftables.TableFamilyIPv4, Name: f.natName()}
}

// Sync renders s and replaces the tables atomically; on error the old ruleset stays.
func (f *Firewall) Sync(ctx context.Context, s network.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, done, err := f.ns.NFT()
	if err != nil {
		return err
	}
	defer done()
	counters := f.readCounters(c)
	inet, br, nat := f.tables()
	for _, t := range []*nftables.Table{inet, br, nat} {
		// add+delete so that the delete never fails on a missing table.
		c.AddTable(t)
		c.DelTable(t)
	}
	// Strays: tables carrying the prefix that this version does not render (left by an
	// older layout or by hand) go in the same batch.
	if all, err := c.ListTables(); err == nil {
		for _, t := range all {
			if f.isStray(t) {
				c.DelTable(t)
			}
		}
	}
	if len(s.Networks) > 0 {
		r := &renderer{c: c, s: s, counters: counters}
		if err := r.render(inet, br, nat); err != nil {
			return fmt.Errorf("firewall: render: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: apply ruleset in %s (nothing changed): %w", f.ns, err)
	}
	f.state = s
	return nil
}

// Close is a no-op: the ruleset stays in the kernel until Remove or the next Sync.
func (f *Firewall) Close() error { return nil }

// Remove deletes the firewall's tables.
func (f *Firewall) Remove(ctx context.Context) error {
	return f.Sync(ctx, network.State{})
}

// RuleStats are the counters of one security group rule on one NIC.
type RuleStats struct {
	Group   string `json:"group"`
	Rule    string `json:"rule"`
	NIC     string `json:"nic"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// ACLStats reads the per-rule packet and byte counters (for `acl show`), sorted.
func (f *Firewall) ACLStats(ctx context.Context) ([]RuleStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, done, err := f.ns.NFT()
	if err != nil {
		return nil, err
	}
	defer done()
	chainNIC := map[string]string{}
	for _, n := range f.state.NICs {
		chainNIC[chainName("in_", n.ID)] = n.ID
		chainNIC[chainName("eg_", n.ID)] = n.ID
	}
	var out []RuleStats
	for key, ctr := range f.readCounters(c) {
		chain, ud, _ := strings.Cut(key, "|")
		g, r, ok := strings.Cut(ud, "/")
		if !ok {
			continue
		}
		out = append(out, RuleStats{Group: g, Rule: r, NIC: chainNIC[chain], Packets: ctr.Packets, Bytes: ctr.Bytes})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.NIC < b.NIC
	})
	return out, nil
}

// readCounters returns the counters of the rules carrying user data, keyed chain|userdata,
// so that a rebuild carries them over instead of resetting them.
func (f *Firewall) readCounters(c *nftables.Conn) map[string]expr.Counter {
	out := map[string]expr.Counter{}
	inet, _, _ := f.tables()
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return out
	}
	for _, ch := range chains {
		if ch.Table.Name != f.prefix || !(strings.HasPrefix(ch.Name, "in_") || strings.HasPrefix(ch.Name, "eg_")) {
			continue
		}
		rules, err := c.GetRules(inet, ch)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if len(r.UserData) == 0 {
				continue
			}
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					k := ch.Name + "|" + userComment(r.UserData)
					o := out[k]
					out[k] = expr.Counter{Packets: o.Packets + ctr.Packets, Bytes: o.Bytes + ctr.Bytes}
				}
			}
		}
	}
	return out
}

// RuleCount returns the number of rules in a chain of the inet table (for tests/benchmarks).
func (f *Firewall) RuleCount(chain string) (int, error) {
	c, done, err := f.ns.NFT()
	if err != nil {
		return 0, err
	}
	defer done()
	inet, _, _ := f.tables()
	rules, err := c.GetRules(inet, &nftables.Chain{Name: chain, Table: inet})
	return len(rules), err
}

func chainName(kind, id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s%08x", kind, h.Sum32())
}

// InChain / EgChain / PortChain name the per-NIC chains (documented in docs/network.md).
func InChain(nicID string) string   { return chainName("in_", nicID) }
func EgChain(nicID string) string   { return chainName("eg_", nicID) }
func PortChain(nicID string) string { return chainName("p_", nicID) }
