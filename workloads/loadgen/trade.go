package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// TradeConfig configures the trade (matching engine) scenario: the
// exchange-core-style mix of 9% GTC limit, 3% IOC, 6% cancel and 82%
// replace/move over a few symbols around a mid price.
type TradeConfig struct {
	Target   string
	RunID    string
	Symbols  []string
	MidTicks int64 // mid price in ticks (tick 0.01): 10000 = "100.00"
	Seed     int   // resting orders placed per symbol before the run
	Engine   Config
}

type liveOrder struct {
	id    string
	buy   bool
	ticks int64
	qty   int64
}

type book struct {
	mu     sync.Mutex
	orders []liveOrder
}

func (b *book) add(o liveOrder) {
	b.mu.Lock()
	b.orders = append(b.orders, o)
	b.mu.Unlock()
}

// take removes and returns a random live order.
func (b *book) take(rng *rand.Rand) (liveOrder, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.orders) == 0 {
		return liveOrder{}, false
	}
	i := rng.IntN(len(b.orders))
	o := b.orders[i]
	b.orders[i] = b.orders[len(b.orders)-1]
	b.orders = b.orders[:len(b.orders)-1]
	return o, true
}

type tradeRun struct {
	cfg                         TradeConfig
	c                           *Client
	books                       []*book
	seq                         atomic.Int64
	gtc, ioc, cancel, replace   atomic.Int64
	fills, filledQty, staleRefs atomic.Int64
	kindMu                      sync.Mutex
	kindLat                     map[string]*Histogram // service time per order kind
}

// timed records the service time of one order operation by kind.
func (r *tradeRun) timed(kind string, start time.Time) {
	d := time.Since(start)
	r.kindMu.Lock()
	h := r.kindLat[kind]
	if h == nil {
		h = NewHistogram()
		r.kindLat[kind] = h
	}
	h.RecordDuration(d)
	r.kindMu.Unlock()
}

type orderResp struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Leaves  int64  `json:"leaves_quantity"`
	Fills   []struct {
		Quantity int64 `json:"quantity"`
	} `json:"fills"`
}

func priceStr(ticks int64) string { return fmt.Sprintf("%d.%02d", ticks/100, ticks%100) }

