package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/finvirt/finvirt/workloads/trade/journal"
	"github.com/shopspring/decimal"
)

func newServer(t *testing.T) (*httptest.Server, *engine.Engine) { return newServerB(t) }

func newServerB(t testing.TB) (*httptest.Server, *engine.Engine) {
	t.Helper()
	cfg := engine.Config{Symbols: []engine.SymbolConfig{{Name: "AAPL", Tick: engine.DefaultTick}, {Name: "MSFT", Tick: decimal.RequireFromString("0.05")}}}
	e, _, _, err := engine.Open(cfg, t.TempDir(), journal.Options{Sync: journal.SyncBatch})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(e))
	t.Cleanup(func() { ts.Close(); e.Close() })
	return ts, e
}

func call(t *testing.T, ts *httptest.Server, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func TestOrderLifecycle(t *testing.T) {
	ts, _ := newServer(t)
	var sell, buy, got OrderJSON
	if c := call(t, ts, "POST", "/v1/orders", `{"client_order_id":"s1","account":"acct-1","symbol":"AAPL","side":"sell","type":"limit","time_in_force":"gtc","price":"101.25","quantity":100}`, &sell); c != 201 {
		t.Fatalf("place: %d", c)
	}
	if sell.Status != "new" || sell.LeavesQuantity != 100 || sell.Price != "101.25" || sell.OrderID == "" || sell.Fills == nil {
		t.Fatalf("sell %+v", sell)
	}
	if c := call(t, ts, "POST", "/v1/orders", `{"client_order_id":"b1","account":"acct-2","symbol":"AAPL","side":"buy","type":"limit","time_in_force":"ioc","price":"101.30","quantity":150}`, &buy); c != 201 {
		t.Fatalf("place: %d", c)
	}
	wantFill := FillJSON{Price: "101.25", Quantity: 100, MakerOrderID: sell.OrderID, TakerOrderID: buy.OrderID}
	if buy.Status != "canceled" || buy.FilledQuantity != 100 || buy.LeavesQuantity != 0 || buy.AvgPrice != "101.25" || len(buy.Fills) != 1 || buy.Fills[0] != wantFill {
		t.Fatalf("buy %+v", buy)
	}
	if c := call(t, ts, "GET", "/v1/orders/"+sell.OrderID, "", &got); c != 200 || got.Status != "filled" || got.FilledQuantity != 100 || len(got.Fills) != 1 {
		t.Fatalf("get %d %+v", c, got)
	}
	// Resting order: replace keeps/loses priority, then cancel.
	var r1, r2, rep, cxl OrderJSON
	call(t, ts, "POST", "/v1/orders", `{"client_order_id":"r1","account":"a","symbol":"MSFT","side":"buy","type":"limit","time_in_force":"gtc","price":"10.05","quantity":10}`, &r1)
	call(t, ts, "POST", "/v1/orders", `{"client_order_id":"r2","account":"a","symbol":"MSFT","side":"buy","type":"limit","time_in_force":"gtc","price":"10.05","quantity":10}`, &r2)
	if c := call(t, ts, "POST", "/v1/orders/"+r1.OrderID+"/replace", `{"price":"10.10","quantity":12}`, &rep); c != 200 || rep.Price != "10.10" || rep.Quantity != 12 || rep.Status != "new" {
		t.Fatalf("replace %d %+v", c, rep)
	}
	var bk BookJSON
	if c := call(t, ts, "GET", "/v1/books/MSFT?depth=5", "", &bk); c != 200 {
		t.Fatalf("book %d", c)
	}
	if len(bk.Bids) != 2 || bk.Bids[0] != (LevelJSON{"10.10", 12, 1}) || bk.Bids[1] != (LevelJSON{"10.05", 10, 1}) || len(bk.Asks) != 0 || bk.Sequence != 3 {
		t.Fatalf("book %+v", bk)
	}
	if c := call(t, ts, "DELETE", "/v1/orders/"+r2.OrderID, "", &cxl); c != 200 || cxl.Status != "canceled" {
		t.Fatalf("cancel %d %+v", c, cxl)
	}
	var e apiError
	if c := call(t, ts, "DELETE", "/v1/orders/"+r2.OrderID, "", &e); c != 404 || e.Code != "order_not_found" {
		t.Fatalf("second cancel %d %+v", c, e)
	}
}

func TestErrorCodes(t *testing.T) {
	ts, _ := newServer(t)
	call(t, ts, "POST", "/v1/orders", `{"client_order_id":"dup","account":"a","symbol":"AAPL","side":"buy","type":"limit","time_in_force":"gtc","price":"1.00","quantity":1}`, nil)
	body := func(over string) string {
		m := map[string]any{"client_order_id": "x", "account": "a", "symbol": "AAPL", "side": "buy", "type": "limit", "time_in_force": "gtc", "price": "101.25", "quantity": 100}
		var o map[string]any
		json.Unmarshal([]byte(over), &o)
		for k, v := range o {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"off tick", "POST", "/v1/orders", body(`{"price":"101.255"}`), 400, "price_off_tick"},
		{"coarse tick", "POST", "/v1/orders", body(`{"symbol":"MSFT","price":"10.02"}`), 400, "price_off_tick"},
		{"zero qty", "POST", "/v1/orders", body(`{"quantity":0}`), 400, "invalid_quantity"},
		{"negative qty", "POST", "/v1/orders", body(`{"quantity":-5}`), 400, "invalid_quantity"},
		{"fractional qty", "POST", "/v1/orders", body(`{"quantity":1.5}`), 400, "invalid_quantity"},
		{"missing qty", "POST", "/v1/orders", `{"client_order_id":"q","symbol":"AAPL","side":"buy","price":"1.00"}`, 400, "invalid_quantity"},
		{"bad price", "POST", "/v1/orders", body(`{"price":"abc"}`), 400, "invalid_price"},
		{"negative price", "POST", "/v1/orders", body(`{"price":"-1"}`), 400, "invalid_price"},
		{"unknown symbol", "POST", "/v1/orders", body(`{"symbol":"NOPE"}`), 400, "unknown_symbol"},
		{"duplicate", "POST", "/v1/orders", body(`{"client_order_id":"dup"}`), 409, "duplicate_client_order_id"},
		{"malformed", "POST", "/v1/orders", `{"client_order_id":`, 400, "malformed_json"},
		{"wrong json type", "POST", "/v1/orders", `{"symbol":5}`, 400, "malformed_json"},
		{"bad side", "POST", "/v1/orders", body(`{"side":"hold"}`), 400, "invalid_side"},
		{"bad tif", "POST", "/v1/orders", body(`{"time_in_force":"day"}`), 400, "invalid_time_in_force"},
		{"get unknown", "GET", "/v1/orders/12345", "", 404, "order_not_found"},
		{"get garbage id", "GET", "/v1/orders/abc", "", 404, "order_not_found"},
		{"replace unknown", "POST", "/v1/orders/999/replace", `{"price":"1.00","quantity":1}`, 404, "order_not_found"},
		{"replace malformed", "POST", "/v1/orders/1/replace", `nope`, 400, "malformed_json"},
		{"replace off tick", "POST", "/v1/orders/1/replace", `{"price":"1.001","quantity":1}`, 400, "price_off_tick"},
		{"book unknown", "GET", "/v1/books/NOPE", "", 404, "unknown_symbol"},
		{"book bad depth", "GET", "/v1/books/AAPL?depth=x", "", 400, "invalid_depth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after HashJSON
			call(t, ts, "GET", "/v1/debug/hash", "", &before)
			var e apiError
			if got := call(t, ts, c.method, c.path, c.body, &e); got != c.status || e.Code != c.code || e.Error == "" {
				t.Fatalf("%d %+v, want %d %s", got, e, c.status, c.code)
			}
			call(t, ts, "GET", "/v1/debug/hash", "", &after)
			if before.Hash != after.Hash {
				t.Fatal("rejected request changed the books")
			}
		})
	}
}

