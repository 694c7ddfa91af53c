package bridge_test

import (
	"context"
	"errors"
	"testing"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/nettest"
)

// failing is a service that fails its next Sync when armed: it stands in for a DHCP or
// firewall failure late in a change, to check the manager's rollback around real links.
type failing struct{ armed bool }

func (f *failing) Sync(context.Context, network.State) error {
	if f.armed {
		return errors.New("injected sync failure")
	}
	return nil
}
func (f *failing) Close() error { return nil }

func TestRollbackOnLateFailure(t *testing.T) {
	fail := &failing{}
	h := nettest.NewHost(t, func(*nettest.Host) network.Service { return fail })
	ctx := context.Background()
	links := h.Links(t)
	fail.armed = true
	if _, err := h.M.CreateNetwork(ctx, network.Network{Name: "rb", Subnet: "10.85.0.0/24"}); err == nil {
		t.Fatal("create succeeded despite the failing service")
	}
	if got := h.Links(t); got != links {
		t.Errorf("failed create left links:\n%s", got)
	}
	if _, ok := h.M.Network("rb"); ok {
		t.Error("failed create left the network in the manager")
	}
	fail.armed = false
	if _, err := h.M.CreateNetwork(ctx, network.Network{Name: "rb", Subnet: "10.85.0.0/24"}); err != nil {
		t.Fatal(err)
	}
	links, rules := h.Links(t), h.Ruleset(t)
	fail.armed = true
	if _, err := h.M.AttachNIC(ctx, network.NIC{ID: "r1", Instance: "vm", Network: "rb"}); err == nil {
		t.Fatal("attach succeeded despite the failing service")
	}
	if got := h.Links(t); got != links {
		t.Errorf("failed attach left links:\nbefore:\n%s\nafter:\n%s", links, got)
	}
	if ls, _ := h.Store.List("rb"); len(ls) != 0 {
		t.Errorf("failed attach left leases: %+v", ls)
	}
	if len(h.M.NICs()) != 0 {
		t.Error("failed attach left the NIC in the manager")
	}
	// The firewall synced before the failing service; the rollback re-applied the old state.
	if got := h.Ruleset(t); got != rules {
		t.Errorf("failed attach left its rules in the firewall:\n%s", got)
	}
	// The firewall synced before the failing service: the manager must have restored it.
	fail.armed = false
	if _, err := h.M.AttachNIC(ctx, network.NIC{ID: "r2", Instance: "vm", Network: "rb"}); err != nil {
		t.Fatal(err)
	}
	if err := h.M.DetachNIC(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if got := h.Ruleset(t); got != rules {
		t.Errorf("ruleset differs after attach+detach following a failed attach")
	}
}
