package fixgw

import (
	"fmt"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/latency"
)

// BenchmarkFIXRoundTrip: one real initiator session over loopback sends a
// NewOrderSingle and waits for its ExecutionReport before sending the
// next (closed loop): latency is D sent -> 8 received, including the
// journal fsync.
func BenchmarkFIXRoundTrip(b *testing.B) {
	_, _, port := startGateway(b, "BENCHGW", []string{"BENCHRT"})
	c := dial(b, port, "BENCHRT", "BENCHGW")
	defer c.stop()
	var h latency.Hist
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		c.send(b, "D", tagClOrdID, fmt.Sprint("rt", i), tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "1")
		c.next(b)
		h.Record(time.Since(t0))
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "orders/s")
	b.ReportMetric(float64(h.Quantile(.5).Microseconds()), "p50-us")
	b.ReportMetric(float64(h.Quantile(.99).Microseconds()), "p99-us")
}

// BenchmarkFIXPipelined: the initiator keeps up to window orders in
// flight (as a real order-entry client with a risk window does) and the
// benchmark ends when every ExecutionReport has arrived (throughput).
// Unbounded bursts make QuickFIX/Go v0.9's session loop spin on its
// unbuffered writer channel, which measures the library, not the gateway.
func BenchmarkFIXPipelined(b *testing.B) {
	_, _, port := startGateway(b, "BENCHGW2", []string{"BENCHPL"})
	c := dial(b, port, "BENCHPL", "BENCHGW2")
	defer c.stop()
	b.ResetTimer()
	start := time.Now()
	const window = 32
	credit := make(chan struct{}, window)
	done := make(chan struct{})
	go func() {
		for i := 0; i < b.N; i++ {
			c.next(b)
			<-credit
		}
		close(done)
	}()
	for i := 0; i < b.N; i++ {
		credit <- struct{}{}
		c.send(b, "D", tagClOrdID, fmt.Sprint("pl", i), tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "1")
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}
