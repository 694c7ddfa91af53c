package book

import "math/rand/v2"

// Op is one pre-generated command of a benchmark stream.
type Op struct {
	Kind  uint8 // OpPlace, OpCancel, OpMove
	Side  Side
	TIF   TIF
	Owner uint32
	ID    uint64
	Price int64
	Qty   int64
}

const (
	OpPlace uint8 = iota
	OpCancel
	OpMove
)

// ExchangeCoreMix generates n commands with exchange-core's benchmark mix
// (9% GTC, 3% IOC, 6% cancel, 82% move) around a mid price, keeping about
// depth orders resting. It simulates the stream on a scratch book so that
// cancels and moves always target live orders; replaying the stream on a
// fresh book reproduces the same states (the book is deterministic).
func ExchangeCoreMix(seed uint64, n, depth int) []Op {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := New(SelfTradeAllow, depth*2)
	var res Result
	live := make([]uint64, 0, depth*2)
	pos := make(map[uint64]int, depth*2)
	add := func(id uint64) { pos[id] = len(live); live = append(live, id) }
	del := func(id uint64) {
		i, ok := pos[id]
		if !ok {
			return
		}
		last := live[len(live)-1]
		live[i] = last
		pos[last] = i
		live = live[:len(live)-1]
		delete(pos, id)
	}
	// settle updates the live set after a command.
	settle := func(id uint64) {
		for _, f := range res.Fills {
			if f.MakerLeaves == 0 {
				del(f.MakerID)
			}
		}
		if b.Get(id) == nil {
			del(id)
		}
	}
	const mid = 100_000
	ops := make([]Op, 0, n)
	var nextID uint64
	for len(ops) < n {
		r := rng.IntN(100)
		if len(live) < depth/2 {
			r = 0 // refill to the target depth with GTC orders
		}
		var op Op
		switch {
		case r < 9 || len(live) == 0:
			nextID++
			side := Side(rng.IntN(2))
			// Mostly passive, sometimes crossing by a tick or two.
			off := int64(rng.IntN(100)) - 3
			price := int64(mid) - 1 - off
			if side == Sell {
				price = mid + 1 + off
			}
			op = Op{Kind: OpPlace, Side: side, TIF: GTC, ID: nextID, Price: price, Qty: int64(1 + rng.IntN(100))}
			b.Place(op.ID, 0, op.Side, Limit, GTC, op.Price, op.Qty, &res)
			if b.Get(op.ID) != nil {
				add(op.ID)
			}
			settle(op.ID)
		case r < 12:
			nextID++
			side := Side(rng.IntN(2))
			price := int64(mid + rng.IntN(20))
			if side == Sell {
				price = int64(mid - rng.IntN(20))
			}
			op = Op{Kind: OpPlace, Side: side, TIF: IOC, ID: nextID, Price: price, Qty: int64(1 + rng.IntN(50))}
			b.Place(op.ID, 0, op.Side, Limit, IOC, op.Price, op.Qty, &res)
			settle(op.ID)
		case r < 18:
			id := live[rng.IntN(len(live))]
			op = Op{Kind: OpCancel, ID: id}
			b.Cancel(id, &res)
			del(id)
		default:
			id := live[rng.IntN(len(live))]
			o := b.Get(id)
			delta := int64(rng.IntN(7)) - 3
			if delta == 0 {
				delta = 1
			}
			price := o.Price + delta
			// Drift back toward the mid so the band stays dense.
			if o.Side == Buy && price > mid+2 || o.Side == Sell && price < mid-2 {
				price = o.Price - 2*delta
			}
			if price <= 0 {
				price = 1
			}
			op = Op{Kind: OpMove, ID: id, Side: o.Side, Price: price, Qty: o.Qty}
			b.Replace(id, price, o.Qty, &res)
			settle(id)
		}
		ops = append(ops, op)
	}
	return ops
}

// Apply runs one pre-generated command.
func (b *Book) Apply(op *Op, res *Result) {
	switch op.Kind {
	case OpPlace:
		b.Place(op.ID, op.Owner, op.Side, Limit, op.TIF, op.Price, op.Qty, res)
	case OpCancel:
		b.Cancel(op.ID, res)
	default:
		b.Replace(op.ID, op.Price, op.Qty, res)
	}
}
