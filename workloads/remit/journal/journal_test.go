package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func record(payload string) []byte {
	b, start := BeginRecord(nil)
	b = append(b, payload...)
	FinishRecord(b, start)
	return b
}

// writeRecords creates a journal with n records through the real Log.
func writeRecords(t *testing.T, dir string, n int) {
	t.Helper()
	l, _, err := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Write(record(fmt.Sprintf("record-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func replay(dir string) ([]string, Recovery, error) {
	var got []string
	l, rec, err := Open(dir, false, Handlers{Record: func(_ uint64, _ int64, p []byte) error {
		got = append(got, string(p))
		return nil
	}})
	if err == nil {
		l.Close()
	}
	return got, rec, err
}

func TestTornTailIsTruncated(t *testing.T) {
	full := len(record("record-000"))
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
		want   int  // records that survive
		torn   bool // reported as torn (else: untouched free space)
	}{
		{"partial header", func(b []byte) []byte { return append(b, 1, 2, 3) }, 5, true},
		{"partial payload", func(b []byte) []byte { return append(b, record("record-999")[:full-4]...) }, 5, true},
		{"garbage final record", func(b []byte) []byte {
			r := record("record-999")
			r[len(r)-1] ^= 0xff
			return append(b, r...)
		}, 5, true},
		{"cut inside the last real record", func(b []byte) []byte { return b[:len(b)-3] }, 4, true},
		{"length field only", func(b []byte) []byte { return append(b, 40, 0, 0, 0) }, 5, true},
		{"zero-filled tail is free space", func(b []byte) []byte { return append(b, make([]byte, 4096)...) }, 5, false},
	} {
		for _, prealloc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/prealloc=%v", tc.name, prealloc), func(t *testing.T) {
				dir := t.TempDir()
				writeRecords(t, dir, 5)
				name := filepath.Join(dir, SegmentName(1))
				data, _ := os.ReadFile(name)
				mut := tc.mutate(append([]byte(nil), data[:5*full]...))
				if prealloc { // the crash left the rest of the zeroed preallocation behind
					mut = append(mut, make([]byte, 64<<10)...)
				}
				os.WriteFile(name, mut, 0o600)
				got, rec, err := replay(dir)
				if err != nil {
					t.Fatalf("torn tail must recover: %v", err)
				}
				if len(got) != tc.want {
					t.Fatalf("replayed %d records, want %d", len(got), tc.want)
				}
				if (rec.TornBytes > 0) != tc.torn {
					t.Fatalf("torn bytes %d, torn expected %v", rec.TornBytes, tc.torn)
				}
				// the torn bytes are gone: only zeros (free space) follow the valid records
				if after, _ := os.ReadFile(name); len(after) < tc.want*full || !allZero(after[tc.want*full:]) {
					t.Fatalf("torn bytes left behind (%d bytes, want %d valid then zeros)", len(after), tc.want*full)
				}
				// the recovered journal accepts appends and replays cleanly
				l, _, err := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
				if err != nil {
					t.Fatal(err)
				}
				l.Write(record("after"))
				l.Close()
				got, _, err = replay(dir)
				if err != nil || len(got) != tc.want+1 || got[tc.want] != "after" {
					t.Fatalf("after append: %v %v", got, err)
				}
			})
		}
	}
}

func TestCorruptionIsHardError(t *testing.T) {
	full := len(record("record-000"))
	for _, tc := range []struct {
		name    string
		offset  int64
		mutate  func(b []byte)
		segment uint64
	}{
		{"flipped payload byte in the middle", int64(2 * full), func(b []byte) { b[2*full+HeaderSize+1] ^= 1 }, 1},
		{"flipped crc in the middle", int64(full), func(b []byte) { b[full+5] ^= 1 }, 1},
		{"zero length followed by data", int64(3 * full), func(b []byte) { copy(b[3*full:], []byte{0, 0, 0, 0}) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRecords(t, dir, 5)
			name := filepath.Join(dir, SegmentName(tc.segment))
			data, _ := os.ReadFile(name)
			tc.mutate(data)
			os.WriteFile(name, data, 0o600)
			before, _ := os.ReadFile(name)
			_, _, err := replay(dir)
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("want CorruptError, got %v", err)
			}
			if ce.Offset != tc.offset || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", tc.offset)) {
				t.Fatalf("error %q does not name offset %d", err, tc.offset)
			}
			after, _ := os.ReadFile(name)
			if string(after) != string(before) {
				t.Fatal("a corrupt journal was modified")
			}
		})
	}
}

func TestTornTailOnlyInLastSegment(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(record("a"))
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Write(record("b"))
	l.Close()
	f, _ := os.OpenFile(filepath.Join(dir, SegmentName(1)), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{9, 9})
	f.Close()
	var ce *CorruptError
	if _, _, err := replay(dir); !errors.As(err, &ce) {
		t.Fatalf("partial record in a closed segment must be corruption, got %v", err)
	}
}

func TestSnapshotsAndSegments(t *testing.T) {
	dir := t.TempDir()
	l, _, err := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(record("old"))
	l.Rotate()
	l.Write(record("new"))
	l.Close()
	if err := WriteSnapshot(dir, 2, []byte("state-before-2"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SegmentName(1))); !os.IsNotExist(err) {
		t.Fatal("superseded segment kept")
	}
	var snap string
	var got []string
	l, rec, err := Open(dir, false, Handlers{
		Snapshot: func(p []byte) error { snap = string(p); return nil },
		Record:   func(_ uint64, _ int64, p []byte) error { got = append(got, string(p)); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if snap != "state-before-2" || len(got) != 1 || got[0] != "new" || rec.SnapshotSeq != 2 {
		t.Fatalf("snap %q records %v rec %+v", snap, got, rec)
	}
	// a corrupt snapshot is a hard error, not a silent fresh start
	name := filepath.Join(dir, SnapshotName(2))
	data, _ := os.ReadFile(name)
	data[len(data)-1] ^= 1
	os.WriteFile(name, data, 0o600)
	var ce *CorruptError
	if _, _, err := replay(dir); !errors.As(err, &ce) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
}

func TestMissingSegmentIsError(t *testing.T) {
	dir := t.TempDir()
	l, _, _ := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
	l.Write(record("1"))
	l.Rotate()
	l.Rotate()
	l.Close()
	os.Remove(filepath.Join(dir, SegmentName(2)))
	if _, _, err := replay(dir); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("want missing-segment error, got %v", err)
	}
}
