package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

const (
	segPrefix  = "journal-"
	segSuffix  = ".log"
	snapPrefix = "snapshot-"
	snapSuffix = ".snap"
	snapMagic  = "REMITSN1"
)

// SegmentName is the file name of segment seq.
func SegmentName(seq uint64) string { return fmt.Sprintf("%s%016d%s", segPrefix, seq, segSuffix) }

// SnapshotName is the file name of the snapshot holding the state before segment seq.
func SnapshotName(seq uint64) string { return fmt.Sprintf("%s%016d%s", snapPrefix, seq, snapSuffix) }

// PreallocChunk is how much zeroed space a segment grows by at a time; 0
// disables preallocation (plain appends, every sync a full fsync).
// Writing into already-allocated, already-written blocks lets Sync use
// fdatasync without a metadata (journal) commit per batch.
var PreallocChunk int64 = 8 << 20

// Log appends records to the current segment. Not safe for concurrent use:
// the engine's writer goroutine owns it.
type Log struct {
	dir       string
	f         *os.File
	seq       uint64
	size      int64 // logical end: where the next record goes
	alloc     int64 // file length (zero-filled beyond size)
	grew      bool  // the file length changed since the last full fsync
	noSync    bool
	zeroChunk []byte
	ext       chan error // background preallocation in flight
	extTo     int64      // file length once it completes
}

// Seq is the current segment number.
func (l *Log) Seq() uint64 { return l.seq }

// Size is the current segment's length in bytes.
func (l *Log) Size() int64 { return l.size }

// Write appends already-framed records (no fsync). The zero-filled
// preallocation is grown in the background half a chunk ahead of need, so a
// batch normally never waits for it; only a write that outruns it extends
// synchronously.
func (l *Log) Write(b []byte) error {
	if PreallocChunk <= 0 {
		n, err := l.f.WriteAt(b, l.size)
		l.size += int64(n)
		l.alloc, l.grew = l.size, true
		if err != nil {
			return fmt.Errorf("journal: appending to %s: %w", l.f.Name(), err)
		}
		return nil
	}
	l.pollExtend(false)
	if l.size+int64(len(b)) > l.alloc {
		l.pollExtend(true)
		for l.size+int64(len(b)) > l.alloc {
			if _, err := l.f.WriteAt(l.zeros(), l.alloc); err != nil {
				return fmt.Errorf("journal: preallocating %s: %w", l.f.Name(), err)
			}
			l.alloc += PreallocChunk
			l.grew = true
		}
	}
	n, err := l.f.WriteAt(b, l.size)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("journal: appending to %s: %w", l.f.Name(), err)
	}
	if l.ext == nil && l.alloc-l.size < PreallocChunk/2 {
		l.startExtend()
	}
	return nil
}

func (l *Log) zeros() []byte {
	if int64(len(l.zeroChunk)) != PreallocChunk {
		l.zeroChunk = make([]byte, PreallocChunk)
	}
	return l.zeroChunk
}

// startExtend zero-fills the next chunk past the file end and makes the new
// length durable, concurrently with appends below the old end (disjoint
// ranges of the same file).
func (l *Log) startExtend() {
	f, at, z, noSync := l.f, l.alloc, l.zeros(), l.noSync
	ch := make(chan error, 1)
	l.ext, l.extTo = ch, at+PreallocChunk
	go func() {
		_, err := f.WriteAt(z, at)
		if err == nil && !noSync {
			err = f.Sync()
		}
		ch <- err
	}()
}

// pollExtend collects a finished background extension (waiting for it if wait).
func (l *Log) pollExtend(wait bool) {
	if l.ext == nil {
		return
	}
	var err error
	if wait {
		err = <-l.ext
	} else {
		select {
		case err = <-l.ext:
		default:
			return
		}
	}
	l.ext = nil
	if err == nil {
		l.alloc = l.extTo // already fsynced by the extender
	}
	// on error the space is simply not counted; the synchronous path retries
}

