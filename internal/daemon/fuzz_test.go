package daemon

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/finvirt/finvirt/api"
)

// FuzzDecodeRequests feeds arbitrary bytes to the strict request decoder for every request
// type: it must never panic, must answer an *apiError with a 400 when it refuses, and what
// it accepts must survive a re-encode unchanged.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range []string{
		`{"name":"bank","limits":{"instances":10,"memory":68719476736}}`,
		`{"name":"x","colour":"red"}`,
		`{"description":"d","protected":false,"limits":{"disk":1}}`,
		`{"identity":"alice","role":"operator","project":"bank","expires_in":"720h"}`,
		`{"name":5}`, `[]`, `null`, `{"name":"a"}{"name":"b"}`, "\xff", `{"limits":{"vcpus":1e400}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range []func() any{
			func() any { return &api.ProjectsPost{} },
			func() any { return &api.ProjectPatch{} },
			func() any { return &api.TokensPost{} },
			func() any { return &api.CertificatesPost{} },
			func() any { return &api.ApprovalDecision{} },
			func() any { return &api.BackupsPost{} },
		} {
			v := mk()
			err := decodeJSON(data, v)
			if err != nil {
				ae, ok := err.(*apiError)
				if !ok || ae.status != 400 || ae.msg == "" {
					t.Fatalf("decode error is not a precise 400: %#v", err)
				}
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("accepted value does not encode: %v", err)
			}
			w := mk()
			if err := decodeJSON(b, w); err != nil {
				t.Fatalf("re-encoded value %s refused: %v", b, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("round trip changed %#v into %#v", v, w)
			}
		}
	})
}
