package engine

import (
	"fmt"

	"github.com/finvirt/finvirt/workloads/trade/book"
)

// record is the engine's view of one order over its whole life; the book
// only holds resting orders.
type record struct {
	id           uint64
	sym          *symbol
	clientID     string
	origClientID string
	account      string
	origin       string
	side         book.Side
	typ          book.OrdType
	tif          book.TIF
	price, qty   int64
	filled       int64
	notional     int64 // sum of fill price*qty in ticks, for AvgPx
	status       book.Status
	created      int64
	fills        []fillRec
}

type fillRec struct {
	price, qty   int64
	maker, taker uint64
}

func (r *record) open() bool {
	return r.status == book.StatusNew || r.status == book.StatusPartiallyFilled
}

func (r *record) leaves() int64 {
	if !r.open() {
		return 0
	}
	return r.qty - r.filled
}

// Fill is one trade as seen by an order.
type Fill struct {
	Price        string
	Quantity     int64
	MakerOrderID uint64
	TakerOrderID uint64
}

// Order is a snapshot of an order's state.
type Order struct {
	ID                uint64
	ClientOrderID     string
	OrigClientOrderID string // previous client id after a FIX replace
	Account           string
	Symbol            string
	Side              book.Side
	Type              book.OrdType
	TIF               book.TIF
	Price             string // "" for market orders
	Quantity          int64
	Filled            int64
	Leaves            int64
	AvgPrice          string
	Status            book.Status
	Fills             []Fill
	Origin            string
	CreatedNano       int64
}

// ExecKind is what happened to an order in an Event.
type ExecKind uint8

const (
	ExecNew ExecKind = iota
	ExecTrade
	ExecCanceled
	ExecReplaced
)

// Event is one execution of an order that has an Origin, for the FIX
// gateway's execution reports.
type Event struct {
	Kind    ExecKind
	ExecID  string
	Order   Order // state right after this execution, without Fills
	LastQty int64
	LastPx  string
	// SelfTrade marks a resting order canceled by self-trade prevention.
	SelfTrade bool
}

func (e *Engine) view(r *record, fills []fillRec) Order {
	o := Order{ID: r.id, ClientOrderID: r.clientID, OrigClientOrderID: r.origClientID, Account: r.account,
		Symbol: r.sym.name, Side: r.side, Type: r.typ, TIF: r.tif, Quantity: r.qty, Filled: r.filled,
		Leaves: r.leaves(), AvgPrice: r.sym.formatAvg(r.notional, r.filled), Status: r.status,
		Origin: r.origin, CreatedNano: r.created, Fills: make([]Fill, 0, len(fills))}
	if r.typ == book.Limit {
		o.Price = r.sym.formatPrice(r.price)
	}
	for _, f := range fills {
		o.Fills = append(o.Fills, Fill{Price: r.sym.formatPrice(f.price), Quantity: f.qty, MakerOrderID: f.maker, TakerOrderID: f.taker})
	}
	return o
}

func (e *Engine) owner(account string) uint32 {
	if account == "" {
		return 0
	}
	id, ok := e.owners[account]
	if !ok {
		id = uint32(len(e.owners) + 1)
		e.owners[account] = id
	}
	return id
}

// emit records an event for r if r reports through the hook.
func (e *Engine) emit(r *record, kind ExecKind, lastQty, lastPx int64, self bool) {
	if e.hook == nil || r.origin == "" {
		return
	}
	ev := Event{Kind: kind, ExecID: fmt.Sprintf("%d-%d", e.cmdSeq, len(e.evs)), Order: e.view(r, nil), LastQty: lastQty, SelfTrade: self}
	ev.Order.Fills = nil
	if lastQty > 0 {
		ev.LastPx = r.sym.formatPrice(lastPx)
	}
	e.evs = append(e.evs, ev)
}

