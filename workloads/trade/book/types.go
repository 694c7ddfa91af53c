// Package book is a single-symbol limit order book with price-time priority.
//
// Prices are integer ticks (int64); conversion to and from decimal strings
// happens at the edges (see package engine). The matching path does not
// allocate: orders come from a slab pool, fills are appended to a
// caller-owned Result whose slices are reused between commands.
package book

// Side of an order.
type Side uint8

const (
	Buy Side = iota
	Sell
)

func (s Side) String() string {
	if s == Buy {
		return "buy"
	}
	return "sell"
}

// OrdType is limit or market.
type OrdType uint8

const (
	Limit OrdType = iota
	Market
)

func (t OrdType) String() string {
	if t == Market {
		return "market"
	}
	return "limit"
}

// TIF is the time in force.
type TIF uint8

const (
	GTC TIF = iota // rests until filled or canceled
	IOC            // fills what it can immediately, remainder canceled
	FOK            // fills completely and immediately, or not at all
)

func (t TIF) String() string {
	switch t {
	case IOC:
		return "ioc"
	case FOK:
		return "fok"
	}
	return "gtc"
}

// Status of the order a command acted on, after the command.
type Status uint8

const (
	StatusNew Status = iota
	StatusPartiallyFilled
	StatusFilled
	StatusCanceled
	StatusRejected
)

var statusNames = [...]string{"new", "partially_filled", "filled", "canceled", "rejected"}

func (s Status) String() string { return statusNames[s] }

// Reject says why the book refused a command. A rejected command changes
// nothing in the book (not even the sequence number).
type Reject uint8

const (
	RejectNone Reject = iota
	RejectInvalidQuantity
	RejectInvalidPrice
	RejectDuplicateID
	RejectUnknownOrder
	RejectQtyBelowFilled
)

var rejectNames = [...]string{"", "invalid quantity", "invalid price", "duplicate order id", "unknown order", "quantity not above filled quantity"}

func (r Reject) String() string { return rejectNames[r] }

// SelfTradePolicy decides what happens when an incoming order would trade
// with a resting order of the same owner (owner 0 means anonymous and never
// self-trades).
type SelfTradePolicy uint8

const (
	// SelfTradeCancelResting cancels the resting order of the same owner and
	// keeps matching the incoming order against the rest of the book.
	SelfTradeCancelResting SelfTradePolicy = iota
	// SelfTradeAllow lets an owner trade with itself.
	SelfTradeAllow
)

// Fill is one trade between a resting maker and an incoming taker.
type Fill struct {
	MakerID     uint64
	TakerID     uint64
	Price       int64
	Qty         int64
	MakerFilled int64 // maker's cumulative filled quantity after this fill
	MakerLeaves int64 // maker's open quantity after this fill (0: maker done)
}

// Canceled is a resting order canceled as a side effect (self-trade
// prevention) of another order's command.
type Canceled struct {
	ID     uint64
	Filled int64
	Leaves int64 // quantity that was open when canceled
}

// Result is filled in by every command. Callers reuse one Result so its
// slices keep their capacity and matching does not allocate.
type Result struct {
	Reject Reject
	Status Status
	Filled int64 // cumulative filled quantity of the subject order
	Leaves int64 // open (resting) quantity of the subject order
	// CanceledQty is the quantity canceled by this command on the subject
	// order (IOC/market remainder, FOK kill, explicit cancel).
	CanceledQty int64
	Fills       []Fill
	SelfCancels []Canceled
	Seq         uint64 // book sequence number after the command
}

func (r *Result) reset() {
	r.Reject = RejectNone
	r.Status = StatusNew
	r.Filled, r.Leaves, r.CanceledQty = 0, 0, 0
	r.Fills = r.Fills[:0]
	r.SelfCancels = r.SelfCancels[:0]
}
