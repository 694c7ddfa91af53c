package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/engine"
)

// HTTP benchmarks: a real loopback HTTP server over the real engine with
// fsync. b.N counts transfers. The client runs in the same process and
// shares the 2 cores, so these are lower bounds for a remote client.
//
//	go test -run XXX -bench BenchmarkHTTP -benchtime 200000x ./workloads/remit/httpapi/

func BenchmarkHTTPBatch(b *testing.B) {
	b.Run("accounts=100k/req=1000/clients=4", func(b *testing.B) { benchHTTP(b, 100_000, 1000, 4) })
	b.Run("hot=10/req=1000/clients=4", func(b *testing.B) { benchHTTP(b, 10, 1000, 4) })
}

func BenchmarkHTTPSingle(b *testing.B) {
	b.Run("accounts=100k/clients=64", func(b *testing.B) { benchHTTP(b, 100_000, 1, 64) })
}

func benchHTTP(b *testing.B, nAcc, perReq, clients int) {
	eng, err := engine.Open(engine.Options{Dir: b.TempDir(), SnapshotBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(eng, Options{}))
	defer func() { srv.Close(); eng.Close() }()
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	post := func(path, key string, body []byte) (int, []byte) {
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, out
	}
	for i := 0; i < nAcc; i += 5000 {
		var sb strings.Builder
		sb.WriteString(`{"accounts":[{"id":"mint","currency":"EUR"}`)
		for j := i; j < min(i+5000, nAcc); j++ {
			fmt.Fprintf(&sb, `,{"id":"acc-%06d","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`, j)
		}
		sb.WriteString("]}")
		if st, out := post("/v1/accounts/batch", "", []byte(sb.String())); st != 200 {
			b.Fatalf("%d %s", st, out)
		}
		sb.Reset()
		sb.WriteString(`{"transfers":[`)
		for j := i; j < min(i+5000, nAcc); j++ {
			if j > i {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"id":"fund-%d","debit_account_id":"mint","credit_account_id":"acc-%06d","amount":1000000000000,"currency":"EUR"}`, j, j)
		}
		sb.WriteString("]}")
		if st, out := post("/v1/transfers/batch", "", []byte(sb.String())); st != 200 || bytes.Contains(out, []byte(`"status":4`)) {
			b.Fatalf("%d %s", st, out)
		}
	}
	rng := rand.New(rand.NewSource(1))
	transfer := func(n int) string {
		d, c := rng.Intn(nAcc), rng.Intn(nAcc-1)
		if c >= d {
			c++
		}
		return fmt.Sprintf(`{"id":"t%d","debit_account_id":"acc-%06d","credit_account_id":"acc-%06d","amount":%d,"currency":"EUR"}`, n, d, c, rng.Intn(1000)+1)
	}
	nReq := (b.N + perReq - 1) / perReq
	bodies := make([][]byte, nReq)
	n := 0
	for r := range bodies {
		if perReq == 1 {
			bodies[r] = []byte(transfer(n))
			n++
			continue
		}
		var sb strings.Builder
		sb.WriteString(`{"transfers":[`)
		for j := 0; j < perReq && n < b.N; j++ {
			if j > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(transfer(n))
			n++
		}
		sb.WriteString("]}")
		bodies[r] = []byte(sb.String())
	}
	lat := make([]time.Duration, nReq)
	next := make(chan int, nReq)
	for i := range bodies {
		next <- i
	}
	close(next)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				var st int
				var out []byte
				if perReq == 1 {
					st, out = post("/v1/transfers", fmt.Sprintf("k%d", i), bodies[i])
					if st != 201 {
						b.Errorf("%d %s", st, out)
					}
				} else {
					st, out = post("/v1/transfers/batch", "", bodies[i])
					if st != 200 || bytes.Contains(out, []byte(`"status":4`)) {
						b.Errorf("%d %.300s", st, out)
					}
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/el.Seconds(), "transfers/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}
