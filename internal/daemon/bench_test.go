package daemon_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/audit"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	"github.com/finvirt/finvirt/internal/store"
)

// BenchmarkAPICreate measures durable project creates (fsync'd, audited) through the unix
// socket with 16 concurrent clients. Goal: >= 2,000 creates/s on a 2-core machine.
func BenchmarkAPICreate(b *testing.B) {
	td := dt.Start(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("p-%d", n.Add(1))
			if _, err := td.Local.CreateProject(ctx, api.ProjectsPost{Name: name}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkAPIList10k measures listing 10,000 projects through the API. Goal: <= 50 ms.
func BenchmarkAPIList10k(b *testing.B) {
	td := dt.Start(b)
	ctx := context.Background()
	err := td.D.Store().Update(ctx, func(tx store.Tx) error {
		for i := 0; i < 10000; i++ {
			p := api.Project{Name: fmt.Sprintf("p-%05d", i), Description: "desk", Limits: api.ProjectLimits{Instances: 10}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
			if err := tx.Put(daemon.ProjectPrefix+p.Name, daemon.EncodeProject(p)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("http", func(b *testing.B) {
		// The API's own latency: request to last byte of the JSON array.
		for i := 0; i < b.N; i++ {
			var raw []byte
			if err := td.Local.Do(ctx, "GET", "/1.0/projects", nil, &raw); err != nil || len(raw) < 10000*100 {
				b.Fatalf("list: %d bytes, %v", len(raw), err)
			}
		}
	})
	b.Run("client-decoded", func(b *testing.B) {
		// Plus decoding into []api.Project in the Go client.
		for i := 0; i < b.N; i++ {
			ps, err := td.Local.ListProjects(ctx)
			if err != nil || len(ps) != 10001 {
				b.Fatalf("list: %d, %v", len(ps), err)
			}
		}
	})
}

// BenchmarkAuditAppendCost compares a store write with and without its audit record, so
// the cost the audit chain adds per request is the difference.
func BenchmarkAuditAppendCost(b *testing.B) {
	for _, withAudit := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit=%v", withAudit), func(b *testing.B) {
			td := dt.Start(b)
			ctx := context.Background()
			rec := api.AuditRecord{Identity: "alice", Method: "POST", Action: "project.create", Target: "project/x", Outcome: api.OutcomeSuccess, Status: 201, RequestID: "0123456789abcdef01234567"}
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Sprintf("bench/%d", n.Add(1))
					err := td.D.Store().Update(ctx, func(tx store.Tx) error {
						if err := tx.Create(k, []byte(`{"name":"x"}`)); err != nil {
							return err
						}
						if withAudit {
							_, err := audit.Append(tx, rec)
							return err
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
