// Package store is finvirt's state store: a small key/value interface with revisions,
// compare-and-swap, atomic multi-key transactions and watches.
//
// The interface is shaped after etcd's (global revision, per-key create/mod revisions,
// prefix watches, software transactions) so a multi-host backend on etcd can replace the
// embedded bbolt backend without changing callers.
package store

import (
	"context"
	"errors"
	"io"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("revision conflict")
	ErrClosed   = errors.New("store is closed")
)

// Entry is a stored value with its revisions.
type Entry struct {
	Key       string
	Value     []byte
	CreateRev int64 // store revision at which the key was created
	ModRev    int64 // store revision of the last change
}

// EventKind says what happened to a key.
type EventKind int

// Event kinds.
const (
	EventPut EventKind = iota + 1
	EventDelete
)

// Event is a change seen by a watcher.
type Event struct {
	Kind  EventKind
	Entry Entry // for deletes: the key and the revision of the delete
}

// Tx is the view a transaction function works on. Reads see the transaction's own writes.
type Tx interface {
	Get(key string) (Entry, error)
	// List returns the entries whose keys start with prefix, in key order.
	List(prefix string) ([]Entry, error)
	// Count counts the keys under prefix without decoding them.
	Count(prefix string) (int, error)
	Put(key string, value []byte) error
	// Create puts a key that must not exist yet (ErrExists otherwise).
	Create(key string, value []byte) error
	// CompareAndSwap puts value only if the key's ModRev is expectRev (ErrConflict otherwise).
	CompareAndSwap(key string, value []byte, expectRev int64) error
	// Delete removes a key; ErrNotFound if it is absent.
	Delete(key string) error
	// Rev is the revision this transaction will commit as.
	Rev() int64
}

// Store is the state store.
type Store interface {
	Get(ctx context.Context, key string) (Entry, error)
	List(ctx context.Context, prefix string) ([]Entry, error)
	Count(ctx context.Context, prefix string) (int, error)
	// Update runs fn in one atomic, durable transaction: all of its writes commit, or none
	// do when fn returns an error. fn may be run more than once (it must not have side
	// effects outside the transaction), as with etcd's STM.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only, consistent snapshot (writes fail).
	View(ctx context.Context, fn func(Tx) error) error
	// Watch streams the changes to keys under prefix made after the call. The channel is
	// closed when ctx ends or the watcher falls too far behind.
	Watch(ctx context.Context, prefix string) <-chan Event
	// Rev is the newest committed revision.
	Rev() int64
	// Backup writes a consistent copy of the whole store to w and returns its size.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// Put is a convenience for a one-key Update.
func Put(ctx context.Context, s Store, key string, value []byte) error {
	return s.Update(ctx, func(tx Tx) error { return tx.Put(key, value) })
}