// apply executes an accepted command on the books and records. It is the
// only state-changing code, used live and by replay alike.
func (e *Engine) apply(c *Command, lsn uint64) error {
	sym := e.symbols[c.Symbol]
	if sym == nil {
		return fmt.Errorf("command for order %d: symbol %q not configured (was it removed from --symbols?)", c.OrderID, c.Symbol)
	}
	b := e.books[c.Symbol]
	res := &e.res
	e.lastFills = e.lastFills[:0]
	e.cmdSeq++
	var r *record
	switch c.Kind {
	case CmdPlace:
		b.Place(c.OrderID, e.owner(c.Account), c.Side, c.Type, c.TIF, c.Price, c.Qty, res)
		if res.Reject != book.RejectNone {
			return fmt.Errorf("order %d rejected by book: %s", c.OrderID, res.Reject)
		}
		r = &record{id: c.OrderID, sym: sym, clientID: c.ClientID, account: c.Account, origin: c.Origin,
			side: c.Side, typ: c.Type, tif: c.TIF, price: c.Price, qty: c.Qty, created: c.TimeNano}
		e.orders[r.id] = r
		e.clientIDs[clientKey(c.Origin, c.ClientID)] = r.id
		e.nextID = max(e.nextID, r.id)
		e.emit(r, ExecNew, 0, 0, false)
	case CmdCancel:
		if r = e.orders[c.OrderID]; r == nil {
			return fmt.Errorf("cancel of unknown order %d", c.OrderID)
		}
		b.Cancel(c.OrderID, res)
		if res.Reject != book.RejectNone {
			return fmt.Errorf("cancel of order %d rejected by book: %s", c.OrderID, res.Reject)
		}
		e.renameClient(r, c.NewClientID)
	case CmdReplace:
		if r = e.orders[c.OrderID]; r == nil {
			return fmt.Errorf("replace of unknown order %d", c.OrderID)
		}
		b.Replace(c.OrderID, c.Price, c.Qty, res)
		if res.Reject != book.RejectNone {
			return fmt.Errorf("replace of order %d rejected by book: %s", c.OrderID, res.Reject)
		}
		r.price, r.qty = c.Price, c.Qty
		e.renameClient(r, c.NewClientID)
		r.status = restingStatus(r.filled)
		e.emit(r, ExecReplaced, 0, 0, false)
	default:
		return fmt.Errorf("command kind %d unknown", c.Kind)
	}
	for _, f := range res.Fills {
		m := e.orders[f.MakerID]
		fr := fillRec{price: f.Price, qty: f.Qty, maker: f.MakerID, taker: f.TakerID}
		m.filled = f.MakerFilled
		m.notional += f.Price * f.Qty
		m.status = book.StatusPartiallyFilled
		if f.MakerLeaves == 0 {
			m.status = book.StatusFilled
		}
		m.fills = append(m.fills, fr)
		e.emit(m, ExecTrade, f.Qty, f.Price, false)
		r.filled += f.Qty
		r.notional += f.Price * f.Qty
		r.status = book.StatusPartiallyFilled
		if r.filled == r.qty {
			r.status = book.StatusFilled
		}
		r.fills = append(r.fills, fr)
		e.lastFills = append(e.lastFills, fr)
		e.emit(r, ExecTrade, f.Qty, f.Price, false)
		e.stats.Trades.Add(1)
		e.stats.Volume.Add(uint64(f.Qty))
	}
	for _, sc := range res.SelfCancels {
		m := e.orders[sc.ID]
		m.status = book.StatusCanceled
		e.emit(m, ExecCanceled, 0, 0, true)
	}
	r.status = res.Status
	if res.Filled != r.filled {
		return fmt.Errorf("order %d: engine filled %d, book %d", r.id, r.filled, res.Filled)
	}
	if res.Status == book.StatusCanceled {
		e.emit(r, ExecCanceled, 0, 0, false)
	}
	if len(e.evs) > 0 {
		e.hook(lsn, e.evs)
		e.evs = e.evs[:0]
	}
	return nil
}

// renameClient applies a FIX request's new ClOrdID; the old one stays
// reserved so it can never name another order.
func (e *Engine) renameClient(r *record, id string) {
	if id != "" {
		r.origClientID, r.clientID = r.clientID, id
		e.clientIDs[clientKey(r.origin, id)] = r.id
	}
}

func restingStatus(filled int64) book.Status {
	if filled > 0 {
		return book.StatusPartiallyFilled
	}
	return book.StatusNew
}
