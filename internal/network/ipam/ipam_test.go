package ipam

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newPool(t *testing.T, store LeaseStore, start, end string) *Pool {
	t.Helper()
	var s, e netip.Addr
	if start != "" {
		s, e = netip.MustParseAddr(start), netip.MustParseAddr(end)
	}
	p, err := NewPool("n", netip.MustParsePrefix("10.0.0.0/29"), netip.MustParseAddr("10.0.0.1"), s, e, store)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocateExcludesReservedAndNeverDoubles(t *testing.T) {
	p := newPool(t, NewMemStore(), "", "")
	seen := map[string]string{}
	// /29: .0 network, .1 gateway, .7 broadcast -> .2-.6 free.
	for _, o := range []string{"a", "b", "c", "d", "e"} {
		l, err := p.Allocate(o)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := seen[l.IP]; dup {
			t.Fatalf("%s given to %s and %s", l.IP, prev, o)
		}
		seen[l.IP] = o
		if l.IP == "10.0.0.0" || l.IP == "10.0.0.1" || l.IP == "10.0.0.7" {
			t.Fatalf("reserved address %s allocated", l.IP)
		}
	}
	if _, err := p.Allocate("f"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("err = %v, want ErrExhausted", err)
	}
	if l, _ := p.Allocate("a"); l.IP != "10.0.0.2" {
		t.Errorf("re-allocating a returned %s, want its own 10.0.0.2", l.IP)
	}
	if err := p.Release("c"); err != nil {
		t.Fatal(err)
	}
	if l, err := p.Allocate("f"); err != nil || l.IP != "10.0.0.4" {
		t.Errorf("after release got %+v %v, want 10.0.0.4", l, err)
	}
}

func TestReserve(t *testing.T) {
	p := newPool(t, NewMemStore(), "10.0.0.2", "10.0.0.3")
	for _, c := range []struct {
		owner, ip string
		ok        bool
	}{
		{"a", "10.0.0.5", true},
		{"b", "10.0.0.5", false}, // taken
		{"b", "10.0.0.1", false}, // gateway
		{"b", "10.0.0.7", false}, // broadcast
		{"b", "10.0.1.2", false}, // outside
		{"a", "10.0.0.6", true},  // moves a
		{"b", "10.0.0.5", true},  // freed by the move
	} {
		_, err := p.Reserve(c.owner, netip.MustParseAddr(c.ip))
		if (err == nil) != c.ok {
			t.Errorf("reserve %s for %s: err = %v, want ok=%v", c.ip, c.owner, err, c.ok)
		}
	}
	if _, err := p.Allocate("c"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate("d"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate("e"); !errors.Is(err, ErrExhausted) {
		t.Errorf("range .2-.3 should be full, err = %v", err)
	}
}

func TestFileStorePersistsAndRenew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.json")
	fs, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	p := newPool(t, fs, "", "")
	if _, err := p.Allocate("AA:BB:CC:00:00:01"); err != nil {
		t.Fatal(err)
	}
	l, err := p.Renew("aa:bb:cc:00:00:01", time.Hour, "vm1")
	if err != nil || l.Expires.Before(time.Now().Add(59*time.Minute)) || l.Hostname != "vm1" {
		t.Fatalf("renew = %+v, %v", l, err)
	}
	fs2, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fs2.Get("n", "aa:bb:cc:00:00:01")
	if err != nil || got.IP != "10.0.0.2" || !got.Expires.Equal(l.Expires) {
		t.Errorf("reloaded %+v, %v", got, err)
	}
	if err := fs2.Delete("n", "aa:bb:cc:00:00:01"); err != nil {
		t.Fatal(err)
	}
	fs3, _ := OpenFileStore(path)
	if ls, _ := fs3.List("n"); len(ls) != 0 {
		t.Errorf("delete not persisted: %+v", ls)
	}
}

func TestExpiredDynamicReused(t *testing.T) {
	s := NewMemStore()
	p := newPool(t, s, "10.0.0.2", "10.0.0.2")
	if _, err := p.Allocate("a"); err != nil {
		t.Fatal(err)
	}
	l, _ := s.Get("n", "a")
	l.Expires = time.Now().Add(-time.Minute)
	s.Put(l)
	if got, err := p.Allocate("b"); err != nil || got.IP != "10.0.0.2" {
		t.Errorf("expired lease not reused: %+v %v", got, err)
	}
}

func FuzzOpenFileStore(f *testing.F) {
	f.Add([]byte(`[{"network":"n","owner":"aa:bb:cc:dd:ee:ff","ip":"10.0.0.2","static":true}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "l.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fs, err := OpenFileStore(path)
		if err != nil {
			return
		}
		// Whatever loaded must survive a save and reload unchanged.
		ls, _ := fs.List("n")
		if len(ls) > 0 {
			if err := fs.Put(ls[0]); err != nil {
				t.Fatal(err)
			}
			again, err := OpenFileStore(path)
			if err != nil {
				t.Fatalf("reload after save: %v", err)
			}
			if got, _ := again.List("n"); len(got) != len(ls) {
				t.Fatalf("%d leases after reload, want %d", len(got), len(ls))
			}
		}
	})
}
