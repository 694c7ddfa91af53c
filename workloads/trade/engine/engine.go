// Package engine is the multi-symbol trading engine: one price-time order
// book per symbol, order records with client order ids and accounts,
// decimal <-> tick conversion, and the journal. Every accepted command is
// appended to the journal before it is applied, under the engine lock, so
// journal order is apply order; callers are answered only after the
// journal made their command durable. Replaying the journal through the
// same apply code rebuilds an identical engine.
package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/journal"
)

// Config configures an engine.
type Config struct {
	Symbols   []SymbolConfig
	SelfTrade book.SelfTradePolicy
	// Now stamps commands; nil means time.Now.
	Now func() time.Time
}

// Engine is safe for concurrent use.
type Engine struct {
	mu        sync.Mutex
	cfg       Config
	symbols   map[string]*symbol
	names     []string // sorted
	books     map[string]*book.Book
	orders    map[uint64]*record
	clientIDs map[string]uint64 // namespace \x00 client id -> order id
	owners    map[string]uint32 // account -> self-trade owner id
	nextID    uint64
	res       book.Result
	enc       []byte
	j         *journal.Journal
	hook      func(lsn uint64, evs []Event)
	evs       []Event
	lastFills []fillRec
	cmdSeq    uint64 // commands applied, live and replayed (ExecID source)
	stats     Stats
}

// Stats are cumulative counters for /metrics.
type Stats struct {
	Accepted atomic.Uint64
	Rejected atomic.Uint64
	Trades   atomic.Uint64
	Volume   atomic.Uint64
	Replayed atomic.Uint64
}

