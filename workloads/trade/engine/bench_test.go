package engine

import (
	"fmt"
	"testing"

	"github.com/finvirt/finvirt/workloads/trade/book"
)

// BenchmarkEnginePlace is the in-process engine cost per order (decimal
// parsing, records, client-id map; no journal, no HTTP).
func BenchmarkEnginePlace(b *testing.B) {
	e, _ := New(testConfig())
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprint("c", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		side := book.Side(i % 2)
		if _, err := e.Place(lim(ids[i], "a", "AAPL", side, "100.00", 10)); err != nil {
			b.Fatal(err)
		}
	}
}
