// Package audit keeps finvirt's tamper-evident audit log: an append-only sequence of
// records in the state store, each carrying the SHA-256 of its predecessor's hash and its
// own canonical form. Changing, deleting or reordering any record breaks the chain at the
// first record touched, which Verify names.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/store"
)

const (
	// Prefix holds the records, keyed by zero-padded sequence number so key order is
	// sequence order.
	Prefix  = "audit/r/"
	headKey = "audit/head"
	// GenesisHash is the "previous hash" of the first record.
	GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"
)

type head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Key is the store key of record seq.
func Key(seq uint64) string { return fmt.Sprintf("%s%020d", Prefix, seq) }

// Canonical is the byte form a record's hash covers: its JSON with the hash left empty and
// the time in UTC. encoding/json writes struct fields in declaration order, so the form is
// stable.
func Canonical(r api.AuditRecord) []byte {
	r.Hash = ""
	r.Time = r.Time.UTC()
	b, _ := json.Marshal(r)
	return b
}

// HashOf computes the chained hash of r (which must carry PrevHash).
func HashOf(r api.AuditRecord) string {
	h := sha256.New()
	h.Write([]byte(r.PrevHash))
	h.Write([]byte{'\n'})
	h.Write(Canonical(r))
	return hex.EncodeToString(h.Sum(nil))
}

// Append adds r to the log inside tx, so the record commits atomically with the change it
// describes. It fills in Seq, PrevHash and Hash and returns the stored record.
func Append(tx store.Tx, r api.AuditRecord) (api.AuditRecord, error) {
	h := head{Hash: GenesisHash}
	if e, err := tx.Get(headKey); err == nil {
		if err := json.Unmarshal(e.Value, &h); err != nil {
			return r, fmt.Errorf("audit head is corrupt: %w (run 'finvirt audit verify')", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return r, err
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	r.Seq = h.Seq + 1
	r.PrevHash = h.Hash
	r.Hash = HashOf(r)
	b, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	if err := tx.Create(Key(r.Seq), b); err != nil {
		return r, fmt.Errorf("append audit record %d: %w", r.Seq, err)
	}
	hb, _ := json.Marshal(head{Seq: r.Seq, Hash: r.Hash})
	if err := tx.Put(headKey, hb); err != nil {
		return r, err
	}
	return r, nil
}

// Verify checks the whole chain: sequence numbers contiguous from 1 and matching their keys,
// each record's PrevHash equal to its predecessor's Hash, each Hash equal to the recomputed
// one, and the head naming the last record (so a deleted tail is caught too).
func Verify(entries []store.Entry, headEntry *store.Entry) api.AuditVerifyResult {
	res := api.AuditVerifyResult{CheckedAt: time.Now().UTC().Format(time.RFC3339)}
	prev := GenesisHash
	var want uint64 = 1
	bad := func(seq uint64, format string, a ...any) api.AuditVerifyResult {
		res.OK = false
		res.FirstBad = seq
		res.Problem = fmt.Sprintf("record %d: ", seq) + fmt.Sprintf(format, a...)
		return res
	}
	for _, e := range entries {
		keySeq, err := strconv.ParseUint(strings.TrimPrefix(e.Key, Prefix), 10, 64)
		if err != nil {
			return bad(want, "unexpected key %q in the audit log", e.Key)
		}
		if keySeq != want {
			return bad(want, "missing: the log jumps from record %d to %d (records deleted)", want-1, keySeq)
		}
		var r api.AuditRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return bad(keySeq, "cannot be decoded (%v): its bytes were changed", err)
		}
		if r.Seq != keySeq {
			return bad(keySeq, "holds the content of record %d: records were reordered", r.Seq)
		}
		if r.PrevHash != prev {
			return bad(keySeq, "previous-hash link broken: the record before it was changed, removed or reordered")
		}
		if got := HashOf(r); got != r.Hash {
			return bad(keySeq, "content does not match its hash: the record was changed")
		}
		prev = r.Hash
		res.Records = keySeq
		want++
	}
	if headEntry != nil {
		var h head
		if err := json.Unmarshal(headEntry.Value, &h); err != nil {
			return bad(res.Records+1, "audit head is corrupt: %v", err)
		}
		if h.Seq != res.Records || h.Hash != prev {
			return bad(res.Records+1, "missing: the head says the log ends at record %d but it ends at %d (records deleted from the end)", h.Seq, res.Records)
		}
	} else if res.Records > 0 {
		return bad(res.Records, "audit head is missing")
	}
	res.OK = true
	res.HeadHash = prev
	return res
}

// HeadKey is the store key of the chain head (exported for tools that verify a copy).
func HeadKey() string { return headKey }
