package firewall

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Digest is a SHA-256 over a normalized netlink dump of the firewall's tables (chains with
// hooks and policies, rules without counter values, sets with their elements), read back
// from the kernel: the segmentation report records it so that evidence names the exact
// ruleset it was taken under.
func (f *Firewall) Digest(ctx context.Context) (string, error) {
	c, done, err := f.ns.NFT()
	if err != nil {
		return "", err
	}
	defer done()
	h := sha256.New()
	inet, br, nat := f.tables()
	for _, t := range []*nftables.Table{inet, br, nat} {
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return "", err
		}
		var mine []*nftables.Chain
		for _, ch := range chains {
			if ch.Table.Name == t.Name {
				mine = append(mine, ch)
			}
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i].Name < mine[j].Name })
		for _, ch := range mine {
			fmt.Fprintf(h, "chain %d %s %s", t.Family, t.Name, ch.Name)
			if ch.Hooknum != nil {
				fmt.Fprintf(h, " hook %d", *ch.Hooknum)
			}
			if ch.Priority != nil {
				fmt.Fprintf(h, " prio %d", *ch.Priority)
			}
			if ch.Policy != nil {
				fmt.Fprintf(h, " policy %d", *ch.Policy)
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return "", err
			}
			for _, r := range rules {
				fmt.Fprintf(h, "\nrule %x", r.UserData)
				for _, e := range r.Exprs {
					if _, ok := e.(*expr.Counter); ok {
						fmt.Fprint(h, " counter")
						continue
					}
					fmt.Fprintf(h, " %T%+v", e, e)
				}
			}
			fmt.Fprintln(h)
		}
		sets, err := c.GetSets(t)
		if err != nil {
			continue // table absent
		}
		sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
		for _, s := range sets {
			fmt.Fprintf(h, "set %s %s %v\n", t.Name, s.Name, s.Interval)
			els, err := c.GetSetElements(s)
			if err != nil {
				return "", err
			}
			var keys []string
			for _, e := range els {
				k := fmt.Sprintf("%x/%x/%v", e.Key, e.Val, e.IntervalEnd)
				if e.VerdictData != nil {
					k += fmt.Sprintf("/%d:%s", e.VerdictData.Kind, e.VerdictData.Chain)
				}
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintln(h, k)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
