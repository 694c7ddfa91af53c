// Package journal is an append-only command log: each record is framed as
// [length uint32][CRC-32C uint32][payload], little endian. Appends are
// group-committed by one flusher goroutine: every record appended while a
// write+fsync is in flight goes into the next batch, so one fsync covers a
// whole batch of commands. On open, a torn or corrupt tail (a crash in the
// middle of a write) is detected by length/CRC and truncated.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy int

const (
	// SyncBatch writes and fsyncs each batch before acknowledging it.
	SyncBatch SyncPolicy = iota
	// SyncNone writes each batch to the OS without fsync: survives a
	// process crash (kill -9) but not a power loss.
	SyncNone
)

// ParseSyncPolicy accepts "batch" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch s {
	case "batch":
		return SyncBatch, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("journal fsync policy %q unknown: use \"batch\" or \"none\"", s)
}

// Options configure a journal.
type Options struct {
	Sync SyncPolicy
	// MaxBatchBytes caps one write; 0 means 4 MiB.
	MaxBatchBytes int
	// Linger, if > 0, waits this long after the first record of a batch to
	// let more records join it (fewer fsyncs, higher latency).
	Linger time.Duration
}

const (
	headerSize = 8
	// MaxRecord bounds a record so a corrupt length cannot make replay
	// allocate gigabytes.
	MaxRecord = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Journal is safe for concurrent use.
type Journal struct {
	f    *os.File
	opts Options

	mu       sync.Mutex
	work     *sync.Cond // signals the flusher
	done     *sync.Cond // signals waiters
	pending  []byte
	spare    []byte
	appended uint64 // records appended (LSN of the last one)
	durable  uint64 // records written (and fsynced per policy)
	err      error  // sticky write error: the journal is dead
	closed   bool
	exited   chan struct{}
	batches  uint64
}

// ErrClosed is returned by Append/Wait after Close.
var ErrClosed = errors.New("journal: closed")

// Open opens (creating if needed) the journal at path, calls replay with
// every intact record's payload in order, truncates a torn or corrupt tail,
// and returns the journal positioned for appending. The payload slice is
// only valid during the call. It also returns the number of bytes
// truncated.
func Open(path string, opts Options, replay func(payload []byte) error) (*Journal, int64, error) {
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("journal %s: %w", path, err)
	}
	if os.IsNotExist(statErr) {
		// A new file's directory entry must be durable too, or a crash
		// could lose the whole journal along with acknowledged commands.
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("journal %s: sync directory: %w", path, err)
		}
	}
	good, n, err := scan(f, replay)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("journal %s: replay record %d: %w", path, n+1, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	cut := st.Size() - good
	if cut > 0 {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("journal %s: truncate torn tail at %d: %w", path, good, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, 0, err
		}
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 4 << 20
	}
	j := &Journal{f: f, opts: opts, appended: n, durable: n, exited: make(chan struct{})}
	j.work = sync.NewCond(&j.mu)
	j.done = sync.NewCond(&j.mu)
	go j.flusher()
	return j, cut, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// scan replays intact records and returns the offset just past the last
// one and how many there were.
func scan(r io.Reader, replay func([]byte) error) (int64, uint64, error) {
	br := newReader(r)
	var off int64
	var n uint64
	for {
		p, ok := br.next()
		if !ok {
			return off, n, nil
		}
		if err := replay(p); err != nil {
			return off, n, err
		}
		off += int64(headerSize + len(p))
		n++
	}
}

// Decode splits a journal image into intact record payloads; it stops at
// the first torn or corrupt record. Used by tools and tests that read a
// journal without opening it for append.
func Decode(data []byte, fn func(payload []byte)) (good int64, records uint64) {
	off := 0
	for len(data)-off >= headerSize {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > MaxRecord || len(data)-off-headerSize < n {
			break
		}
		p := data[off+headerSize : off+headerSize+n]
		if crc32.Checksum(p, castagnoli) != sum {
			break
		}
		fn(p)
		off += headerSize + n
		records++
	}
	return int64(off), records
}

// Append adds one record to the current batch and returns its LSN (1-based
// record number). It copies payload and never blocks on I/O, so callers may
// hold their own locks; pass the LSN to Wait for durability.
func (j *Journal) Append(payload []byte) (uint64, error) {
	if len(payload) > MaxRecord {
		return 0, fmt.Errorf("journal: record of %d bytes exceeds the %d byte limit", len(payload), MaxRecord)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	if j.closed {
		return 0, ErrClosed
	}
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	j.pending = append(j.pending, h[:]...)
	j.pending = append(j.pending, payload...)
	j.appended++
	j.work.Signal()
	return j.appended, nil
}

// Wait blocks until record lsn is written (and fsynced under SyncBatch).
func (j *Journal) Wait(lsn uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.durable < lsn && j.err == nil {
		j.done.Wait()
	}
	if j.durable >= lsn {
		return nil
	}
	return j.err
}

// Stats returns records made durable and the number of batches written.
func (j *Journal) Stats() (durable, batches uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable, j.batches
}

func (j *Journal) flusher() {
	defer close(j.exited)
	j.mu.Lock()
	for {
		for len(j.pending) == 0 && !j.closed {
			j.work.Wait()
		}
		if len(j.pending) == 0 && j.closed {
			j.mu.Unlock()
			return
		}
		if j.opts.Linger > 0 {
			j.mu.Unlock()
			time.Sleep(j.opts.Linger)
			j.mu.Lock()
		}
		buf, lsn := j.pending, j.appended
		j.pending, j.spare = j.spare[:0], nil
		j.mu.Unlock()

		err := j.write(buf)

		j.mu.Lock()
		j.spare = buf[:0]
		if err != nil {
			j.err = fmt.Errorf("journal: write failed, no further commands accepted: %w", err)
		} else {
			j.durable = lsn
			j.batches++
		}
		j.done.Broadcast()
		if err != nil {
			j.mu.Unlock()
			return
		}
	}
}

func (j *Journal) write(buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), j.opts.MaxBatchBytes)
		if _, err := j.f.Write(buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	if j.opts.Sync == SyncBatch {
		return j.f.Sync()
	}
	return nil
}

// Close flushes pending records and closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.work.Signal()
	j.mu.Unlock()
	<-j.exited
	j.mu.Lock()
	err := j.err
	j.mu.Unlock()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}
