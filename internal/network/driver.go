package network

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Env is what a driver is constructed with.
type Env struct {
	NS NetNS
	// LinkPrefix starts every link name a driver creates (default "fv"); Reconcile removes
	// links with this prefix that no desired network or NIC explains.
	LinkPrefix string
}

// Info is the observed state of a network on this host.
type Info struct {
	Bridge     string   `json:"bridge"`
	BridgeUp   bool     `json:"bridge_up"`
	Addresses  []string `json:"addresses"`
	Ports      []string `json:"ports"`
	VXLAN      string   `json:"vxlan,omitempty"`
	VXLANPeers []string `json:"vxlan_peers,omitempty"`
	MTU        int      `json:"mtu"`
}

// Driver puts networks on links. All operations are idempotent where the name says so and
// roll back what they did when they fail.
type Driver interface {
	// Create makes the network's links; it fails if the bridge already exists.
	Create(ctx context.Context, n ResolvedNetwork) error
	// Ensure creates or repairs the links (idempotent reconcile of one network).
	Ensure(ctx context.Context, n ResolvedNetwork) error
	Delete(ctx context.Context, n ResolvedNetwork) error
	Info(ctx context.Context, n ResolvedNetwork) (Info, error)
	// AttachNIC creates the NIC's tap (or takes nic.HostLink) and enslaves it to the bridge.
	AttachNIC(ctx context.Context, n ResolvedNetwork, nic ResolvedNIC) error
	DetachNIC(ctx context.Context, n ResolvedNetwork, nic ResolvedNIC) error
	// Reconcile makes the links match desired exactly: missing pieces are created, links
	// with the driver's prefix that nothing desired explains are removed.
	Reconcile(ctx context.Context, desired []ResolvedNetwork, nics []ResolvedNIC) error
}

// Constructor builds a driver for an environment.
type Constructor func(env Env) (Driver, error)

var (
	regMu    sync.RWMutex
	registry = map[string]Constructor{}
)

// Register makes a driver available by name; drivers call it from init.
func Register(name string, c Constructor) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("network: driver registered twice: " + name)
	}
	registry[name] = c
}

// Drivers lists the registered driver names.
func Drivers() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// NewDriver constructs a registered driver.
func NewDriver(name string, env Env) (Driver, error) {
	regMu.RLock()
	c, ok := registry[name]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: network driver %q is not known; use one of %v", ErrInvalid, name, Drivers())
	}
	if env.LinkPrefix == "" {
		env.LinkPrefix = "fv"
	}
	return c(env)
}
