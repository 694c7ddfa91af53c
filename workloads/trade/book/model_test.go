package book

import "sort"

// refBook is the obviously-correct reference model: a flat list of resting
// orders, re-sorted by (price priority, time) on every match. Slow on
// purpose; the property test checks the real book against it.
type refOrder struct {
	id          uint64
	owner       uint32
	side        Side
	price       int64
	qty, filled int64
	seq         uint64
}

type refBook struct {
	policy  SelfTradePolicy
	orders  []*refOrder
	seq     uint64
	timeSeq uint64
}

func (r *refBook) find(id uint64) (int, *refOrder) {
	for i, o := range r.orders {
		if o.id == id {
			return i, o
		}
	}
	return -1, nil
}

func (r *refBook) drop(id uint64) {
	i, _ := r.find(id)
	r.orders = append(r.orders[:i], r.orders[i+1:]...)
}

// makers returns the opposite side's orders that an incoming order at
// price could trade with, in priority order.
func (r *refBook) makers(side Side, market bool, price int64) []*refOrder {
	var out []*refOrder
	for _, o := range r.orders {
		if o.side == side {
			continue
		}
		if !market && ((side == Buy && o.price > price) || (side == Sell && o.price < price)) {
			continue
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.price != b.price {
			if side == Buy {
				return a.price < b.price
			}
			return a.price > b.price
		}
		return a.seq < b.seq
	})
	return out
}

func (r *refBook) self(owner, maker uint32) bool {
	return r.policy == SelfTradeCancelResting && owner != 0 && owner == maker
}

func (r *refBook) trade(id uint64, owner uint32, side Side, market bool, price, qty int64, res *Result) int64 {
	rem := qty
	for _, m := range r.makers(side, market, price) {
		if rem == 0 {
			break
		}
		if r.self(owner, m.owner) {
			res.SelfCancels = append(res.SelfCancels, Canceled{ID: m.id, Filled: m.filled, Leaves: m.qty - m.filled})
			r.drop(m.id)
			continue
		}
		q := min(rem, m.qty-m.filled)
		m.filled += q
		rem -= q
		res.Fills = append(res.Fills, Fill{MakerID: m.id, TakerID: id, Price: m.price, Qty: q, MakerFilled: m.filled, MakerLeaves: m.qty - m.filled})
		if m.filled == m.qty {
			r.drop(m.id)
		}
	}
	return qty - rem
}

func (r *refBook) place(id uint64, owner uint32, side Side, typ OrdType, tif TIF, price, qty int64, res *Result) {
	res.reset()
	if qty <= 0 {
		res.Reject, res.Status = RejectInvalidQuantity, StatusRejected
		return
	}
	if typ == Limit && price <= 0 {
		res.Reject, res.Status = RejectInvalidPrice, StatusRejected
		return
	}
	if _, o := r.find(id); o != nil {
		res.Reject, res.Status = RejectDuplicateID, StatusRejected
		return
	}
	r.seq++
	res.Seq = r.seq
	market := typ == Market
	if tif == FOK {
		var avail int64
		for _, m := range r.makers(side, market, price) {
			if !r.self(owner, m.owner) {
				avail += m.qty - m.filled
			}
		}
		if avail < qty {
			res.Status, res.CanceledQty = StatusCanceled, qty
			return
		}
	}
	filled := r.trade(id, owner, side, market, price, qty, res)
	res.Filled = filled
	switch {
	case filled == qty:
		res.Status = StatusFilled
	case market || tif != GTC:
		res.Status, res.CanceledQty = StatusCanceled, qty-filled
	default:
		r.timeSeq++
		r.orders = append(r.orders, &refOrder{id: id, owner: owner, side: side, price: price, qty: qty, filled: filled, seq: r.timeSeq})
		res.Leaves = qty - filled
		res.Status = restingStatus(filled)
	}
}

func (r *refBook) cancel(id uint64, res *Result) {
	res.reset()
	_, o := r.find(id)
	if o == nil {
		res.Reject, res.Status = RejectUnknownOrder, StatusRejected
		return
	}
	r.seq++
	res.Seq = r.seq
	res.Status, res.Filled, res.CanceledQty = StatusCanceled, o.filled, o.qty-o.filled
	r.drop(id)
}

func (r *refBook) replace(id uint64, price, qty int64, res *Result) {
	res.reset()
	_, o := r.find(id)
	switch {
	case o == nil:
		res.Reject, res.Status = RejectUnknownOrder, StatusRejected
		return
	case price <= 0:
		res.Reject, res.Status = RejectInvalidPrice, StatusRejected
		return
	case qty <= 0:
		res.Reject, res.Status = RejectInvalidQuantity, StatusRejected
		return
	case qty <= o.filled:
		res.Reject, res.Status = RejectQtyBelowFilled, StatusRejected
		return
	}
	r.seq++
	res.Seq = r.seq
	if price == o.price && qty <= o.qty {
		o.qty = qty
		res.Filled, res.Leaves, res.Status = o.filled, o.qty-o.filled, restingStatus(o.filled)
		return
	}
	r.drop(id)
	o.price, o.qty = price, qty
	o.filled += r.trade(id, o.owner, o.side, false, price, qty-o.filled, res)
	res.Filled = o.filled
	if o.filled == qty {
		res.Status = StatusFilled
		return
	}
	r.timeSeq++
	o.seq = r.timeSeq
	r.orders = append(r.orders, o)
	res.Leaves = qty - o.filled
	res.Status = restingStatus(o.filled)
}

// snapshot lists resting orders in priority order per side, in the same
// shape as Book.Orders, for comparison.
func (r *refBook) snapshot(side Side) []Order {
	var out []Order
	for _, o := range r.orders {
		if o.side == side {
			out = append(out, Order{ID: o.id, Owner: o.owner, Side: o.side, Price: o.price, Qty: o.qty, Filled: o.filled, Seq: o.seq})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Price != b.Price {
			if side == Buy {
				return a.Price > b.Price
			}
			return a.Price < b.Price
		}
		return a.Seq < b.Seq
	})
	return out
}
