package book

import (
	"crypto/sha256"
	"encoding/binary"
)

// LevelView is one aggregated price level of a depth snapshot.
type LevelView struct {
	Price  int64
	Qty    int64
	Orders int
}

// Depth returns up to n best levels of one side, best first (n <= 0: all).
func (b *Book) Depth(s Side, n int, dst []LevelView) []LevelView {
	d := b.side(s)
	for i := len(d.lvls) - 1; i >= 0 && (n <= 0 || len(dst) < n); i-- {
		l := d.lvls[i]
		dst = append(dst, LevelView{Price: l.price, Qty: l.total, Orders: l.count})
	}
	return dst
}

// Orders calls fn for every resting order of one side in priority order
// (best level first, FIFO within a level).
func (b *Book) Orders(s Side, fn func(*Order)) {
	d := b.side(s)
	for i := len(d.lvls) - 1; i >= 0; i-- {
		for o := d.lvls[i].head; o != nil; o = o.next {
			fn(o)
		}
	}
}

// Hash is a deterministic SHA-256 of the book: sequence numbers, then for
// bids and asks every level best-first with its aggregate, then its orders
// in priority order. Two books hash equal iff they would behave identically
// to every future command, which is what journal replay must guarantee.
func (b *Book) Hash() [32]byte {
	h := sha256.New()
	var buf [64]byte
	put := func(vals ...uint64) {
		p := buf[:0]
		for _, v := range vals {
			p = binary.BigEndian.AppendUint64(p, v)
		}
		h.Write(p)
	}
	put(b.seq, b.timeSeq, uint64(len(b.orders)))
	for _, d := range []*ladder{&b.bids, &b.asks} {
		put(uint64(len(d.lvls)))
		for i := len(d.lvls) - 1; i >= 0; i-- {
			l := d.lvls[i]
			put(uint64(l.price), uint64(l.total), uint64(l.count))
			for o := l.head; o != nil; o = o.next {
				put(o.ID, uint64(o.Owner), uint64(o.Side), uint64(o.Price), uint64(o.Qty), uint64(o.Filled), o.Seq)
			}
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
