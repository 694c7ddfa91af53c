package ledger

import "hash/maphash"

// Transfers are stored pointer-free so the garbage collector never scans
// them: millions of live transfers with four string headers each made GC
// marking the dominant cost of the state machine (p99 batch latency went
// from ~10 ms with GC off to >100 ms with it on). Ids live in a byte arena,
// the index is keyed by a 64-bit hash (collisions go to a small side map),
// and account ids/currency come from the account table.

const (
	chunkShift = 12 // transfers live in 4096-entry chunks so growth never copies
	arenaChunk = 1 << 20
)

// rec is the stored form of a transfer. No pointers.
type rec struct {
	id      uint64 // arena reference: chunk<<28 | offset<<8 | length
	amount  int64
	ts, upd int64
	timeout int64
	debit   int32
	credit  int32
	status  Status
	pending bool
}

type transferStore struct {
	chunks [][]rec
	n      int
	arena  [][]byte
	seed   maphash.Seed
	idx    map[uint64]int32 // hash(id) -> index
	coll   map[string]int32 // ids whose hash collided with another id
}

func newTransferStore() transferStore {
	return transferStore{seed: maphash.MakeSeed(), idx: map[uint64]int32{}, coll: map[string]int32{}}
}

func (s *transferStore) at(i int32) *rec { return &s.chunks[i>>chunkShift][i&(1<<chunkShift-1)] }

// idBytes returns the stored id without allocating.
func (s *transferStore) idBytes(r *rec) []byte {
	c, off, n := r.id>>28, (r.id>>8)&(arenaChunk-1), r.id&0xff
	return s.arena[c][off : off+n]
}

func storeID[T string | []byte](s *transferStore, id T) uint64 {
	if len(s.arena) == 0 || len(s.arena[len(s.arena)-1])+len(id) > arenaChunk {
		s.arena = append(s.arena, make([]byte, 0, arenaChunk))
	}
	c := len(s.arena) - 1
	off := len(s.arena[c])
	s.arena[c] = append(s.arena[c], id...)
	return uint64(c)<<28 | uint64(off)<<8 | uint64(len(id))
}

func (s *transferStore) lookup(id string) (int32, bool) {
	h := maphash.String(s.seed, id)
	if i, ok := s.idx[h]; ok && string(s.idBytes(s.at(i))) == id {
		return i, true
	}
	if len(s.coll) > 0 {
		i, ok := s.coll[id]
		return i, ok
	}
	return -1, false
}

// add appends r (its id must be new) and indexes it.
func (s *transferStore) add(id string, r rec) int32 {
	return insert(s, maphash.String(s.seed, id), id, r)
}

// addBytes is add for an id held in a byte slice (snapshot loading).
func (s *transferStore) addBytes(id []byte, r rec) int32 {
	return insert(s, maphash.Bytes(s.seed, id), id, r)
}

func insert[T string | []byte](s *transferStore, h uint64, id T, r rec) int32 {
	r.id = storeID(s, id)
	i := s.n
	if i>>chunkShift == len(s.chunks) {
		s.chunks = append(s.chunks, make([]rec, 0, 1<<chunkShift))
	}
	c := &s.chunks[i>>chunkShift]
	*c = append(*c, r)
	s.n++
	if _, taken := s.idx[h]; taken {
		s.coll[string(id)] = int32(i)
	} else {
		s.idx[h] = int32(i)
	}
	return int32(i)
}

// popLast removes the most recently added transfer (linked-chain rollback).
// Its id bytes stay in the arena: harmless, and rollbacks are rare.
func (s *transferStore) popLast() {
	i := int32(s.n - 1)
	id := string(s.idBytes(s.at(i)))
	h := maphash.String(s.seed, id)
	if j, ok := s.idx[h]; ok && j == i {
		delete(s.idx, h)
	} else {
		delete(s.coll, id)
	}
	s.n--
	c := &s.chunks[s.n>>chunkShift]
	*c = (*c)[:len(*c)-1]
}
