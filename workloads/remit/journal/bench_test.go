package journal

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkDurableCommit compares the two storage engines for the ledger's
// write path in the same run: append + fsync of this journal versus a bbolt
// transaction that stores the transfer and rewrites both account balances
// (what a ledger kept directly in bbolt must do), committed with fsync.
// b.N counts transfers; batch = transfers per durable commit.
//
//	go test -run XXX -bench BenchmarkDurableCommit -benchtime 20000x ./workloads/remit/journal/
func BenchmarkDurableCommit(b *testing.B) {
	if v := os.Getenv("REMIT_PREALLOC"); v != "" { // A/B: REMIT_PREALLOC=0 disables preallocation
		PreallocChunk, _ = strconv.ParseInt(v, 10, 64)
	}
	for _, batch := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("journal/batch=%d", batch), func(b *testing.B) { benchJournal(b, batch) })
		b.Run(fmt.Sprintf("bbolt/batch=%d", batch), func(b *testing.B) { benchBolt(b, batch) })
	}
}

const benchAccounts = 100_000

// transferRecord is a realistic encoded transfer (~70 bytes, like ledger.AppendEntry).
func transferRecord(buf []byte, i int, rng *rand.Rand) []byte {
	buf = append(buf, 2)
	buf = binary.AppendVarint(buf, time.Now().UnixNano())
	buf = binary.AppendUvarint(buf, 1)
	buf = fmt.Appendf(buf, "\x0at%09d\x0aacc-%06d\x0aacc-%06d", i, rng.Intn(benchAccounts), rng.Intn(benchAccounts))
	buf = binary.AppendVarint(buf, int64(rng.Intn(100000)))
	return append(buf, "\x03EUR\x00\x00\x00"...)
}

func benchJournal(b *testing.B, batch int) {
	dir := b.TempDir()
	l, _, err := Open(dir, false, Handlers{Record: func(uint64, int64, []byte) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rng := rand.New(rand.NewSource(1))
	var buf []byte
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		var s int
		buf, s = BeginRecord(buf[:0])
		for j := i; j < i+batch && j < b.N; j++ {
			buf = transferRecord(buf, j, rng)
		}
		FinishRecord(buf, s)
		if err := l.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transfers/s")
}

func benchBolt(b *testing.B, batch int) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	acct := make([]byte, 48)
	err = db.Update(func(tx *bolt.Tx) error {
		ab, _ := tx.CreateBucket([]byte("accounts"))
		tx.CreateBucket([]byte("transfers"))
		for i := 0; i < benchAccounts; i++ {
			if err := ab.Put(fmt.Appendf(nil, "acc-%06d", i), acct); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	var rec []byte
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		err := db.Update(func(tx *bolt.Tx) error {
			ab, tb := tx.Bucket([]byte("accounts")), tx.Bucket([]byte("transfers"))
			for j := i; j < i+batch && j < b.N; j++ {
				rec = transferRecord(rec[:0], j, rng)
				if err := tb.Put(fmt.Appendf(nil, "t%09d", j), rec); err != nil {
					return err
				}
				for _, a := range []int{rng.Intn(benchAccounts), rng.Intn(benchAccounts)} {
					k := fmt.Appendf(nil, "acc-%06d", a)
					v := append([]byte(nil), ab.Get(k)...)
					binary.LittleEndian.PutUint64(v, binary.LittleEndian.Uint64(v)+1)
					if err := ab.Put(k, v); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "transfers/s")
}
