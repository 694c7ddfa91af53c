package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketKV   = []byte("kv")
	bucketMeta = []byte("meta")
	keyRev     = []byte("rev")
)

// Bolt is the embedded single-host backend on bbolt.
//
// Values are stored with a 16-byte header (create revision, mod revision). Updates go
// through bbolt's Batch, which coalesces concurrent transactions into one commit and so one
// fsync: this group commit is what makes thousands of durable API writes per second
// possible on one disk.
type Bolt struct {
	db     *bolt.DB
	rev    atomic.Int64
	closed atomic.Bool

	mu       sync.Mutex
	watchers map[*watcher]struct{}
}

type watcher struct {
	prefix string
	ch     chan Event
}

// BoltOptions tune the backend.
type BoltOptions struct {
	// MaxBatchDelay bounds how long a write waits for others to share its commit.
	MaxBatchDelay time.Duration
	// NoSync skips fsync; only for benchmarks that measure everything but the disk.
	NoSync bool
	// OpenTimeout bounds the wait for the file lock another process holds (default 5s).
	OpenTimeout time.Duration
}

// OpenBolt opens (creating if needed) a bbolt store at path.
func OpenBolt(path string, opts BoltOptions) (*Bolt, error) {
	if opts.OpenTimeout == 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout, NoSync: opts.NoSync})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w (is another finvirt daemon using this state dir?)", path, err)
	}
	if opts.MaxBatchDelay > 0 {
		db.MaxBatchDelay = opts.MaxBatchDelay
	} else {
		db.MaxBatchDelay = 2 * time.Millisecond
	}
	s := &Bolt{db: db, watchers: map[*watcher]struct{}{}}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketKV); err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := m.Get(keyRev); len(v) == 8 {
			s.rev.Store(int64(binary.BigEndian.Uint64(v)))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state database %s: %w", path, err)
	}
	return s, nil
}

func encode(createRev, modRev int64, value []byte) []byte {
	b := make([]byte, 16+len(value))
	binary.BigEndian.PutUint64(b[0:8], uint64(createRev))
	binary.BigEndian.PutUint64(b[8:16], uint64(modRev))
	copy(b[16:], value)
	return b
}

func decode(key, raw []byte) (Entry, error) {
	if len(raw) < 16 {
		return Entry{}, fmt.Errorf("state database: value of %q is corrupt (%d bytes)", key, len(raw))
	}
	v := make([]byte, len(raw)-16)
	copy(v, raw[16:])
	return Entry{
		Key:       string(key),
		CreateRev: int64(binary.BigEndian.Uint64(raw[0:8])),
		ModRev:    int64(binary.BigEndian.Uint64(raw[8:16])),
		Value:     v,
	}, nil
}

// Get implements Store.
func (s *Bolt) Get(ctx context.Context, key string) (Entry, error) {
	var e Entry
	err := s.view(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketKV).Get([]byte(key))
		if raw == nil {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		var err error
		e, err = decode([]byte(key), raw)
		return err
	})
	return e, err
}

// List implements Store.
func (s *Bolt) List(ctx context.Context, prefix string) ([]Entry, error) {
	var out []Entry
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		out, err = listBucket(tx.Bucket(bucketKV), prefix)
		return err
	})
	return out, err
}

// Count implements Store.
func (s *Bolt) Count(ctx context.Context, prefix string) (int, error) {
	n := 0
	err := s.view(func(tx *bolt.Tx) error {
		n = countBucket(tx.Bucket(bucketKV), prefix)
		return nil
	})
	return n, err
}

