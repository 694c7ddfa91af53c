package book

// Order is a resting order. Orders are linked intrusively into their price
// level's FIFO so removal from the middle of a level is O(1).
type Order struct {
	ID     uint64
	Owner  uint32
	Side   Side
	Price  int64
	Qty    int64  // total quantity (including filled)
	Filled int64  // cumulative filled quantity
	Seq    uint64 // time priority: lower is earlier
	prev   *Order
	next   *Order
	level  *level
}

// Leaves is the open quantity.
func (o *Order) Leaves() int64 { return o.Qty - o.Filled }

type level struct {
	price int64
	total int64 // open quantity of all orders at this level
	count int
	head  *Order
	tail  *Order
}

func (l *level) pushBack(o *Order) {
	o.level = l
	o.next = nil
	o.prev = l.tail
	if l.tail == nil {
		l.head = o
	} else {
		l.tail.next = o
	}
	l.tail = o
	l.count++
	l.total += o.Leaves()
}

func (l *level) unlink(o *Order) {
	if o.prev == nil {
		l.head = o.next
	} else {
		o.prev.next = o.next
	}
	if o.next == nil {
		l.tail = o.prev
	} else {
		o.next.prev = o.prev
	}
	l.count--
	l.total -= o.Leaves()
	o.prev, o.next, o.level = nil, nil, nil
}

// ladder holds one side's price levels sorted by key, best level LAST, so
// the common operations (trade through the best level, add near the touch)
// touch the end of the slices and move little memory. key is the price for
// bids and the negated price for asks, so "best" is always the largest key.
// keys is kept parallel to lvls so binary search scans dense int64s.
type ladder struct {
	neg  bool
	keys []int64
	lvls []*level
}

func (d *ladder) key(price int64) int64 {
	if d.neg {
		return -price
	}
	return price
}

func (d *ladder) best() *level {
	if n := len(d.lvls); n > 0 {
		return d.lvls[n-1]
	}
	return nil
}

// search returns the index of the first key >= k.
func (d *ladder) search(k int64) int {
	lo, hi := 0, len(d.keys)
	// Fast path: most inserts are at or near the touch.
	if hi > 0 && d.keys[hi-1] < k {
		return hi
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.keys[m] < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (d *ladder) find(price int64) *level {
	k := d.key(price)
	i := d.search(k)
	if i < len(d.keys) && d.keys[i] == k {
		return d.lvls[i]
	}
	return nil
}

// findOrInsert returns the level at price, inserting l (a fresh level from
// the pool) if none exists. It reports whether l was used.
func (d *ladder) findOrInsert(price int64, fresh func() *level) *level {
	k := d.key(price)
	i := d.search(k)
	if i < len(d.keys) && d.keys[i] == k {
		return d.lvls[i]
	}
	l := fresh()
	l.price = price
	d.keys = append(d.keys, 0)
	d.lvls = append(d.lvls, nil)
	copy(d.keys[i+1:], d.keys[i:])
	copy(d.lvls[i+1:], d.lvls[i:])
	d.keys[i] = k
	d.lvls[i] = l
	return l
}

func (d *ladder) remove(l *level) {
	n := len(d.lvls)
	if n > 0 && d.lvls[n-1] == l {
		d.lvls[n-1] = nil
		d.keys = d.keys[:n-1]
		d.lvls = d.lvls[:n-1]
		return
	}
	k := d.key(l.price)
	i := d.search(k)
	copy(d.keys[i:], d.keys[i+1:])
	copy(d.lvls[i:], d.lvls[i+1:])
	d.lvls[n-1] = nil
	d.keys = d.keys[:n-1]
	d.lvls = d.lvls[:n-1]
}

// crosses reports whether an incoming order with limit price p (on the
// opposite side) can trade with level price lp.
func (d *ladder) crosses(lp, p int64) bool {
	if d.neg { // asks: incoming buy trades if ask <= limit
		return lp <= p
	}
	return lp >= p // bids: incoming sell trades if bid >= limit
}
