package journal

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func collect(t *testing.T, path string, opts Options) (*Journal, [][]byte, int64) {
	t.Helper()
	var got [][]byte
	j, cut, err := Open(path, opts, func(p []byte) error {
		got = append(got, bytes.Clone(p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return j, got, cut
}

func TestAppendReplay(t *testing.T) {
	for _, pol := range []SyncPolicy{SyncBatch, SyncNone} {
		t.Run(fmt.Sprint(pol), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.log")
			j, got, _ := collect(t, path, Options{Sync: pol})
			if len(got) != 0 {
				t.Fatalf("new journal replayed %d records", len(got))
			}
			var want [][]byte
			for i := 0; i < 100; i++ {
				p := []byte(fmt.Sprintf("record-%d-%s", i, bytes.Repeat([]byte("x"), i)))
				want = append(want, p)
				lsn, err := j.Append(p)
				if err != nil || lsn != uint64(i+1) {
					t.Fatalf("append %d: lsn %d err %v", i, lsn, err)
				}
			}
			if err := j.Wait(100); err != nil {
				t.Fatal(err)
			}
			j.Close()
			j2, got, cut := collect(t, path, Options{Sync: pol})
			defer j2.Close()
			if cut != 0 || len(got) != 100 {
				t.Fatalf("replayed %d records, cut %d", len(got), cut)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("record %d = %q, want %q", i, got[i], want[i])
				}
			}
			// Appending after reopen continues the LSN sequence.
			if lsn, _ := j2.Append([]byte("more")); lsn != 101 {
				t.Fatalf("lsn after reopen %d, want 101", lsn)
			}
		})
	}
}

func TestTornTailTruncated(t *testing.T) {
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		keep   int
	}{
		{"partial header", func(b []byte) []byte { return append(b, 5, 0, 0) }, 3},
		{"partial payload", func(b []byte) []byte { return append(b, 10, 0, 0, 0, 1, 2, 3, 4, 'a', 'b') }, 3},
		{"bad crc on last", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }, 2},
		{"absurd length", func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0) }, 3},
		{"clean", func(b []byte) []byte { return b }, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.log")
			j, _, _ := collect(t, path, Options{})
			for _, s := range []string{"one", "two", "three"} {
				lsn, _ := j.Append([]byte(s))
				j.Wait(lsn)
			}
			j.Close()
			b, _ := os.ReadFile(path)
			clean := len(b)
			b = c.damage(b)
			os.WriteFile(path, b, 0o644)
			j2, got, cut := collect(t, path, Options{})
			if len(got) != c.keep {
				t.Fatalf("replayed %d records, want %d", len(got), c.keep)
			}
			lsn, _ := j2.Append([]byte("after"))
			j2.Wait(lsn)
			j2.Close()
			st, _ := os.Stat(path)
			if c.keep == 3 && int64(len(b))-cut != int64(clean) {
				t.Fatalf("truncated to %d, want %d", int64(len(b))-cut, clean)
			}
			_, got, _ = collect(t, path, Options{})
			if len(got) != c.keep+1 || string(got[c.keep]) != "after" {
				t.Fatalf("after truncate+append: %d records (file %d bytes)", len(got), st.Size())
			}
		})
	}
}

func TestGroupCommitConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	j, _, _ := collect(t, path, Options{Sync: SyncBatch})
	const writers, per = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				lsn, err := j.Append([]byte(fmt.Sprintf("%d/%d", w, i)))
				if err == nil {
					err = j.Wait(lsn)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	durable, batches := j.Stats()
	j.Close()
	if durable != writers*per {
		t.Fatalf("durable %d, want %d", durable, writers*per)
	}
	if batches >= durable {
		t.Logf("no batching observed: %d batches for %d records", batches, durable)
	}
	_, got, _ := collect(t, path, Options{})
	if len(got) != writers*per {
		t.Fatalf("replayed %d", len(got))
	}
}

func TestReplayErrorStopsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.log")
	j, _, _ := collect(t, path, Options{})
	lsn, _ := j.Append([]byte("x"))
	j.Wait(lsn)
	j.Close()
	_, _, err := Open(path, Options{}, func([]byte) error { return fmt.Errorf("bad command") })
	if err == nil {
		t.Fatal("replay error ignored")
	}
}

func TestParseSyncPolicy(t *testing.T) {
	for in, want := range map[string]SyncPolicy{"batch": SyncBatch, "none": SyncNone} {
		if got, err := ParseSyncPolicy(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseSyncPolicy("always"); err == nil {
		t.Error("unknown policy accepted")
	}
}

// FuzzDecode: arbitrary bytes never panic, and Decode's notion of the
// intact prefix matches the streaming reader used by Open.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'c'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a [][]byte
		good, n := Decode(data, func(p []byte) { a = append(a, bytes.Clone(p)) })
		off, m, _ := scan(bytes.NewReader(data), func([]byte) error { return nil })
		if good != off || n != m || int(n) != len(a) || good > int64(len(data)) {
			t.Fatalf("Decode good=%d n=%d, scan off=%d m=%d", good, n, off, m)
		}
	})
}
