package claims

import (
	"encoding/json"
	"testing"
)

// The fuzz targets check that the strict decoders never panic, that a body
// they accept round-trips, and that validation never accepts an amount or
// id the rules forbid.

func FuzzDecodeFNOL(f *testing.F) {
	f.Add([]byte(`{"policy_id":"p","claimant":{"name":"A","account_id":"a"},"loss_date":"2026-01-01","claimed_amount":5,"currency":"EUR"}`))
	f.Add([]byte(`{"claimed_amount":-1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r FNOLRequest
		if e := DecodeStrict(body, &r, "FNOL"); e != nil {
			if e.Status != 400 || e.Code == "" || e.Msg == "" {
				t.Fatalf("bad rejection %+v", e)
			}
			return
		}
		if r.validate() == nil {
			if r.ClaimedAmount <= 0 || !currencyRE.MatchString(r.Currency) || (r.ID != "" && len(r.ID) > MaxClaimIDLen) {
				t.Fatalf("validate accepted %+v", r)
			}
		}
		again, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var r2 FNOLRequest
		if e := DecodeStrict(again, &r2, "FNOL"); e != nil {
			t.Fatalf("re-encoded body rejected: %v", e)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"transition","id":"c","to":"triage"},{"op":"approve","id":"c","amount":5}]}`))
	f.Add([]byte(`{"ops":[{"op":"fnol","claim":{"id":"x"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r BatchRequest
		if e := DecodeStrict(body, &r, "batch"); e != nil {
			if e.Status != 400 || e.Code == "" {
				t.Fatalf("bad rejection %+v", e)
			}
			return
		}
		s := &Service{cfg: Config{PayerAccount: "p"}}
		for i := range r.Ops {
			op, e := s.batchOp(&r.Ops[i], "hdr")
			if (op == nil) == (e == nil) {
				t.Fatalf("op %d: want exactly one of op/error, got %v %v", i, op != nil, e)
			}
		}
	})
}

func FuzzDecodeApprove(f *testing.F) {
	f.Add([]byte(`{"approver":"a","amount":10,"note":"ok"}`))
	f.Add([]byte(`{"amount":1e30}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r ApproveRequest
		if e := DecodeStrict(body, &r, "approve"); e != nil {
			if e.Status != 400 || e.Code == "" {
				t.Fatalf("bad rejection %+v", e)
			}
		}
	})
}
