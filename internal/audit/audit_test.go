package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/audit"
	"github.com/finvirt/finvirt/internal/store"
)

func newLog(t *testing.T, n int) store.Store {
	t.Helper()
	s, err := store.OpenBolt(filepath.Join(t.TempDir(), "s.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := 0; i < n; i++ {
		err := s.Update(context.Background(), func(tx store.Tx) error {
			_, err := audit.Append(tx, api.AuditRecord{Identity: "alice", Method: "POST", Action: "project.create", Target: fmt.Sprintf("p%d", i), Outcome: api.OutcomeSuccess, Status: 201, RequestID: fmt.Sprint(i)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func verify(t *testing.T, s store.Store) api.AuditVerifyResult {
	t.Helper()
	ctx := context.Background()
	entries, err := s.List(ctx, audit.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	var hp *store.Entry
	if h, err := s.Get(ctx, audit.HeadKey()); err == nil {
		hp = &h
	}
	return audit.Verify(entries, hp)
}

func rewrite(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name      string
		tamper    func(t *testing.T, s store.Store)
		wantBad   uint64
		wantInMsg string
	}{
		{"intact", func(*testing.T, store.Store) {}, 0, ""},
		{"flipped byte", func(t *testing.T, s store.Store) {
			rewrite(t, s, func(tx store.Tx) error {
				e, _ := tx.Get(audit.Key(3))
				v := []byte(strings.Replace(string(e.Value), `"target":"p2"`, `"target":"q2"`, 1))
				return tx.Put(audit.Key(3), v)
			})
		}, 3, "changed"},
		{"corrupt json", func(t *testing.T, s store.Store) {
			rewrite(t, s, func(tx store.Tx) error {
				e, _ := tx.Get(audit.Key(2))
				e.Value[0] ^= 0xff
				return tx.Put(audit.Key(2), e.Value)
			})
		}, 2, "decoded"},
		{"deleted middle", func(t *testing.T, s store.Store) {
			rewrite(t, s, func(tx store.Tx) error { return tx.Delete(audit.Key(2)) })
		}, 2, "deleted"},
		{"deleted tail", func(t *testing.T, s store.Store) {
			rewrite(t, s, func(tx store.Tx) error { return tx.Delete(audit.Key(5)) })
		}, 5, "deleted"},
		{"swapped pair", func(t *testing.T, s store.Store) {
			rewrite(t, s, func(tx store.Tx) error {
				a, _ := tx.Get(audit.Key(2))
				b, _ := tx.Get(audit.Key(3))
				if err := tx.Put(audit.Key(2), b.Value); err != nil {
					return err
				}
				return tx.Put(audit.Key(3), a.Value)
			})
		}, 2, "reordered"},
		{"rehashed forgery", func(t *testing.T, s store.Store) {
			// An attacker who changes a record and recomputes its own hash still breaks
			// the link from the next record.
			rewrite(t, s, func(tx store.Tx) error {
				e, _ := tx.Get(audit.Key(3))
				var r api.AuditRecord
				json.Unmarshal(e.Value, &r)
				r.Identity = "mallory"
				r.Hash = audit.HashOf(r)
				b, _ := json.Marshal(r)
				return tx.Put(audit.Key(3), b)
			})
		}, 4, "link broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newLog(t, 5)
			tt.tamper(t, s)
			res := verify(t, s)
			if tt.wantBad == 0 {
				if !res.OK || res.Records != 5 {
					t.Fatalf("intact log: %+v", res)
				}
				return
			}
			if res.OK || res.FirstBad != tt.wantBad || !strings.Contains(res.Problem, tt.wantInMsg) {
				t.Fatalf("got %+v, want first bad %d mentioning %q", res, tt.wantBad, tt.wantInMsg)
			}
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	s, err := store.OpenBolt(filepath.Join(b.TempDir(), "s.db"), store.BoltOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rec := api.AuditRecord{Identity: "alice", Method: "POST", Action: "project.create", Target: "bank", Outcome: api.OutcomeSuccess, Status: 201, RequestID: "r"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Update(ctx, func(tx store.Tx) error { _, err := audit.Append(tx, rec); return err }); err != nil {
			b.Fatal(err)
		}
	}
}
