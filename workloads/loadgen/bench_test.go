package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkOverheadTrivialHandler measures the highest request rate the
// generator sustains against a trivial in-process handler (generator and
// server share the CPUs, so this is a lower bound on loadgen's capacity).
func BenchmarkOverheadTrivialHandler(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	c := NewClient(srv.URL, 10*time.Second)
	op := func(ctx context.Context, _ int) string {
		_, err := c.Do(ctx, "GET", "/", nil, nil, nil)
		return Kind(err)
	}
	for _, conc := range []int{8, 64} {
		b.Run(fmt.Sprintf("closed-%d", conc), func(b *testing.B) {
			res, err := Run(context.Background(), Config{Concurrency: conc, Duration: 2 * time.Second}, op)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Throughput(), "req/s")
			b.ReportMetric(float64(res.Latency.Quantile(0.99))/1e6, "p99-ms")
		})
	}
	for _, rate := range []float64{5000, 10000, 20000} {
		b.Run(fmt.Sprintf("open-%.0f", rate), func(b *testing.B) {
			res, err := Run(context.Background(), Config{Rate: rate, Duration: 2 * time.Second}, op)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.Throughput(), "req/s")
			b.ReportMetric(float64(res.Late)/float64(max(res.Requests, 1))*100, "late-%")
			b.ReportMetric(float64(res.Latency.Quantile(0.5))/1e6, "p50-ms")
			b.ReportMetric(float64(res.Latency.Quantile(0.99))/1e6, "p99-ms")
		})
	}
}

// BenchmarkHistogramRecord is the per-sample recording cost.
func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	for i := 0; i < b.N; i++ {
		h.Record(int64(i) * 997)
	}
}
