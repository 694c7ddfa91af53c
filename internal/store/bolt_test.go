package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/store"
	"github.com/finvirt/finvirt/internal/store/storetest"
)

func openBolt(t *testing.T, path string) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBoltConformance(t *testing.T) {
	paths := map[store.Store]string{}
	storetest.Run(t,
		func(t *testing.T) store.Store {
			p := filepath.Join(t.TempDir(), "state.db")
			s := openBolt(t, p)
			paths[s] = p
			return s
		},
		func(t *testing.T, s store.Store) store.Store {
			p := paths[s]
			s.Close()
			return openBolt(t, p)
		})
}

func TestBoltRefusesSecondOpener(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	openBolt(t, p)
	// bbolt's flock makes a second daemon on the same state dir fail instead of corrupting it.
	s, err := store.OpenBolt(p, store.BoltOptions{OpenTimeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second open of a locked state database succeeded")
	}
	if !strings.Contains(err.Error(), "another finvirt daemon") {
		t.Fatalf("error does not say what to check: %v", err)
	}
}

func BenchmarkBoltCreateParallel16(b *testing.B) {
	s, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var mu sync.Mutex
	n := 0
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			n++
			k := fmt.Sprintf("obj/%08d", n)
			mu.Unlock()
			if err := s.Update(ctx, func(tx store.Tx) error { return tx.Create(k, []byte(`{"name":"x"}`)) }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
