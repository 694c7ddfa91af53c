package loadgen

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReportFormats(t *testing.T) {
	res := &Result{Mode: "open", Rate: 100, Workers: 3, Elapsed: 2 * time.Second, Requests: 200, OK: 190,
		Errors: map[string]uint64{"exceeds_credits": 7, "timeout": 3}, Late: 4, Latency: NewHistogram(), Service: NewHistogram()}
	for i := 1; i <= 200; i++ {
		res.Latency.Record(int64(i) * int64(time.Millisecond))
		res.Service.Record(int64(i) * int64(time.Microsecond))
	}
	rep := NewReport("remit", "http://x", res)
	rep.Figures["transfers_acked"] = 190
	rep.AddCheck("bank", true, "ok")
	rep.AddCheck("transfers", false, "1 missing")
	var txt bytes.Buffer
	rep.WriteText(&txt)
	for _, want := range []string{"100.0 req/s", "4 sends late", "errors    exceeds_credits=7 timeout=3", "check PASS bank", "check FAIL transfers: 1 missing", "result    FAILED"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Passed || back.Latency.P99 < 198 || back.Latency.P99 > 200 || back.Errors["timeout"] != 3 || back.ReqPerSec != 100 {
		t.Fatalf("json round trip: %+v", back)
	}
}
