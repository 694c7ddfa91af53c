package ledger

import (
	"hash/maphash"
	"testing"
)

// TestStoreHashCollision forces the collision path: an id whose hash slot is
// already taken by another id must still be found, and rollback must remove it.
func TestStoreHashCollision(t *testing.T) {
	s := newTransferStore()
	a := s.add("a", rec{amount: 1})
	// pretend "b" hashes like "a": occupy b's slot with a's index
	s.idx[maphash.String(s.seed, "b")] = a
	b := s.add("b", rec{amount: 2})
	if len(s.coll) != 1 {
		t.Fatal("collision not diverted to the side map")
	}
	for id, want := range map[string]int32{"a": a, "b": b} {
		if got, ok := s.lookup(id); !ok || got != want {
			t.Fatalf("lookup %s = %d,%v want %d", id, got, ok, want)
		}
	}
	if _, ok := s.lookup("c"); ok {
		t.Fatal("unknown id found")
	}
	s.popLast()
	if _, ok := s.lookup("b"); ok || len(s.coll) != 0 {
		t.Fatal("rollback left b behind")
	}
	if got, ok := s.lookup("a"); !ok || got != a {
		t.Fatal("a lost")
	}
}
