package storage

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

var (
	regMu   sync.RWMutex
	drivers = map[string]Driver{}
)

// Register makes a driver available by name. Drivers call it from init; registering a name
// twice is a programming error and panics, as in database/sql.
func Register(name string, d Driver) {
	regMu.Lock()
	defer regMu.Unlock()
	if d == nil {
		panic("storage: Register driver is nil")
	}
	if _, dup := drivers[name]; dup {
		panic("storage: Register called twice for driver " + name)
	}
	drivers[name] = d
}

// Load returns the driver registered under name.
func Load(name string) (Driver, error) {
	regMu.RLock()
	defer regMu.RUnlock()
	d, ok := drivers[name]
	if !ok {
		return nil, Errorf(ErrNotFound, fmt.Sprintf("storage driver %q", name),
			fmt.Sprintf("use one of %v (import the driver package to register it)", driverNamesLocked()), "is not registered")
	}
	return d, nil
}

// Drivers lists registered driver names, sorted.
func Drivers() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	return driverNamesLocked()
}

func driverNamesLocked() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CreatePool validates the config and creates a pool with the driver it names.
func CreatePool(ctx context.Context, cfg PoolConfig) (Pool, error) {
	if err := ValidateName("pool", cfg.Name); err != nil {
		return nil, err
	}
	d, err := Load(cfg.Driver)
	if err != nil {
		return nil, err
	}
	return d.Create(ctx, cfg)
}

// OpenPool opens an existing pool with the driver its config names.
func OpenPool(ctx context.Context, cfg PoolConfig) (Pool, error) {
	if err := ValidateName("pool", cfg.Name); err != nil {
		return nil, err
	}
	d, err := Load(cfg.Driver)
	if err != nil {
		return nil, err
	}
	return d.Open(ctx, cfg)
}
