// Package storetest is the conformance suite every store.Store backend must pass.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/store"
)

// Run runs the suite. open returns a fresh, empty store; reopen (may be nil) closes s and
// opens the same underlying data again, for durability checks.
func Run(t *testing.T, open func(t *testing.T) store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	ctx := context.Background()
	t.Run("CRUD", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Create("a", []byte("1")) })
		e, err := s.Get(ctx, "a")
		if err != nil || string(e.Value) != "1" || e.CreateRev == 0 || e.ModRev != e.CreateRev {
			t.Fatalf("Get after create = %+v, %v", e, err)
		}
		err = s.Update(ctx, func(tx store.Tx) error { return tx.Create("a", []byte("2")) })
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("second Create: err = %v, want ErrExists", err)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("a", []byte("3")) })
		e2, _ := s.Get(ctx, "a")
		if string(e2.Value) != "3" || e2.CreateRev != e.CreateRev || e2.ModRev <= e.ModRev {
			t.Fatalf("after Put: %+v (before %+v)", e2, e)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("a") })
		if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after delete: %v", err)
		}
		err = s.Update(ctx, func(tx store.Tx) error { return tx.Delete("a") })
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Delete missing: %v, want ErrNotFound", err)
		}
	})
	t.Run("CompareAndSwap", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.CompareAndSwap("k", []byte("v1"), 0) })
		e, _ := s.Get(ctx, "k")
		err := s.Update(ctx, func(tx store.Tx) error { return tx.CompareAndSwap("k", []byte("x"), e.ModRev+100) })
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CAS with stale rev: %v, want ErrConflict", err)
		}
		mustUpdate(t, s, func(tx store.Tx) error { return tx.CompareAndSwap("k", []byte("v2"), e.ModRev) })
		if e2, _ := s.Get(ctx, "k"); string(e2.Value) != "v2" {
			t.Fatalf("CAS did not write: %q", e2.Value)
		}
		err = s.Update(ctx, func(tx store.Tx) error { return tx.CompareAndSwap("missing", []byte("x"), 5) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("CAS on missing key with rev: %v, want ErrNotFound", err)
		}
	})
	t.Run("ListAndCountByPrefix", func(t *testing.T) {
		s := open(t)
		keys := []string{"p/b", "p/a", "p/c", "q/a", "pp/x"}
		mustUpdate(t, s, func(tx store.Tx) error {
			for _, k := range keys {
				if err := tx.Put(k, []byte(k)); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.List(ctx, "p/")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Key)
		}
		if fmt.Sprint(names) != "[p/a p/b p/c]" {
			t.Fatalf("List(p/) = %v, want sorted [p/a p/b p/c]", names)
		}
		if n, _ := s.Count(ctx, "p/"); n != 3 {
			t.Fatalf("Count(p/) = %d, want 3", n)
		}
	})
	t.Run("TransactionIsAtomic", func(t *testing.T) {
		s := open(t)
		rev := s.Rev()
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx store.Tx) error {
			if err := tx.Put("x", []byte("1")); err != nil {
				return err
			}
			if got, err := tx.Get("x"); err != nil || string(got.Value) != "1" {
				t.Errorf("tx does not see its own write: %v %v", got, err)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update error = %v, want boom", err)
		}
		if _, err := s.Get(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("write of failed transaction is visible: %v", err)
		}
		if s.Rev() != rev {
			t.Fatalf("failed transaction moved the revision %d -> %d", rev, s.Rev())
		}
	})
	t.Run("ConcurrentUpdatesSerialize", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("counter", []byte("0")) })
		var wg sync.WaitGroup
		const n = 50
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Update(ctx, func(tx store.Tx) error {
					e, err := tx.Get("counter")
					if err != nil {
						return err
					}
					var v int
					fmt.Sscan(string(e.Value), &v)
					return tx.Put("counter", []byte(fmt.Sprint(v+1)))
				})
				if err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		e, _ := s.Get(ctx, "counter")
		if string(e.Value) != fmt.Sprint(n) {
			t.Fatalf("counter = %s after %d increments: lost updates", e.Value, n)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		s := open(t)
		wctx, cancel := context.WithCancel(ctx)
		ch := s.Watch(wctx, "w/")
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("other", []byte("x")) })
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("w/1", []byte("a")) })
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Delete("w/1") })
		want := []store.EventKind{store.EventPut, store.EventDelete}
		for i, k := range want {
			select {
			case ev := <-ch:
				if ev.Kind != k || ev.Entry.Key != "w/1" {
					t.Fatalf("event %d = %+v, want kind %d on w/1", i, ev, k)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no event %d", i)
			}
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("watch channel not closed after cancel")
			}
		}
	})
	t.Run("ViewIsReadOnlySnapshot", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("v/1", []byte("a")) })
		err := s.View(ctx, func(tx store.Tx) error {
			if e, err := tx.Get("v/1"); err != nil || string(e.Value) != "a" {
				t.Errorf("View Get = %+v, %v", e, err)
			}
			if tx.Put("v/2", []byte("b")) == nil {
				t.Error("Put inside View succeeded")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "v/2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("write from View is visible: %v", err)
		}
	})
	t.Run("Backup", func(t *testing.T) {
		s := open(t)
		mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("b", []byte("v")) })
		var buf bytes.Buffer
		n, err := s.Backup(ctx, &buf)
		if err != nil || n == 0 || int64(buf.Len()) != n {
			t.Fatalf("Backup = %d, %v (buffer %d)", n, err, buf.Len())
		}
	})
	if reopen != nil {
		t.Run("Durable", func(t *testing.T) {
			s := open(t)
			mustUpdate(t, s, func(tx store.Tx) error { return tx.Put("d", []byte("kept")) })
			rev := s.Rev()
			s = reopen(t, s)
			e, err := s.Get(ctx, "d")
			if err != nil || string(e.Value) != "kept" {
				t.Fatalf("after reopen: %+v %v", e, err)
			}
			if s.Rev() != rev {
				t.Fatalf("revision after reopen = %d, want %d", s.Rev(), rev)
			}
		})
	}
}

func mustUpdate(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}
