package book

// pool hands out Orders and levels from slabs and keeps a free list, so a
// steady-state book allocates nothing and the GC sees few, large objects.
type pool struct {
	freeOrders []*Order
	freeLevels []*level
}

const slab = 1024

func (p *pool) order() *Order {
	if len(p.freeOrders) == 0 {
		s := make([]Order, slab)
		for i := range s {
			p.freeOrders = append(p.freeOrders, &s[i])
		}
	}
	n := len(p.freeOrders) - 1
	o := p.freeOrders[n]
	p.freeOrders = p.freeOrders[:n]
	return o
}

func (p *pool) putOrder(o *Order) {
	*o = Order{}
	p.freeOrders = append(p.freeOrders, o)
}

func (p *pool) level() *level {
	if len(p.freeLevels) == 0 {
		s := make([]level, slab/4)
		for i := range s {
			p.freeLevels = append(p.freeLevels, &s[i])
		}
	}
	n := len(p.freeLevels) - 1
	l := p.freeLevels[n]
	p.freeLevels = p.freeLevels[:n]
	return l
}

func (p *pool) putLevel(l *level) {
	*l = level{}
	p.freeLevels = append(p.freeLevels, l)
}