// New returns an engine without a journal (tests, benchmarks).
func New(cfg Config) (*Engine, error) {
	if len(cfg.Symbols) == 0 {
		return nil, fmt.Errorf("engine: no symbols configured")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{
		cfg:       cfg,
		symbols:   map[string]*symbol{},
		books:     map[string]*book.Book{},
		orders:    map[uint64]*record{},
		clientIDs: map[string]uint64{},
		owners:    map[string]uint32{},
	}
	for _, s := range cfg.Symbols {
		if _, dup := e.symbols[s.Name]; dup {
			return nil, fmt.Errorf("engine: symbol %s configured twice", s.Name)
		}
		e.symbols[s.Name] = newSymbol(s)
		e.books[s.Name] = book.New(cfg.SelfTrade, 1024)
		e.names = append(e.names, s.Name)
	}
	sort.Strings(e.names)
	return e, nil
}

// JournalFile is the journal's file name inside the data directory.
const JournalFile = "trade.journal"

// Open creates an engine whose state is the replay of dataDir's journal
// (torn tail truncated) and which journals every further command. It
// returns the number of commands replayed and bytes truncated.
func Open(cfg Config, dataDir string, opts journal.Options) (*Engine, uint64, int64, error) {
	e, err := New(cfg)
	if err != nil {
		return nil, 0, 0, err
	}
	var n uint64
	j, cut, err := journal.Open(filepath.Join(dataDir, JournalFile), opts, func(p []byte) error {
		c, err := DecodeCommand(p)
		if err != nil {
			return err
		}
		if err := e.apply(&c, 0); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}
	e.j = j
	e.stats.Replayed.Store(n)
	return e, n, cut, nil
}

// Close flushes and closes the journal.
func (e *Engine) Close() error {
	if e.j == nil {
		return nil
	}
	return e.j.Close()
}

// SetEventHook registers fn to receive execution events of orders that
// have an Origin (FIX orders). fn is called under the engine lock, in apply
// order, with the command's journal LSN; it must not block or call back
// into the engine, and must copy evs.
func (e *Engine) SetEventHook(fn func(lsn uint64, evs []Event)) {
	e.mu.Lock()
	e.hook = fn
	e.mu.Unlock()
}

// WaitDurable blocks until journal record lsn is durable.
func (e *Engine) WaitDurable(lsn uint64) error {
	if e.j == nil || lsn == 0 {
		return nil
	}
	if err := e.j.Wait(lsn); err != nil {
		return &Error{Code: CodeUnavailable, Msg: err.Error()}
	}
	return nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() *Stats { return &e.stats }

// Counts returns the number of order records kept (open and terminal) and
// of orders resting in the books.
func (e *Engine) Counts() (records, resting int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.books {
		resting += b.Len()
	}
	return len(e.orders), resting
}

// Symbols returns the configured symbol names, sorted.
func (e *Engine) Symbols() []string { return e.names }

func clientKey(ns, id string) string { return ns + "\x00" + id }

// journalAndApply is the single path of every accepted command.
func (e *Engine) journalAndApply(c *Command) (uint64, error) {
	var lsn uint64
	if e.j != nil {
		e.enc = c.Encode(e.enc[:0])
		var err error
		if lsn, err = e.j.Append(e.enc); err != nil {
			return 0, &Error{Code: CodeUnavailable, Msg: err.Error()}
		}
	}
	if err := e.apply(c, lsn); err != nil {
		// Validation mirrors the book's checks, so this is a bug; the
		// journal holds the command and replay will reject it the same way.
		return lsn, err
	}
	e.stats.Accepted.Add(1)
	return lsn, nil
}

func (e *Engine) reject(err *Error) (Order, error) {
	e.stats.Rejected.Add(1)
	return Order{}, err
}

// NewOrder is a request to place an order, with prices as decimal strings.
type NewOrder struct {
	ClientOrderID string
	Account       string
	Symbol        string
	Side          book.Side
	Type          book.OrdType
	TIF           book.TIF
	Price         string // ignored for market orders
	Quantity      int64
	// Origin namespaces client order ids and marks orders whose executions
	// are reported through the event hook ("" for HTTP).
	Origin string
}

// Place validates and executes a new order and returns its state after
// the command once it is durable.
func (e *Engine) Place(req NewOrder) (Order, error) {
	o, lsn, err := e.PlaceAsync(req)
	if err != nil {
		return o, err
	}
	return o, e.WaitDurable(lsn)
}

// PlaceAsync is Place without waiting for durability: the caller must call
// WaitDurable(lsn) before acknowledging.
func (e *Engine) PlaceAsync(req NewOrder) (Order, uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sym := e.symbols[req.Symbol]
	if sym == nil {
		o, err := e.reject(errorf(CodeUnknownSymbol, "symbol %q is not traded here; known symbols: %v", req.Symbol, e.names))
		return o, 0, err
	}
	if req.ClientOrderID == "" || len(req.ClientOrderID) > 64 {
		o, err := e.reject(errorf(CodeInvalidClientID, "client_order_id must be 1 to 64 characters, got %d", len(req.ClientOrderID)))
		return o, 0, err
	}
	if len(req.Account) > 64 {
		o, err := e.reject(errorf(CodeInvalidAccount, "account must be at most 64 characters, got %d", len(req.Account)))
		return o, 0, err
	}
	if req.Quantity <= 0 || req.Quantity > MaxQuantity {
		o, err := e.reject(errorf(CodeInvalidQuantity, "quantity %d for order %s must be a whole number from 1 to %d", req.Quantity, req.ClientOrderID, MaxQuantity))
		return o, 0, err
	}
	var price int64
	if req.Type == book.Limit {
		var perr *Error
		if price, perr = sym.parsePrice(req.Price); perr != nil {
			o, err := e.reject(perr)
			return o, 0, err
		}
	}
	if id, dup := e.clientIDs[clientKey(req.Origin, req.ClientOrderID)]; dup {
		o, err := e.reject(errorf(CodeDuplicateClientID, "client_order_id %q is already used by order %d; use a new id per order", req.ClientOrderID, id))
		return o, 0, err
	}
	c := Command{Kind: CmdPlace, OrderID: e.nextID + 1, TimeNano: e.cfg.Now().UnixNano(), Symbol: req.Symbol,
		ClientID: req.ClientOrderID, Account: req.Account, Origin: req.Origin,
		Side: req.Side, Type: req.Type, TIF: req.TIF, Price: price, Qty: req.Quantity}
	lsn, err := e.journalAndApply(&c)
	if err != nil {
		return Order{}, 0, err
	}
	return e.view(e.orders[c.OrderID], e.lastFills), lsn, nil
}

// open returns the record of an open order or the precise error.
func (e *Engine) open(id uint64) (*record, *Error) {
	r := e.orders[id]
	if r == nil {
		return nil, errorf(CodeOrderNotFound, "order %d does not exist", id)
	}
	if !r.open() {
		err := errorf(CodeOrderNotFound, "order %d is already %s; only open orders can be canceled or replaced", id, r.status)
		err.TooLate = true
		return r, err
	}
	return r, nil
}

// Cancel cancels an open order.
func (e *Engine) Cancel(id uint64) (Order, error) {
	o, lsn, err := e.CancelAsync(id, "", "")
	if err != nil {
		return o, err
	}
	return o, e.WaitDurable(lsn)
}

// CancelAsync is Cancel without waiting for durability. newClientID (FIX
// ClOrdID of the cancel request, optional) becomes the order's client id.
func (e *Engine) CancelAsync(id uint64, newClientID, origin string) (Order, uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, perr := e.open(id)
	if perr != nil {
		o, err := e.reject(perr)
		if r != nil {
			o = e.view(r, nil)
		}
		return o, 0, err
	}
	if perr := e.checkNewClientID(newClientID, origin); perr != nil {
		o, err := e.reject(perr)
		return o, 0, err
	}
	c := Command{Kind: CmdCancel, OrderID: id, TimeNano: e.cfg.Now().UnixNano(), Symbol: r.sym.name, NewClientID: newClientID}
	lsn, err := e.journalAndApply(&c)
	if err != nil {
		return Order{}, 0, err
	}
	return e.view(r, nil), lsn, nil
}

// Replace changes an open order's price and total quantity. newClientID
// (FIX ClOrdID) is optional; when set it becomes the order's client id.
func (e *Engine) Replace(id uint64, price string, qty int64, newClientID, origin string) (Order, error) {
	o, lsn, err := e.ReplaceAsync(id, price, qty, newClientID, origin)
	if err != nil {
		return o, err
	}
	return o, e.WaitDurable(lsn)
}

// ReplaceAsync is Replace without waiting for durability.
func (e *Engine) ReplaceAsync(id uint64, price string, qty int64, newClientID, origin string) (Order, uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, perr := e.open(id)
	if perr != nil {
		o, err := e.reject(perr)
		if r != nil {
			o = e.view(r, nil)
		}
		return o, 0, err
	}
	if r.typ != book.Limit {
		o, err := e.reject(errorf(CodeInvalidPrice, "order %d is a market order; only limit orders can be replaced", id))
		return o, 0, err
	}
	ticks, perr := r.sym.parsePrice(price)
	if perr != nil {
		o, err := e.reject(perr)
		return o, 0, err
	}
	if qty <= 0 || qty > MaxQuantity {
		o, err := e.reject(errorf(CodeInvalidQuantity, "quantity %d for order %d must be a whole number from 1 to %d", qty, id, MaxQuantity))
		return o, 0, err
	}
	if qty <= r.filled {
		o, err := e.reject(errorf(CodeInvalidQuantity, "quantity %d for order %d must exceed its filled quantity %d", qty, id, r.filled))
		return o, 0, err
	}
	if perr := e.checkNewClientID(newClientID, origin); perr != nil {
		o, err := e.reject(perr)
		return o, 0, err
	}
	c := Command{Kind: CmdReplace, OrderID: id, TimeNano: e.cfg.Now().UnixNano(), Symbol: r.sym.name,
		Price: ticks, Qty: qty, NewClientID: newClientID}
	lsn, err := e.journalAndApply(&c)
	if err != nil {
		return Order{}, 0, err
	}
	return e.view(r, e.lastFills), lsn, nil
}

func (e *Engine) checkNewClientID(id, origin string) *Error {
	if id == "" {
		return nil
	}
	if len(id) > 64 {
		return errorf(CodeInvalidClientID, "client_order_id must be 1 to 64 characters, got %d", len(id))
	}
	if other, dup := e.clientIDs[clientKey(origin, id)]; dup {
		return errorf(CodeDuplicateClientID, "client_order_id %q is already used by order %d; use a new id per request", id, other)
	}
	return nil
}

// Get returns an order (open or terminal).
func (e *Engine) Get(id uint64) (Order, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.orders[id]
	if r == nil {
		return Order{}, false
	}
	return e.view(r, r.fills), true
}

// LookupClientID finds the order that carries (or carried) a client order
// id in a namespace.
func (e *Engine) LookupClientID(ns, clientID string) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id, ok := e.clientIDs[clientKey(ns, clientID)]
	return id, ok
}

// BookLevel is one aggregated level of a depth snapshot.
type BookLevel struct {
	Price    string
	Quantity int64
	Orders   int
}

// BookView is a market-data snapshot of the top levels.
type BookView struct {
	Symbol   string
	Sequence uint64
	Bids     []BookLevel
	Asks     []BookLevel
}

// Book returns the top depth levels of each side (depth <= 0: all).
func (e *Engine) Book(symbolName string, depth int) (BookView, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sym := e.symbols[symbolName]
	if sym == nil {
		return BookView{}, errorf(CodeUnknownSymbol, "symbol %q is not traded here; known symbols: %v", symbolName, e.names)
	}
	b := e.books[symbolName]
	v := BookView{Symbol: symbolName, Sequence: b.Seq(), Bids: []BookLevel{}, Asks: []BookLevel{}}
	conv := func(ls []book.LevelView) []BookLevel {
		out := make([]BookLevel, 0, len(ls))
		for _, l := range ls {
			out = append(out, BookLevel{Price: sym.formatPrice(l.Price), Quantity: l.Qty, Orders: l.Orders})
		}
		return out
	}
	v.Bids = conv(b.Depth(book.Buy, depth, nil))
	v.Asks = conv(b.Depth(book.Sell, depth, nil))
	return v, nil
}

// Hashes returns each book's deterministic hash (hex) and a combined hash
// over all symbols in name order.
func (e *Engine) Hashes() (map[string]string, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	all := sha256.New()
	for _, n := range e.names {
		h := e.books[n].Hash()
		out[n] = hex.EncodeToString(h[:])
		all.Write([]byte(n))
		all.Write(h[:])
	}
	return out, hex.EncodeToString(all.Sum(nil))
}
