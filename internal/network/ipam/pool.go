package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// ErrExhausted means the dynamic range has no free address.
var ErrExhausted = errors.New("address range exhausted")

// ErrTaken means the address is held by another owner.
var ErrTaken = errors.New("address already assigned")

// Pool allocates the addresses of one IPv4 subnet.
type Pool struct {
	mu         sync.Mutex
	network    string
	prefix     netip.Prefix
	gateway    netip.Addr
	start, end netip.Addr
	store      LeaseStore
}

// NewPool returns the pool of network over prefix. start/end bound dynamic allocation
// (invalid Addr: the whole subnet). Reserved addresses are always skipped.
func NewPool(network string, prefix netip.Prefix, gateway, start, end netip.Addr, store LeaseStore) (*Pool, error) {
	if !prefix.IsValid() || !prefix.Addr().Is4() || prefix.Bits() > 30 {
		return nil, fmt.Errorf("ipam: network %q: %s is not an IPv4 subnet of /30 or wider", network, prefix)
	}
	first, last := prefix.Addr().Next(), broadcast(prefix).Prev()
	if !start.IsValid() {
		start = first
	}
	if !end.IsValid() {
		end = last
	}
	if !prefix.Contains(start) || !prefix.Contains(end) || end.Less(start) {
		return nil, fmt.Errorf("ipam: network %q: range %s-%s is not inside %s", network, start, end, prefix)
	}
	if store == nil {
		store = NewMemStore()
	}
	return &Pool{network: network, prefix: prefix, gateway: gateway, start: start, end: end, store: store}, nil
}

func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	m := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])) | m
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func normOwner(o string) string { return strings.ToLower(o) }

func (p *Pool) reserved(a netip.Addr) bool {
	return a == p.prefix.Addr() || a == broadcast(p.prefix) || a == p.gateway
}

func (p *Pool) holders() (map[netip.Addr]string, error) {
	ls, err := p.store.List(p.network)
	if err != nil {
		return nil, err
	}
	m := map[netip.Addr]string{}
	for _, l := range ls {
		if a, err := netip.ParseAddr(l.IP); err == nil {
			m[a] = l.Owner
		}
	}
	return m, nil
}

// Reserve gives owner the static address a (replacing an earlier address of that owner).
func (p *Pool) Reserve(owner string, a netip.Addr) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	owner = normOwner(owner)
	if !p.prefix.Contains(a) {
		return Lease{}, fmt.Errorf("ipam: network %q: %s is outside subnet %s", p.network, a, p.prefix)
	}
	if p.reserved(a) {
		return Lease{}, fmt.Errorf("ipam: network %q: %s is the network, gateway or broadcast address", p.network, a)
	}
	h, err := p.holders()
	if err != nil {
		return Lease{}, err
	}
	if o, ok := h[a]; ok && o != owner {
		return Lease{}, fmt.Errorf("ipam: network %q: %s is held by %s: %w", p.network, a, o, ErrTaken)
	}
	l := Lease{Network: p.network, Owner: owner, IP: a.String(), Static: true}
	if old, err := p.store.Get(p.network, owner); err == nil {
		l.Expires, l.Hostname = old.Expires, old.Hostname
	}
	return l, p.store.Put(l)
}

// Allocate returns owner's address, giving it the lowest free address of the range if it
// has none. Expired dynamic leases of other owners are reused only when the range is full.
func (p *Pool) Allocate(owner string) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	owner = normOwner(owner)
	if l, err := p.store.Get(p.network, owner); err == nil {
		return l, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Lease{}, err
	}
	h, err := p.holders()
	if err != nil {
		return Lease{}, err
	}
	for a := p.start; a.IsValid() && !p.end.Less(a); a = a.Next() {
		if p.reserved(a) {
			continue
		}
		if _, taken := h[a]; !taken {
			l := Lease{Network: p.network, Owner: owner, IP: a.String()}
			return l, p.store.Put(l)
		}
	}
	ls, _ := p.store.List(p.network)
	now := time.Now()
	for _, old := range ls {
		a, _ := netip.ParseAddr(old.IP)
		if !old.Static && !old.Expires.IsZero() && old.Expires.Before(now) && !a.Less(p.start) && !p.end.Less(a) {
			if err := p.store.Delete(p.network, old.Owner); err != nil {
				return Lease{}, err
			}
			l := Lease{Network: p.network, Owner: owner, IP: old.IP}
			return l, p.store.Put(l)
		}
	}
	return Lease{}, fmt.Errorf("ipam: network %q: range %s-%s: %w", p.network, p.start, p.end, ErrExhausted)
}

// Renew extends owner's lease to now+d and records the hostname.
func (p *Pool) Renew(owner string, d time.Duration, hostname string) (Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, err := p.store.Get(p.network, normOwner(owner))
	if err != nil {
		return Lease{}, err
	}
	l.Expires = time.Now().Add(d).UTC().Truncate(time.Second)
	if hostname != "" {
		l.Hostname = hostname
	}
	return l, p.store.Put(l)
}

// Lookup returns owner's lease.
func (p *Pool) Lookup(owner string) (Lease, error) {
	return p.store.Get(p.network, normOwner(owner))
}

// Release frees owner's address.
func (p *Pool) Release(owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.store.Delete(p.network, normOwner(owner))
}

// List returns the pool's leases sorted by owner.
func (p *Pool) List() ([]Lease, error) { return p.store.List(p.network) }

// Prefix is the pool's subnet.
func (p *Pool) Prefix() netip.Prefix { return p.prefix }
