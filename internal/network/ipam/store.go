// Package ipam allocates IPv4 addresses of a subnet to owners (NIC MACs): static
// reservations, dynamic allocation from a range, never one address twice, never the network,
// gateway or broadcast address. Allocations persist through a LeaseStore that the daemon
// implements over its bbolt database; MemStore and FileStore serve tests and tools.
package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Lease is one address held by an owner on a network.
type Lease struct {
	Network string    `json:"network"`
	Owner   string    `json:"owner"` // MAC address, lower case
	IP      string    `json:"ip"`
	Static  bool      `json:"static"`
	Expires time.Time `json:"expires,omitempty"` // zero: no expiry (static or not yet leased)
	// Hostname is what the DHCP client sent, if anything.
	Hostname string `json:"hostname,omitempty"`
}

// ErrNotFound is returned by LeaseStore.Get for an unknown owner.
var ErrNotFound = errors.New("lease not found")

// LeaseStore persists leases; keys are (network, owner). Implementations must be safe for
// concurrent use.
type LeaseStore interface {
	Get(network, owner string) (Lease, error)
	Put(l Lease) error
	Delete(network, owner string) error
	List(network string) ([]Lease, error)
}

// MemStore is an in-memory LeaseStore.
type MemStore struct {
	mu sync.Mutex
	m  map[string]Lease
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{m: map[string]Lease{}} }

func key(network, owner string) string { return network + "\x00" + owner }

func (s *MemStore) Get(network, owner string) (Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[key(network, owner)]
	if !ok {
		return Lease{}, fmt.Errorf("network %q owner %q: %w", network, owner, ErrNotFound)
	}
	return l, nil
}

func (s *MemStore) Put(l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key(l.Network, l.Owner)] = l
	return nil
}

func (s *MemStore) Delete(network, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key(network, owner))
	return nil
}

func (s *MemStore) List(network string) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for _, l := range s.m {
		if l.Network == network {
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	return out, nil
}

// FileStore is a LeaseStore in one JSON file, rewritten atomically (temp file + rename) on
// every change: good for tests and small tools, not for thousands of leases.
type FileStore struct {
	mu   sync.Mutex
	path string
	mem  *MemStore
}

// OpenFileStore loads path (a missing file is an empty store).
func OpenFileStore(path string) (*FileStore, error) {
	fs := &FileStore{path: path, mem: NewMemStore()}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fs, nil
	} else if err != nil {
		return nil, err
	}
	var ls []Lease
	if err := json.Unmarshal(b, &ls); err != nil {
		return nil, fmt.Errorf("lease file %s is corrupt: %w", path, err)
	}
	for _, l := range ls {
		fs.mem.Put(l)
	}
	return fs, nil
}

func (s *FileStore) Get(network, owner string) (Lease, error) { return s.mem.Get(network, owner) }

func (s *FileStore) List(network string) ([]Lease, error) { return s.mem.List(network) }

func (s *FileStore) Put(l Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, oldErr := s.mem.Get(l.Network, l.Owner)
	s.mem.Put(l)
	if err := s.save(); err != nil {
		if oldErr == nil {
			s.mem.Put(old)
		} else {
			s.mem.Delete(l.Network, l.Owner)
		}
		return err
	}
	return nil
}

func (s *FileStore) Delete(network, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, oldErr := s.mem.Get(network, owner)
	s.mem.Delete(network, owner)
	if err := s.save(); err != nil {
		if oldErr == nil {
			s.mem.Put(old)
		}
		return err
	}
	return nil
}

func (s *FileStore) save() error {
	s.mem.mu.Lock()
	var all []Lease
	for _, l := range s.mem.m {
		all = append(all, l)
	}
	s.mem.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].Network != all[j].Network {
			return all[i].Network < all[j].Network
		}
		return all[i].Owner < all[j].Owner
	})
	b, err := json.MarshalIndent(all, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".leases-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	return os.Rename(tmp.Name(), s.path)
}