func (s *Bolt) view(fn func(*bolt.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.View(fn)
}

func listBucket(b *bolt.Bucket, prefix string) ([]Entry, error) {
	var out []Entry
	p := []byte(prefix)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		e, err := decode(k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func countBucket(b *bolt.Bucket, prefix string) int {
	n := 0
	p := []byte(prefix)
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		n++
	}
	return n
}

// Update implements Store.
func (s *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var events []Event
	err := s.db.Batch(func(btx *bolt.Tx) error {
		meta := btx.Bucket(bucketMeta)
		cur := int64(0)
		if v := meta.Get(keyRev); len(v) == 8 {
			cur = int64(binary.BigEndian.Uint64(v))
		}
		t := &boltTx{b: btx.Bucket(bucketKV), rev: cur + 1}
		if err := fn(t); err != nil {
			return err
		}
		if len(t.events) == 0 {
			events = nil
			return nil // read-only: no new revision
		}
		var rb [8]byte
		binary.BigEndian.PutUint64(rb[:], uint64(t.rev))
		if err := meta.Put(keyRev, rb[:]); err != nil {
			return err
		}
		events = t.events
		return nil
	})
	if err != nil {
		return err
	}
	if len(events) > 0 {
		rev := events[0].Entry.ModRev
		for {
			old := s.rev.Load()
			if rev <= old || s.rev.CompareAndSwap(old, rev) {
				break
			}
		}
		s.notify(events)
	}
	return nil
}

type boltTx struct {
	b        *bolt.Bucket
	rev      int64
	events   []Event
	readOnly bool
}

var errReadOnly = fmt.Errorf("write in a read-only view")

// View implements Store.
func (s *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	return s.view(func(btx *bolt.Tx) error {
		return fn(&boltTx{b: btx.Bucket(bucketKV), rev: s.rev.Load(), readOnly: true})
	})
}

func (t *boltTx) Rev() int64 { return t.rev }

func (t *boltTx) Get(key string) (Entry, error) {
	raw := t.b.Get([]byte(key))
	if raw == nil {
		return Entry{}, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return decode([]byte(key), raw)
}

func (t *boltTx) List(prefix string) ([]Entry, error) { return listBucket(t.b, prefix) }

func (t *boltTx) Count(prefix string) (int, error) { return countBucket(t.b, prefix), nil }

func (t *boltTx) put(key string, value []byte, createRev int64) error {
	if t.readOnly {
		return errReadOnly
	}
	if key == "" {
		return fmt.Errorf("empty key")
	}
	if err := t.b.Put([]byte(key), encode(createRev, t.rev, value)); err != nil {
		return err
	}
	v := make([]byte, len(value))
	copy(v, value)
	t.events = append(t.events, Event{Kind: EventPut, Entry: Entry{Key: key, Value: v, CreateRev: createRev, ModRev: t.rev}})
	return nil
}

func (t *boltTx) Put(key string, value []byte) error {
	createRev := t.rev
	if raw := t.b.Get([]byte(key)); raw != nil {
		if e, err := decode([]byte(key), raw); err == nil {
			createRev = e.CreateRev
		}
	}
	return t.put(key, value, createRev)
}

func (t *boltTx) Create(key string, value []byte) error {
	if t.b.Get([]byte(key)) != nil {
		return fmt.Errorf("%s: %w", key, ErrExists)
	}
	return t.put(key, value, t.rev)
}

func (t *boltTx) CompareAndSwap(key string, value []byte, expectRev int64) error {
	raw := t.b.Get([]byte(key))
	if raw == nil {
		if expectRev != 0 {
			return fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return t.put(key, value, t.rev)
	}
	e, err := decode([]byte(key), raw)
	if err != nil {
		return err
	}
	if e.ModRev != expectRev {
		return fmt.Errorf("%s changed since revision %d (now %d): %w", key, expectRev, e.ModRev, ErrConflict)
	}
	return t.put(key, value, e.CreateRev)
}

func (t *boltTx) Delete(key string) error {
	if t.readOnly {
		return errReadOnly
	}
	if t.b.Get([]byte(key)) == nil {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err := t.b.Delete([]byte(key)); err != nil {
		return err
	}
	t.events = append(t.events, Event{Kind: EventDelete, Entry: Entry{Key: key, ModRev: t.rev}})
	return nil
}

// Watch implements Store.
func (s *Bolt) Watch(ctx context.Context, prefix string) <-chan Event {
	w := &watcher{prefix: prefix, ch: make(chan Event, 1024)}
	s.mu.Lock()
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.dropWatcher(w)
	}()
	return w.ch
}

func (s *Bolt) dropWatcher(w *watcher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.watchers[w]; ok {
		delete(s.watchers, w)
		close(w.ch)
	}
}

func (s *Bolt) notify(events []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.watchers {
		for _, ev := range events {
			if len(ev.Entry.Key) < len(w.prefix) || ev.Entry.Key[:len(w.prefix)] != w.prefix {
				continue
			}
			select {
			case w.ch <- ev:
			default:
				// A watcher that cannot keep up is closed rather than silently missing
				// events; it re-lists and watches again (as with etcd compaction).
				delete(s.watchers, w)
				close(w.ch)
			}
			if _, ok := s.watchers[w]; !ok {
				break
			}
		}
	}
}

// Rev implements Store.
func (s *Bolt) Rev() int64 { return s.rev.Load() }

// Backup implements Store.
func (s *Bolt) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Close implements Store.
func (s *Bolt) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	for w := range s.watchers {
		close(w.ch)
		delete(s.watchers, w)
	}
	s.mu.Unlock()
	return s.db.Close()
}
