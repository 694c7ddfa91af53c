package book

// Book is one symbol's order book. It is not safe for concurrent use; the
// engine serializes commands per book (single writer, like exchange-core).
type Book struct {
	policy  SelfTradePolicy
	bids    ladder
	asks    ladder
	orders  map[uint64]*Order
	pool    pool
	seq     uint64 // accepted commands applied
	timeSeq uint64 // time-priority stamp for the next order to rest
	newLvl  func() *level
}

// New returns an empty book. sizeHint pre-sizes the order map so steady
// state inserts do not grow it.
func New(policy SelfTradePolicy, sizeHint int) *Book {
	b := &Book{policy: policy, orders: make(map[uint64]*Order, sizeHint)}
	b.asks.neg = true
	b.newLvl = b.pool.level
	return b
}

// Seq is the number of accepted commands applied to the book.
func (b *Book) Seq() uint64 { return b.seq }

// Len is the number of resting orders.
func (b *Book) Len() int { return len(b.orders) }

// Get returns the resting order with id, or nil. The pointer is only valid
// until the next command.
func (b *Book) Get(id uint64) *Order { return b.orders[id] }

func (b *Book) side(s Side) *ladder {
	if s == Buy {
		return &b.bids
	}
	return &b.asks
}

func (b *Book) opposite(s Side) *ladder {
	if s == Buy {
		return &b.asks
	}
	return &b.bids
}

// Place submits a new order. Market orders ignore price and never rest;
// IOC remainders are canceled; FOK checks liquidity first and either fills
// completely or is canceled without touching the book.
func (b *Book) Place(id uint64, owner uint32, side Side, typ OrdType, tif TIF, price, qty int64, res *Result) {
	res.reset()
	switch {
	case qty <= 0:
		res.Reject, res.Status = RejectInvalidQuantity, StatusRejected
		return
	case typ == Limit && price <= 0:
		res.Reject, res.Status = RejectInvalidPrice, StatusRejected
		return
	}
	if _, dup := b.orders[id]; dup {
		res.Reject, res.Status = RejectDuplicateID, StatusRejected
		return
	}
	b.seq++
	res.Seq = b.seq
	market := typ == Market
	if tif == FOK && b.available(side, owner, market, price, qty) < qty {
		res.Status, res.CanceledQty = StatusCanceled, qty
		return
	}
	filled := b.match(id, owner, side, market, price, qty, res)
	res.Filled = filled
	rem := qty - filled
	switch {
	case rem == 0:
		res.Status = StatusFilled
	case market || tif != GTC:
		res.Status, res.CanceledQty = StatusCanceled, rem
	default:
		o := b.pool.order()
		o.ID, o.Owner, o.Side, o.Price, o.Qty, o.Filled = id, owner, side, price, qty, filled
		b.rest(o)
		b.orders[id] = o
		res.Leaves = rem
		res.Status = restingStatus(filled)
	}
}

func restingStatus(filled int64) Status {
	if filled > 0 {
		return StatusPartiallyFilled
	}
	return StatusNew
}

// Cancel removes a resting order.
func (b *Book) Cancel(id uint64, res *Result) {
	res.reset()
	o := b.orders[id]
	if o == nil {
		res.Reject, res.Status = RejectUnknownOrder, StatusRejected
		return
	}
	b.seq++
	res.Seq = b.seq
	res.Status, res.Filled, res.CanceledQty = StatusCanceled, o.Filled, o.Leaves()
	b.unrest(o)
	delete(b.orders, id)
	b.pool.putOrder(o)
}

