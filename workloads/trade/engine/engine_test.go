package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/journal"
	"github.com/shopspring/decimal"
)

func testConfig() Config {
	return Config{Symbols: []SymbolConfig{{Name: "AAPL", Tick: DefaultTick}, {Name: "MSFT", Tick: decimal.RequireFromString("0.05")}},
		Now: func() time.Time { return time.Unix(1700000000, 0) }}
}

func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func lim(cid, acct, sym string, side book.Side, px string, qty int64) NewOrder {
	return NewOrder{ClientOrderID: cid, Account: acct, Symbol: sym, Side: side, Type: book.Limit, TIF: book.GTC, Price: px, Quantity: qty}
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestRejectionsArePreciseAndChangeNothing(t *testing.T) {
	e := newTestEngine(t)
	if _, err := e.Place(lim("c0", "a", "AAPL", book.Buy, "100.00", 10)); err != nil {
		t.Fatal(err)
	}
	mkt := lim("m1", "a", "AAPL", book.Sell, "", 5)
	mkt.Type = book.Market
	cases := []struct {
		name string
		req  NewOrder
		code string
	}{
		{"off tick", lim("c1", "a", "AAPL", book.Buy, "100.005", 1), CodePriceOffTick},
		{"off tick coarse symbol", lim("c1", "a", "MSFT", book.Buy, "10.02", 1), CodePriceOffTick},
		{"zero price", lim("c1", "a", "AAPL", book.Buy, "0", 1), CodeInvalidPrice},
		{"negative price", lim("c1", "a", "AAPL", book.Buy, "-1.00", 1), CodeInvalidPrice},
		{"not a number", lim("c1", "a", "AAPL", book.Buy, "abc", 1), CodeInvalidPrice},
		{"empty price on limit", lim("c1", "a", "AAPL", book.Buy, "", 1), CodeInvalidPrice},
		{"huge price", lim("c1", "a", "AAPL", book.Buy, "1e12", 1), CodeInvalidPrice},
		{"zero quantity", lim("c1", "a", "AAPL", book.Buy, "1.00", 0), CodeInvalidQuantity},
		{"negative quantity", lim("c1", "a", "AAPL", book.Buy, "1.00", -3), CodeInvalidQuantity},
		{"huge quantity", lim("c1", "a", "AAPL", book.Buy, "1.00", MaxQuantity+1), CodeInvalidQuantity},
		{"unknown symbol", lim("c1", "a", "ZZZZ", book.Buy, "1.00", 1), CodeUnknownSymbol},
		{"duplicate client id", lim("c0", "b", "AAPL", book.Sell, "101.00", 1), CodeDuplicateClientID},
		{"empty client id", lim("", "a", "AAPL", book.Buy, "1.00", 1), CodeInvalidClientID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, before := e.Hashes()
			_, err := e.Place(c.req)
			if code(err) != c.code {
				t.Fatalf("code %q (%v), want %q", code(err), err, c.code)
			}
			if err.Error() == "" {
				t.Fatal("empty message")
			}
			if _, after := e.Hashes(); after != before {
				t.Fatal("rejected order changed the book")
			}
		})
	}
	if _, err := e.Place(mkt); err != nil {
		t.Fatalf("market order with empty price: %v", err)
	}
	if _, err := e.Cancel(999); code(err) != CodeOrderNotFound {
		t.Fatalf("cancel unknown: %v", err)
	}
	// The market order of the same account self-trade-canceled c0: too late.
	_, err := e.Cancel(1)
	var ee *Error
	if !errors.As(err, &ee) || ee.Code != CodeOrderNotFound || !ee.TooLate {
		t.Fatalf("cancel of partially filled order: %v", err)
	}
}

func TestPlaceFillReplaceCancelFlow(t *testing.T) {
	e := newTestEngine(t)
	s1, _ := e.Place(lim("s1", "seller", "AAPL", book.Sell, "101.25", 30))
	s2, _ := e.Place(lim("s2", "seller", "AAPL", book.Sell, "101.30", 30))
	b1, err := e.Place(lim("b1", "buyer", "AAPL", book.Buy, "101.30", 50))
	if err != nil {
		t.Fatal(err)
	}
	if b1.Status != book.StatusFilled || b1.Filled != 50 || len(b1.Fills) != 2 || b1.AvgPrice != "101.27" {
		t.Fatalf("taker %+v", b1)
	}
	if b1.Fills[0] != (Fill{Price: "101.25", Quantity: 30, MakerOrderID: s1.ID, TakerOrderID: b1.ID}) {
		t.Fatalf("fill %+v", b1.Fills[0])
	}
	g, _ := e.Get(s2.ID)
	if g.Status != book.StatusPartiallyFilled || g.Filled != 20 || g.Leaves != 10 {
		t.Fatalf("maker %+v", g)
	}
	// Replace below filled: rejected; above: ok.
	if _, err := e.Replace(s2.ID, "101.30", 20, "", ""); code(err) != CodeInvalidQuantity {
		t.Fatalf("replace to filled qty: %v", err)
	}
	r, err := e.Replace(s2.ID, "101.35", 40, "", "")
	if err != nil || r.Leaves != 20 || r.Price != "101.35" || r.Status != book.StatusPartiallyFilled {
		t.Fatalf("replace %+v %v", r, err)
	}
	if _, err := e.Replace(s2.ID, "101.33", 40, "", ""); code(err) != CodePriceOffTick && err != nil {
		t.Fatalf("replace %v", err)
	}
	c, err := e.Cancel(s2.ID)
	if err != nil || c.Status != book.StatusCanceled || c.Leaves != 0 || c.Filled != 20 {
		t.Fatalf("cancel %+v %v", c, err)
	}
	v, _ := e.Book("AAPL", 5)
	if len(v.Bids) != 0 || len(v.Asks) != 0 || v.Sequence != 6 {
		t.Fatalf("book %+v", v)
	}
}

