package fixgw

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/quickfixgo/quickfix"
	"github.com/quickfixgo/quickfix/config"
	filestore "github.com/quickfixgo/quickfix/store/file"
)

// Config configures the acceptor. Sessions are configured in code.
type Config struct {
	Listen       string   // host:port
	SenderCompID string   // our CompID, e.g. "FINVIRT"
	TargetCompID []string // client CompIDs allowed to log on
	// StoreDir keeps message stores and sequence numbers in files so a
	// restart resumes sequence numbers; "" uses a memory store.
	StoreDir     string
	HeartBtInt   int  // seconds; 0 means 30
	ResetOnLogon bool // reset sequence numbers when a client logs on
}

// Stats counts gateway traffic for /metrics.
type Stats struct {
	Logons     atomic.Uint64
	AppIn      atomic.Uint64
	Reports    atomic.Uint64
	Rejects    atomic.Uint64
	SendErrors atomic.Uint64
}

// Gateway is a running FIX acceptor bound to an engine.
type Gateway struct {
	cfg   Config
	e     *engine.Engine
	acc   *quickfix.Acceptor
	q     *queue
	stats Stats

	mu       sync.Mutex
	sessions map[string]quickfix.SessionID // origin -> session
}

// Origin is the engine namespace of a FIX client's orders.
func Origin(targetCompID string) string { return "fix:" + targetCompID }

// New configures the acceptor; Start begins listening.
func New(e *engine.Engine, cfg Config) (*Gateway, error) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("fix gateway: listen address %q must be host:port: %w", cfg.Listen, err)
	}
	if cfg.SenderCompID == "" || len(cfg.TargetCompID) == 0 {
		return nil, errors.New("fix gateway: SenderCompID and at least one TargetCompID are required")
	}
	if cfg.HeartBtInt <= 0 {
		cfg.HeartBtInt = 30
	}
	g := &Gateway{cfg: cfg, e: e, sessions: map[string]quickfix.SessionID{}}
	s := quickfix.NewSettings()
	gs := s.GlobalSettings()
	gs.Set(config.BeginString, quickfix.BeginStringFIX44)
	gs.Set(config.SenderCompID, cfg.SenderCompID)
	gs.Set(config.SocketAcceptHost, host)
	gs.Set(config.SocketAcceptPort, port)
	gs.Set(config.HeartBtInt, strconv.Itoa(cfg.HeartBtInt))
	gs.Set(config.ResetOnLogon, yn(cfg.ResetOnLogon))
	if cfg.StoreDir != "" {
		gs.Set(config.FileStorePath, cfg.StoreDir)
		gs.Set(config.FileStoreSync, "Y")
	}
	for _, t := range cfg.TargetCompID {
		ss := quickfix.NewSessionSettings()
		ss.Set(config.TargetCompID, t)
		if _, err := s.AddSession(ss); err != nil {
			return nil, fmt.Errorf("fix gateway: session %s->%s: %w", cfg.SenderCompID, t, err)
		}
	}
	store := quickfix.NewMemoryStoreFactory()
	if cfg.StoreDir != "" {
		store = filestore.NewStoreFactory(s)
	}
	g.q = newQueue(g)
	if g.acc, err = quickfix.NewAcceptor(g, store, s, quickfix.NewNullLogFactory()); err != nil {
		return nil, fmt.Errorf("fix gateway: %w", err)
	}
	e.SetEventHook(g.q.push)
	return g, nil
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// Start listens for FIX connections.
func (g *Gateway) Start() error {
	go g.q.run()
	if err := g.acc.Start(); err != nil {
		return fmt.Errorf("fix gateway: listen on %s: %w", g.cfg.Listen, err)
	}
	return nil
}

// Stop logs out sessions and stops the acceptor and report dispatcher.
func (g *Gateway) Stop() {
	g.e.SetEventHook(nil)
	g.q.close()
	g.acc.Stop()
}

// Stats returns traffic counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

// --- quickfix.Application ---

func (g *Gateway) OnCreate(id quickfix.SessionID) {
	g.mu.Lock()
	g.sessions[Origin(id.TargetCompID)] = id
	g.mu.Unlock()
}

func (g *Gateway) OnLogon(quickfix.SessionID)                        { g.stats.Logons.Add(1) }
func (g *Gateway) OnLogout(quickfix.SessionID)                       {}
func (g *Gateway) ToAdmin(*quickfix.Message, quickfix.SessionID)     {}
func (g *Gateway) ToApp(*quickfix.Message, quickfix.SessionID) error { return nil }
func (g *Gateway) FromAdmin(*quickfix.Message, quickfix.SessionID) quickfix.MessageRejectError {
	return nil
}