// RunTrade seeds books, runs the mix and reports ops/s and fills.
func RunTrade(ctx context.Context, cfg TradeConfig) (*Report, error) {
	if len(cfg.Symbols) == 0 {
		return nil, fmt.Errorf("trade scenario needs --symbols")
	}
	if cfg.MidTicks <= 100 {
		cfg.MidTicks = 10000
	}
	r := &tradeRun{cfg: cfg, c: NewClient(cfg.Target, 15*time.Second), kindLat: map[string]*Histogram{}}
	defer r.c.HC.CloseIdleConnections()
	for _, s := range cfg.Symbols {
		if _, err := r.c.Do(ctx, "GET", "/v1/books/"+s+"?depth=1", nil, nil, nil); err != nil {
			return nil, fmt.Errorf("symbol %s: %w (pass the symbols trade serves with --symbols)", s, err)
		}
		r.books = append(r.books, &book{})
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for si := range cfg.Symbols {
		for i := 0; i < cfg.Seed; i++ {
			buy := i%2 == 0
			off := 1 + rng.Int64N(50)
			t := cfg.MidTicks + off
			if buy {
				t = cfg.MidTicks - off
			}
			if k := r.place(ctx, si, buy, t, 100, "gtc"); k != "" {
				return nil, fmt.Errorf("seed order on %s: %s", cfg.Symbols[si], k)
			}
		}
	}
	res, err := Run(ctx, cfg.Engine, r.op)
	if err != nil {
		return nil, err
	}
	rep := NewReport("trade", cfg.Target, res)
	f := rep.Figures
	f["ops_per_s"] = rep.ReqPerSec
	f["mix_gtc"], f["mix_ioc"], f["mix_cancel"], f["mix_replace"] = float64(r.gtc.Load()), float64(r.ioc.Load()), float64(r.cancel.Load()), float64(r.replace.Load())
	f["fills"], f["filled_quantity"], f["stale_order_refs"] = float64(r.fills.Load()), float64(r.filledQty.Load()), float64(r.staleRefs.Load())
	for k, h := range r.kindLat {
		rep.Extra[k] = Summarize(h)
	}
	r.checkBooks(ctx, rep)
	return rep, nil
}

func (r *tradeRun) record(si int, o orderResp, buy bool, ticks, qty int64) {
	r.fills.Add(int64(len(o.Fills)))
	for _, f := range o.Fills {
		r.filledQty.Add(f.Quantity)
	}
	if (o.Status == "new" || o.Status == "partially_filled") && o.Leaves > 0 {
		r.books[si].add(liveOrder{id: o.OrderID, buy: buy, ticks: ticks, qty: qty})
	}
}

func (r *tradeRun) place(ctx context.Context, si int, buy bool, ticks, qty int64, tif string) string {
	side := "sell"
	if buy {
		side = "buy"
	}
	body := map[string]any{"client_order_id": r.cfg.RunID + "-o" + strconv.FormatInt(r.seq.Add(1), 10),
		"account": "acct-" + strconv.Itoa(int(ticks%7)), "symbol": r.cfg.Symbols[si], "side": side, "type": "limit",
		"time_in_force": tif, "price": priceStr(ticks), "quantity": qty}
	var o orderResp
	if _, err := r.c.Do(ctx, "POST", "/v1/orders", nil, body, &o); err != nil {
		return Kind(err)
	}
	r.record(si, o, buy, ticks, qty)
	return ""
}

func (r *tradeRun) op(ctx context.Context, worker int) string {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	si := rng.IntN(len(r.books))
	t0 := time.Now()
	mid := r.cfg.MidTicks
	p := rng.IntN(100)
	switch {
	case p < 9:
		r.gtc.Add(1)
		buy := rng.IntN(2) == 0
		off := rng.Int64N(40) - 5 // a few cross the spread and fill
		t := mid + off
		if buy {
			t = mid - off
		}
		defer r.timed("gtc", t0)
		return r.place(ctx, si, buy, t, 10+rng.Int64N(200), "gtc")
	case p < 12:
		r.ioc.Add(1)
		buy := rng.IntN(2) == 0
		t := mid - 10
		if buy {
			t = mid + 10
		}
		defer r.timed("ioc", t0)
		return r.place(ctx, si, buy, t, 10+rng.Int64N(100), "ioc")
	}
	o, ok := r.books[si].take(rng)
	if !ok { // empty book: rest a new order instead
		r.gtc.Add(1)
		return r.place(ctx, si, rng.IntN(2) == 0, mid, 100, "gtc")
	}
	var resp orderResp
	var err error
	if p < 18 {
		defer r.timed("cancel", t0)
		r.cancel.Add(1)
		_, err = r.c.Do(ctx, "DELETE", "/v1/orders/"+o.id, nil, nil, &resp)
	} else {
		defer r.timed("replace", t0)
		r.replace.Add(1)
		move := 1 + rng.Int64N(3)
		if rng.IntN(2) == 0 {
			move = -move
		}
		nt := max(o.ticks+move, 1)
		_, err = r.c.Do(ctx, "POST", "/v1/orders/"+o.id+"/replace", nil, map[string]any{"price": priceStr(nt), "quantity": o.qty}, &resp)
		if err == nil {
			r.record(si, resp, o.buy, nt, o.qty)
		}
	}
	if isStatus(err, 404) || isCode(err, "order_not_active") || isStatus(err, 409) {
		r.staleRefs.Add(1) // filled by a concurrent order meanwhile: benign
		return ""
	}
	return Kind(err)
}

// checkBooks verifies each book is not crossed after the run: a matching
// engine must never leave a bid at or above the best ask.
func (r *tradeRun) checkBooks(ctx context.Context, rep *Report) {
	type level struct {
		Price    string `json:"price"`
		Quantity int64  `json:"quantity"`
	}
	var bad []string
	for _, s := range r.cfg.Symbols {
		var b struct {
			Bids []level `json:"bids"`
			Asks []level `json:"asks"`
		}
		if _, err := r.c.Do(ctx, "GET", "/v1/books/"+s+"?depth=1", nil, nil, &b); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", s, err))
			continue
		}
		if len(b.Bids) > 0 && len(b.Asks) > 0 {
			bid, e1 := strconv.ParseFloat(b.Bids[0].Price, 64)
			ask, e2 := strconv.ParseFloat(b.Asks[0].Price, 64)
			if e1 != nil || e2 != nil || bid >= ask {
				bad = append(bad, fmt.Sprintf("%s crossed or unreadable: best bid %s, best ask %s", s, b.Bids[0].Price, b.Asks[0].Price))
			}
		}
	}
	rep.AddCheck("books_not_crossed", len(bad) == 0, "%d symbols: %s", len(r.cfg.Symbols), summarize(bad))
}