func TestBookDepth(t *testing.T) {
	e := newTestEngine(t)
	for i, px := range []string{"10.00", "10.05", "10.10", "10.05"} {
		e.Place(lim(fmt.Sprint("b", i), "a", "MSFT", book.Buy, px, 10))
	}
	e.Place(lim("s", "a2", "MSFT", book.Sell, "11.00", 7))
	v, err := e.Book("MSFT", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []BookLevel{{"10.10", 10, 1}, {"10.05", 20, 2}}
	if !reflect.DeepEqual(v.Bids, want) || !reflect.DeepEqual(v.Asks, []BookLevel{{"11.00", 7, 1}}) {
		t.Fatalf("depth %+v", v)
	}
	if _, err := e.Book("NOPE", 1); code(err) != CodeUnknownSymbol {
		t.Fatalf("unknown symbol: %v", err)
	}
}

// randomCommands drives e with a deterministic random stream.
func randomCommands(t *testing.T, e *Engine, seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	syms := []string{"AAPL", "MSFT"}
	var ids []uint64
	for i := 0; i < n; i++ {
		sym := syms[rng.IntN(2)]
		tick := 1
		if sym == "MSFT" {
			tick = 5
		}
		px := fmt.Sprintf("%d.%02d", 100+rng.IntN(2), rng.IntN(20/tick)*tick)
		switch r := rng.IntN(10); {
		case r < 5 || len(ids) == 0:
			req := lim(fmt.Sprintf("c%d-%d", seed, i), fmt.Sprint("acct", rng.IntN(3)), sym, book.Side(rng.IntN(2)), px, int64(1+rng.IntN(50)))
			req.TIF = book.TIF(rng.IntN(3))
			if rng.IntN(10) == 0 {
				req.Type = book.Market
			}
			if o, err := e.Place(req); err == nil {
				ids = append(ids, o.ID)
			}
		case r < 7:
			e.Cancel(ids[rng.IntN(len(ids))])
		default:
			id := ids[rng.IntN(len(ids))]
			o, _ := e.Get(id)
			if o.Symbol == sym {
				e.Replace(id, px, o.Filled+int64(1+rng.IntN(40)), "", "")
			}
		}
	}
}

func TestJournalReplayRebuildsIdenticalEngine(t *testing.T) {
	for _, pol := range []journal.SyncPolicy{journal.SyncBatch, journal.SyncNone} {
		t.Run(fmt.Sprint(pol), func(t *testing.T) {
			dir := t.TempDir()
			e, n, _, err := Open(testConfig(), dir, journal.Options{Sync: pol})
			if err != nil || n != 0 {
				t.Fatal(n, err)
			}
			randomCommands(t, e, 7, 1500)
			liveBooks, live := e.Hashes()
			accepted := e.Stats().Accepted.Load()
			var liveOrders []Order
			for id := uint64(1); ; id++ {
				o, ok := e.Get(id)
				if !ok {
					break
				}
				liveOrders = append(liveOrders, o)
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e2, n, cut, err := Open(testConfig(), dir, journal.Options{Sync: pol})
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Close()
			if n != accepted || cut != 0 {
				t.Fatalf("replayed %d of %d commands, cut %d", n, accepted, cut)
			}
			books, replayed := e2.Hashes()
			if replayed != live || !reflect.DeepEqual(books, liveBooks) {
				t.Fatalf("replayed hash %s != live %s", replayed, live)
			}
			for _, want := range liveOrders {
				got, _ := e2.Get(want.ID)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("order %d after replay:\n%+v\nwant\n%+v", want.ID, got, want)
				}
			}
			// Continuing after replay keeps ids unique and dedup intact.
			if _, err := e2.Place(lim("c7-0", "acct0", "AAPL", book.Buy, "100.00", 1)); code(err) != CodeDuplicateClientID && liveOrders[0].ClientOrderID == "c7-0" {
				t.Fatalf("dedup lost on replay: %v", err)
			}
			o, err := e2.Place(lim("after", "x", "AAPL", book.Buy, "1.00", 1))
			if err != nil || o.ID != uint64(len(liveOrders))+1 {
				t.Fatalf("next id %d (%v), want %d", o.ID, err, len(liveOrders)+1)
			}
		})
	}
}

func TestEventsForOriginOrders(t *testing.T) {
	e := newTestEngine(t)
	var got []string
	e.SetEventHook(func(lsn uint64, evs []Event) {
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%s:%d:%d/%d:%s:%d@%s", ev.Order.ClientOrderID, ev.Kind, ev.Order.Filled, ev.Order.Leaves, ev.Order.Status, ev.LastQty, ev.LastPx))
		}
	})
	mk := func(cid string, side book.Side, px string, q int64, tif book.TIF) {
		r := lim(cid, "acct-"+cid, "AAPL", side, px, q)
		r.Origin, r.TIF = "fix:X", tif
		if _, err := e.Place(r); err != nil {
			t.Fatal(err)
		}
	}
	mk("s1", book.Sell, "10.00", 5, book.GTC)
	e.Place(lim("http", "h", "AAPL", book.Sell, "10.01", 5)) // no events: no origin
	mk("b1", book.Buy, "10.01", 12, book.IOC)
	want := []string{
		"s1:0:0/5:new:0@",
		"b1:0:0/12:new:0@",
		"s1:1:5/0:filled:5@10.00",
		"b1:1:5/7:partially_filled:5@10.00",
		"b1:1:10/2:partially_filled:5@10.01",
		"b1:2:10/0:canceled:0@",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}
}