// FromApp handles order entry. Engine commands are applied here (in the
// session's goroutine) without waiting for the journal; their execution
// reports go out through the queue once the journal made them durable.
func (g *Gateway) FromApp(m *quickfix.Message, id quickfix.SessionID) quickfix.MessageRejectError {
	g.stats.AppIn.Add(1)
	msgType, err := m.MsgType()
	if err != nil {
		return err
	}
	origin := Origin(id.TargetCompID)
	switch msgType {
	case "D":
		g.newOrder(m, id, origin)
	case "F":
		g.cancel(m, id, origin)
	case "G":
		g.replace(m, id, origin)
	default:
		g.send(businessReject(m, &bizReject{reason: bizRejUnsupportedType, text: "message type " + msgType + " is not supported: send D, F or G"}), id)
	}
	return nil
}

func (g *Gateway) send(m *quickfix.Message, id quickfix.SessionID) {
	if err := quickfix.SendToTarget(m, id); err != nil {
		g.stats.SendErrors.Add(1)
	}
}

func (g *Gateway) newOrder(m *quickfix.Message, id quickfix.SessionID, origin string) {
	req, br, verr := parseNewOrder(m, origin)
	if br != nil {
		g.stats.Rejects.Add(1)
		g.send(businessReject(m, br), id)
		return
	}
	if verr == nil {
		if _, _, err := g.e.PlaceAsync(req); err != nil {
			if !errors.As(err, &verr) {
				verr = &engine.Error{Code: engine.CodeUnavailable, Msg: err.Error()}
			}
		}
	}
	if verr != nil {
		g.stats.Rejects.Add(1)
		g.send(orderReject(m, req, verr), id)
	}
}

// resolve finds the session's order a cancel/replace refers to: by
// OrderID (37) when given, else by OrigClOrdID (41).
func (g *Gateway) resolve(ref cancelRef, origin string) (engine.Order, bool) {
	if ref.orderID != "" {
		if n, err := strconv.ParseUint(ref.orderID, 10, 64); err == nil {
			if o, ok := g.e.Get(n); ok && o.Origin == origin {
				return o, true
			}
		}
	}
	if n, ok := g.e.LookupClientID(origin, ref.origClOrdID); ok {
		return g.e.Get(n)
	}
	return engine.Order{}, false
}

func (g *Gateway) cancel(m *quickfix.Message, id quickfix.SessionID, origin string) {
	g.cancelOrReplace(m, id, origin, cxlRespCancel)
}

func (g *Gateway) replace(m *quickfix.Message, id quickfix.SessionID, origin string) {
	g.cancelOrReplace(m, id, origin, cxlRespReplace)
}

func (g *Gateway) cancelOrReplace(m *quickfix.Message, id quickfix.SessionID, origin, respTo string) {
	ref, br := parseCancelRef(m)
	if br != nil {
		g.stats.Rejects.Add(1)
		g.send(businessReject(m, br), id)
		return
	}
	o, ok := g.resolve(ref, origin)
	if !ok {
		g.stats.Rejects.Add(1)
		g.send(cancelReject(ref, nil, respTo, cxlRejUnknownOrder, "order "+ref.origClOrdID+" is unknown to this session"), id)
		return
	}
	var err error
	if respTo == cxlRespCancel {
		_, _, err = g.e.CancelAsync(o.ID, ref.clOrdID, origin)
	} else {
		price, qty, br, verr := parseReplace(m)
		if br != nil {
			g.stats.Rejects.Add(1)
			g.send(businessReject(m, br), id)
			return
		}
		if verr != nil {
			err = verr
		} else {
			_, _, err = g.e.ReplaceAsync(o.ID, price, qty, ref.clOrdID, origin)
		}
	}
	if err == nil {
		return
	}
	g.stats.Rejects.Add(1)
	reason := cxlRejOther
	var ee *engine.Error
	if errors.As(err, &ee) {
		switch {
		case ee.Code == engine.CodeOrderNotFound && ee.TooLate:
			reason = cxlRejTooLate
		case ee.Code == engine.CodeOrderNotFound:
			reason = cxlRejUnknownOrder
		case ee.Code == engine.CodeDuplicateClientID:
			reason = cxlRejDuplicateID
		}
	}
	cur, _ := g.e.Get(o.ID)
	g.send(cancelReject(ref, &cur, respTo, reason, err.Error()), id)
}

// session returns the FIX session of an origin.
func (g *Gateway) session(origin string) (quickfix.SessionID, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.sessions[origin]
	return id, ok
}
