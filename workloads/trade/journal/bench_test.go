package journal

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkGroupCommit: 16 goroutines append 64-byte records and wait for
// durability under SyncBatch; reports records/s and records per fsync.
func BenchmarkGroupCommit(b *testing.B) {
	j, _, err := Open(filepath.Join(b.TempDir(), "j.log"), Options{Sync: SyncBatch}, func([]byte) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := make([]byte, 64)
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			lsn, err := j.Append(rec)
			if err == nil {
				err = j.Wait(lsn)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	durable, batches := j.Stats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
	b.ReportMetric(float64(durable)/float64(max(batches, 1)), "records/fsync")
}