// Sync makes everything written so far durable (skipped only with noSync,
// for benchmarks): a full fsync after the file grew, fdatasync otherwise.
func (l *Log) Sync() error {
	if l.noSync {
		return nil
	}
	var err error
	if l.grew {
		err = l.f.Sync()
		l.grew = err != nil
	} else {
		err = datasync(l.f)
	}
	if err != nil {
		return fmt.Errorf("journal: fsync %s: %w", l.f.Name(), err)
	}
	return nil
}

// Rotate syncs and closes the current segment and starts segment seq+1.
func (l *Log) Rotate() error {
	l.pollExtend(true)
	if err := l.Sync(); err != nil {
		return err
	}
	if err := l.f.Close(); err != nil {
		return err
	}
	return l.openSegment(l.seq+1, true, 0)
}

// Close syncs and closes the segment.
func (l *Log) Close() error {
	if l.f == nil {
		return nil
	}
	l.pollExtend(true)
	err := l.Sync()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// openSegment opens segment seq for writing at logical offset size.
func (l *Log) openSegment(seq uint64, create bool, size int64) error {
	flags := os.O_WRONLY
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(filepath.Join(l.dir, SegmentName(seq)), flags, 0o600)
	if err != nil {
		return fmt.Errorf("journal: opening segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.seq, l.size, l.alloc, l.grew, l.ext = f, seq, size, st.Size(), false, nil
	if PreallocChunk > 0 && l.alloc-l.size < PreallocChunk/2 {
		l.startExtend() // have space ready before the first batch arrives
	}
	if create {
		return syncDir(l.dir, l.noSync)
	}
	return nil
}

// Handlers receive the recovered snapshot and records in order.
type Handlers struct {
	Snapshot func(payload []byte) error                        // called at most once, before any record
	Record   func(seg uint64, off int64, payload []byte) error // each journal record after the snapshot
}

// Recovery reports what Open found.
type Recovery struct {
	SnapshotSeq  uint64 // 0 when there was no snapshot
	Segments     int
	Records      int
	TornBytes    int64 // bytes truncated from the tail of the last segment
	TornSegment  string
	ReplayedFrom uint64
}

// Open recovers dir (creating it if missing) and returns a Log positioned to append.
func Open(dir string, noSync bool, h Handlers) (*Log, Recovery, error) {
	var rec Recovery
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("journal: creating data directory: %w", err)
	}
	snaps, segs, err := list(dir)
	if err != nil {
		return nil, rec, err
	}
	if len(snaps) > 0 {
		rec.SnapshotSeq = snaps[len(snaps)-1]
		payload, err := ReadSnapshot(filepath.Join(dir, SnapshotName(rec.SnapshotSeq)))
		if err != nil {
			return nil, rec, err
		}
		if err := h.Snapshot(payload); err != nil {
			return nil, rec, fmt.Errorf("journal: loading %s: %w", SnapshotName(rec.SnapshotSeq), err)
		}
	}
	segs = slices.DeleteFunc(segs, func(s uint64) bool { return s < rec.SnapshotSeq })
	for i := 1; i < len(segs); i++ {
		if segs[i] != segs[i-1]+1 {
			return nil, rec, fmt.Errorf("journal: segment %s is missing (found %s then %s); the data directory is incomplete", SegmentName(segs[i-1]+1), SegmentName(segs[i-1]), SegmentName(segs[i]))
		}
	}
	if len(segs) > 0 && rec.SnapshotSeq > 0 && segs[0] != rec.SnapshotSeq {
		return nil, rec, fmt.Errorf("journal: segment %s following %s is missing", SegmentName(rec.SnapshotSeq), SnapshotName(rec.SnapshotSeq))
	}
	l := &Log{dir: dir, noSync: noSync}
	var lastValid int64
	for i, seq := range segs {
		name := filepath.Join(dir, SegmentName(seq))
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, rec, fmt.Errorf("journal: reading %s: %w", name, err)
		}
		last := i == len(segs)-1
		valid, torn, err := Scan(name, data, last, func(off int64, p []byte) error {
			rec.Records++
			return h.Record(seq, off, p)
		})
		if err != nil {
			return nil, rec, err
		}
		rec.Segments++
		lastValid = valid
		if torn {
			end := int64(len(data)) // count the torn bytes, not the zeroed preallocation after them
			for end > valid && data[end-1] == 0 {
				end--
			}
			rec.TornBytes, rec.TornSegment = max(end-valid, 1), name
			if err := truncate(name, valid, noSync); err != nil {
				return nil, rec, err
			}
		}
	}
	if len(segs) == 0 {
		first := max(rec.SnapshotSeq, 1)
		if err := l.openSegment(first, true, 0); err != nil {
			return nil, rec, err
		}
	} else if err := l.openSegment(segs[len(segs)-1], false, lastValid); err != nil {
		return nil, rec, err
	}
	return l, rec, nil
}

func truncate(name string, size int64, noSync bool) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("journal: truncating torn tail of %s: %w", name, err)
	}
	if noSync {
		return nil
	}
	return f.Sync()
}