func TestSelfTradeCancelsRestingThroughEngine(t *testing.T) {
	e := newTestEngine(t)
	s, _ := e.Place(lim("s", "same", "AAPL", book.Sell, "10.00", 5))
	b, err := e.Place(lim("b", "same", "AAPL", book.Buy, "10.00", 5))
	if err != nil || b.Filled != 0 || b.Status != book.StatusNew {
		t.Fatalf("buy %+v %v", b, err)
	}
	if g, _ := e.Get(s.ID); g.Status != book.StatusCanceled {
		t.Fatalf("resting own order %+v, want canceled", g)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cases := []Command{
		{Kind: CmdPlace, OrderID: 1, TimeNano: -5, Symbol: "AAPL", ClientID: "c", Account: "a", Origin: "fix:S", Side: book.Sell, Type: book.Market, TIF: book.FOK, Price: 0, Qty: 9},
		{Kind: CmdCancel, OrderID: 1 << 60, Symbol: "X", NewClientID: "cx"},
		{Kind: CmdReplace, OrderID: 3, Symbol: "MSFT", Price: 12345, Qty: 7, NewClientID: "n"},
	}
	for _, c := range cases {
		got, err := DecodeCommand(c.Encode(nil))
		if err != nil || got != c {
			t.Fatalf("round trip %+v -> %+v %v", c, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {9}, {1, 77}, append((&cases[1]).Encode(nil), 0)} {
		if _, err := DecodeCommand(bad); err == nil {
			t.Fatalf("decoded garbage %v", bad)
		}
	}
}

func FuzzDecodeCommand(f *testing.F) {
	c := Command{Kind: CmdPlace, OrderID: 1, Symbol: "AAPL", ClientID: "c", Qty: 9}
	f.Add(c.Encode(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := DecodeCommand(p)
		if err != nil {
			return
		}
		again, err := DecodeCommand(c.Encode(nil))
		if err != nil || again != c {
			t.Fatalf("re-encode mismatch %+v %+v %v", c, again, err)
		}
	})
}

func TestParseSymbols(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{{"AAPL,MSFT", 2, true}, {"AAPL:0.05, IBM", 2, true}, {"", 0, false}, {"AAPL,AAPL", 0, false}, {"aapl", 0, false}, {"X:0", 0, false}, {"X:abc", 0, false}}
	for _, c := range cases {
		got, err := ParseSymbols(c.in)
		if (err == nil) != c.ok || len(got) != c.want {
			t.Errorf("%q: %v %v", c.in, got, err)
		}
	}
}

func TestFormatPriceMatchesDecimal(t *testing.T) {
	for _, tick := range []string{"0.01", "0.05", "1", "0.0001", "5", "0.25", "10"} {
		s := newSymbol(SymbolConfig{Name: "X", Tick: decimal.RequireFromString(tick)})
		for _, ticks := range []int64{0, 1, 7, 99, 100, 101, 12345, MaxPriceTicks} {
			want := decimal.NewFromInt(ticks).Mul(s.tick).StringFixed(s.scale)
			if got := s.formatPrice(ticks); got != want {
				t.Errorf("tick %s, %d ticks: %q, want %q", tick, ticks, got, want)
			}
		}
	}
}

func TestFormatAvg(t *testing.T) {
	s := newSymbol(SymbolConfig{Name: "X", Tick: DefaultTick})
	cases := []struct {
		notional, qty int64
		want          string
	}{{0, 0, "0.00"}, {10000 * 5, 5, "100.00"}, {10125*30 + 10130*20, 50, "101.27"}, {10001 + 10000*2, 3, "100.003333"}, {1, 2, "0.005"}}
	for _, c := range cases {
		if got := s.formatAvg(c.notional, c.qty); got != c.want {
			t.Errorf("avg(%d/%d) = %q, want %q", c.notional, c.qty, got, c.want)
		}
	}
}