func TestHealthAndMetrics(t *testing.T) {
	ts, _ := newServer(t)
	resp, err := http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("healthz %d %q", resp.StatusCode, b)
	}
	call(t, ts, "POST", "/v1/orders", `{"client_order_id":"m","symbol":"AAPL","side":"buy","price":"1.00","quantity":1}`, nil)
	resp, _ = http.Get(ts.URL + "/metrics")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte("trade_commands_accepted_total 1")) || !bytes.Contains(b, []byte("trade_http_request_seconds_bucket")) || !bytes.Contains(b, []byte("trade_resting_orders 1")) {
		t.Fatalf("metrics missing counters:\n%s", b)
	}
}

// FuzzOrderRequest: arbitrary bodies never panic, and whatever validates
// satisfies the engine's input invariants.
func FuzzOrderRequest(f *testing.F) {
	f.Add([]byte(`{"client_order_id":"c1","account":"acct-1","symbol":"AAPL","side":"buy","type":"limit","time_in_force":"gtc","price":"101.25","quantity":100}`))
	f.Add([]byte(`{"side":"sell","type":"market","quantity":"7","price":3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req OrderRequest
		if err := decodeStrict(bytes.NewReader(body), &req); err != nil {
			if err.Code != engine.CodeMalformedJSON {
				t.Fatalf("decode error code %s", err.Code)
			}
			return
		}
		o, err := req.ToNewOrder()
		if err != nil {
			if err.Code == "" || err.Msg == "" {
				t.Fatal("imprecise error")
			}
			return
		}
		if o.Quantity <= 0 || o.Quantity > engine.MaxQuantity {
			t.Fatalf("quantity %d accepted", o.Quantity)
		}
	})
}