func list(dir string) (snaps, segs []uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: listing %s: %w", dir, err)
	}
	for _, e := range ents {
		n := e.Name()
		var seq uint64
		switch {
		case strings.HasSuffix(n, ".tmp"):
			os.Remove(filepath.Join(dir, n)) // an interrupted snapshot write
		case strings.HasPrefix(n, segPrefix) && strings.HasSuffix(n, segSuffix):
			if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(n, segPrefix), segSuffix), "%d", &seq); err == nil {
				segs = append(segs, seq)
			}
		case strings.HasPrefix(n, snapPrefix) && strings.HasSuffix(n, snapSuffix):
			if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(n, snapPrefix), snapSuffix), "%d", &seq); err == nil {
				snaps = append(snaps, seq)
			}
		}
	}
	slices.Sort(snaps)
	slices.Sort(segs)
	return snaps, segs, nil
}

// WriteSnapshot durably stores payload as the state before segment seq
// (temp file, fsync, rename, fsync dir), then deletes the segments and
// snapshots it supersedes.
func WriteSnapshot(dir string, seq uint64, payload []byte, noSync bool) error {
	final := filepath.Join(dir, SnapshotName(seq))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: creating snapshot: %w", err)
	}
	hdr := make([]byte, len(snapMagic)+12)
	copy(hdr, snapMagic)
	binary.LittleEndian.PutUint64(hdr[len(snapMagic):], uint64(len(payload)))
	binary.LittleEndian.PutUint32(hdr[len(snapMagic)+8:], crc32.Checksum(payload, castagnoli))
	_, err = f.Write(hdr)
	if err == nil {
		_, err = f.Write(payload)
	}
	if err == nil && !noSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(dir, noSync)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: writing snapshot %s: %w", final, err)
	}
	snaps, segs, err := list(dir)
	if err != nil {
		return err
	}
	for _, s := range segs {
		if s < seq {
			os.Remove(filepath.Join(dir, SegmentName(s)))
		}
	}
	for _, s := range snaps {
		if s < seq {
			os.Remove(filepath.Join(dir, SnapshotName(s)))
		}
	}
	return syncDir(dir, noSync)
}

// ReadSnapshot reads and verifies a snapshot file.
func ReadSnapshot(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("journal: reading snapshot: %w", err)
	}
	h := len(snapMagic) + 12
	if len(data) < h || string(data[:len(snapMagic)]) != snapMagic {
		return nil, &CorruptError{File: name, Offset: 0, Reason: "bad snapshot header"}
	}
	n := binary.LittleEndian.Uint64(data[len(snapMagic):])
	if n != uint64(len(data)-h) {
		return nil, &CorruptError{File: name, Offset: int64(len(snapMagic)), Reason: fmt.Sprintf("snapshot length %d does not match file size", n)}
	}
	if crc32.Checksum(data[h:], castagnoli) != binary.LittleEndian.Uint32(data[len(snapMagic)+8:]) {
		return nil, &CorruptError{File: name, Offset: int64(h), Reason: "snapshot CRC32C mismatch"}
	}
	return data[h:], nil
}

func syncDir(dir string, noSync bool) error {
	if noSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return fmt.Errorf("journal: fsync directory %s: %w", dir, err)
	}
	return nil
}