// Replace changes a resting order's price and/or total quantity. A quantity
// decrease at the same price keeps time priority; a price change or a
// quantity increase re-queues the order at the back of its (new) level and
// may trade if the new price crosses. newQty must exceed the filled
// quantity.
func (b *Book) Replace(id uint64, newPrice, newQty int64, res *Result) {
	res.reset()
	o := b.orders[id]
	switch {
	case o == nil:
		res.Reject, res.Status = RejectUnknownOrder, StatusRejected
		return
	case newPrice <= 0:
		res.Reject, res.Status = RejectInvalidPrice, StatusRejected
		return
	case newQty <= 0:
		res.Reject, res.Status = RejectInvalidQuantity, StatusRejected
		return
	case newQty <= o.Filled:
		res.Reject, res.Status = RejectQtyBelowFilled, StatusRejected
		return
	}
	b.seq++
	res.Seq = b.seq
	if newPrice == o.Price && newQty <= o.Qty {
		o.level.total -= o.Qty - newQty
		o.Qty = newQty
		res.Filled, res.Leaves, res.Status = o.Filled, o.Leaves(), restingStatus(o.Filled)
		return
	}
	b.unrest(o) // stays in b.orders: match never looks the taker up
	o.Price, o.Qty = newPrice, newQty
	filled := o.Filled + b.match(id, o.Owner, o.Side, false, newPrice, newQty-o.Filled, res)
	o.Filled = filled
	res.Filled = filled
	if filled == newQty {
		res.Status = StatusFilled
		delete(b.orders, id)
		b.pool.putOrder(o)
		return
	}
	b.rest(o)
	res.Leaves = o.Leaves()
	res.Status = restingStatus(filled)
}

// rest queues o at the back of its price level with a fresh time stamp.
func (b *Book) rest(o *Order) {
	b.timeSeq++
	o.Seq = b.timeSeq
	b.side(o.Side).findOrInsert(o.Price, b.newLvl).pushBack(o)
}

func (b *Book) unrest(o *Order) {
	l := o.level
	l.unlink(o)
	if l.count == 0 {
		b.side(o.Side).remove(l)
		b.pool.putLevel(l)
	}
}

func (b *Book) selfTrade(owner, maker uint32) bool {
	return b.policy == SelfTradeCancelResting && owner != 0 && owner == maker
}

// available sums the quantity an incoming order could trade, stopping once
// it reaches want. Under cancel-resting, the owner's own orders do not count
// (they would be canceled, not traded).
func (b *Book) available(side Side, owner uint32, market bool, price, want int64) int64 {
	opp := b.opposite(side)
	var sum int64
	for i := len(opp.lvls) - 1; i >= 0 && sum < want; i-- {
		l := opp.lvls[i]
		if !market && !opp.crosses(l.price, price) {
			break
		}
		if b.policy == SelfTradeAllow || owner == 0 {
			sum += l.total
			continue
		}
		for o := l.head; o != nil && sum < want; o = o.next {
			if o.Owner != owner {
				sum += o.Leaves()
			}
		}
	}
	return sum
}

// match trades an incoming order against the opposite side, best level
// first and FIFO within a level, and returns the quantity filled.
func (b *Book) match(id uint64, owner uint32, side Side, market bool, price, qty int64, res *Result) int64 {
	opp := b.opposite(side)
	rem := qty
	for rem > 0 {
		l := opp.best()
		if l == nil || (!market && !opp.crosses(l.price, price)) {
			break
		}
		for m := l.head; m != nil && rem > 0; {
			next := m.next
			if b.selfTrade(owner, m.Owner) {
				res.SelfCancels = append(res.SelfCancels, Canceled{ID: m.ID, Filled: m.Filled, Leaves: m.Leaves()})
				b.retire(l, m)
				m = next
				continue
			}
			q := min(rem, m.Leaves())
			rem -= q
			m.Filled += q
			l.total -= q
			res.Fills = append(res.Fills, Fill{MakerID: m.ID, TakerID: id, Price: l.price, Qty: q, MakerFilled: m.Filled, MakerLeaves: m.Leaves()})
			if m.Leaves() == 0 {
				b.retire(l, m)
			}
			m = next
		}
		if l.count == 0 {
			opp.remove(l)
			b.pool.putLevel(l)
		}
	}
	return qty - rem
}

// retire unlinks a maker that is done (filled or self-trade canceled); the
// caller removes the level once it is empty.
func (b *Book) retire(l *level, m *Order) {
	l.unlink(m)
	delete(b.orders, m.ID)
	b.pool.putOrder(m)
}
