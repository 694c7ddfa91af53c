package claims

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets. idx_state and counters are maintained in the same transaction as
// the claim so listing and stats never disagree with the claims themselves;
// outbox entries are written in the approval's transaction (the outbox
// pattern) and deleted in the transaction that marks the claim paid.
var (
	bClaims   = []byte("claims")
	bPolicies = []byte("policies")
	bOutbox   = []byte("outbox")
	bIdx      = []byte("idx_state")
	bCounters = []byte("counters")
	keySeq    = []byte("~outbox_seq")
	keyIDSeq  = []byte("~claim_seq")
)

// Store is the durable claims store (bbolt with fsync on every commit).
type Store struct {
	db *bolt.DB
}

// OpenStore opens or creates DIR/claims.db.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create claims data dir %s: %w", dir, err)
	}
	db, err := bolt.Open(filepath.Join(dir, "claims.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open claims store in %s: %w (is another claims process using it?)", dir, err)
	}
	// Group commit: concurrent single-claim requests share one fsync.
	db.MaxBatchDelay = 1 * time.Millisecond
	db.MaxBatchSize = 2000
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bClaims, bPolicies, bOutbox, bIdx, bCounters} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init claims store: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// OutboxEntry is a payout waiting to be acknowledged by remit.
type OutboxEntry struct {
	Seq            uint64    `json:"seq"`
	ClaimID        string    `json:"claim_id"`
	PayoutNo       int       `json:"payout_no"`
	TransferID     string    `json:"transfer_id"`
	IdempotencyKey string    `json:"idempotency_key"`
	DebitAccount   string    `json:"debit_account_id"`
	CreditAccount  string    `json:"credit_account_id"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	CreatedAt      time.Time `json:"created_at"`
}

// txn wraps a bbolt write transaction with a claim cache: a batch of ops on
// the same claim decodes it once and writes it once at flush.
type txn struct {
	tx     *bolt.Tx
	cache  map[string]*Claim
	orig   map[string]State // state on disk before this txn ("" = new)
	dirty  map[string]bool
	outbox []OutboxEntry
}

func newTxn(tx *bolt.Tx) *txn {
	return &txn{tx: tx, cache: map[string]*Claim{}, orig: map[string]State{}, dirty: map[string]bool{}}
}

// get returns the current claim (a shared pointer: callers clone before
// changing it) or nil.
func (t *txn) get(id string) (*Claim, error) {
	if c, ok := t.cache[id]; ok {
		return c, nil
	}
	v := t.tx.Bucket(bClaims).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	c := new(Claim)
	if err := json.Unmarshal(v, c); err != nil {
		return nil, fmt.Errorf("decode stored claim %q: %w", id, err)
	}
	t.cache[id] = c
	t.orig[id] = c.State
	return c, nil
}

// put replaces the claim in the cache; it is written at flush.
func (t *txn) put(c *Claim) {
	if _, seen := t.orig[c.ID]; !seen {
		t.orig[c.ID] = ""
	}
	t.cache[c.ID] = c
	t.dirty[c.ID] = true
}

func (t *txn) policy(id string) (*Policy, error) {
	v := t.tx.Bucket(bPolicies).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	p := new(Policy)
	if err := json.Unmarshal(v, p); err != nil {
		return nil, fmt.Errorf("decode stored policy %q: %w", id, err)
	}
	return p, nil
}

func (t *txn) nextClaimID() (string, error) {
	n, err := bumpCounter(t.tx.Bucket(bCounters), keyIDSeq, 1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("CLM-%010d", n), nil
}

// addOutbox queues a payout; it gets its sequence number at flush.
func (t *txn) addOutbox(e OutboxEntry) { t.outbox = append(t.outbox, e) }

// flush writes cached claims, the state index, counters and outbox entries.
func (t *txn) flush() error {
	claims := t.tx.Bucket(bClaims)
	idx := t.tx.Bucket(bIdx)
	ctr := t.tx.Bucket(bCounters)
	for id := range t.dirty {
		c, before := t.cache[id], t.orig[id]
		buf, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := claims.Put([]byte(id), buf); err != nil {
			return err
		}
		if before == c.State {
			continue
		}
		if before != "" {
			if err := idx.Delete(idxKey(before, id)); err != nil {
				return err
			}
			if _, err := bumpCounter(ctr, []byte(before), -1); err != nil {
				return err
			}
		}
		if err := idx.Put(idxKey(c.State, id), nil); err != nil {
			return err
		}
		if _, err := bumpCounter(ctr, []byte(c.State), 1); err != nil {
			return err
		}
	}
	ob := t.tx.Bucket(bOutbox)
	for i := range t.outbox {
		seq, err := bumpCounter(ctr, keySeq, 1)
		if err != nil {
			return err
		}
		t.outbox[i].Seq = uint64(seq)
		buf, err := json.Marshal(&t.outbox[i])
		if err != nil {
			return err
		}
		if err := ob.Put(seqKey(uint64(seq)), buf); err != nil {
			return err
		}
	}
	return nil
}

func idxKey(s State, id string) []byte { return []byte(string(s) + "/" + id) }

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

func bumpCounter(b *bolt.Bucket, key []byte, delta int64) (int64, error) {
	var n int64
	if v := b.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	n += delta
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	return n, b.Put(key, buf[:])
}

// readCounter reads a counter in a read transaction.
func readCounter(b *bolt.Bucket, key []byte) int64 {
	if v := b.Get(key); len(v) == 8 {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}
