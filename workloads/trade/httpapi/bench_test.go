package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPOrders: concurrent clients POST limit orders to a real HTTP
// server whose engine journals with fsync per batch. Buys and sells cross
// at one price, so about half the orders trade.
func BenchmarkHTTPOrders(b *testing.B) {
	ts, _ := newServerB(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr}
	var seq atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			side := []string{"buy", "sell"}[i%2]
			body := fmt.Sprintf(`{"client_order_id":"h%d","account":"a%d","symbol":"AAPL","side":"%s","type":"limit","time_in_force":"gtc","price":"100.00","quantity":10}`, i, i%7, side)
			resp, err := client.Post(ts.URL+"/v1/orders", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}
