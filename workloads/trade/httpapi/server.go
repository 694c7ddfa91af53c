package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const maxBody = 64 << 10

// Server is the HTTP API over one engine.
type Server struct {
	e       *engine.Engine
	mux     *http.ServeMux
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
}

// New builds the handler tree.
func New(e *engine.Engine) *Server {
	s := &Server{e: e, mux: http.NewServeMux(), reg: prometheus.NewRegistry()}
	s.metrics()
	s.handle("POST /v1/orders", "place", s.place)
	s.handle("DELETE /v1/orders/{order_id}", "cancel", s.cancel)
	s.handle("POST /v1/orders/{order_id}/replace", "replace", s.replace)
	s.handle("GET /v1/orders/{order_id}", "get", s.get)
	s.handle("GET /v1/books/{symbol}", "book", s.book)
	s.handle("GET /v1/debug/hash", "hash", s.hash)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	})
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Registry lets the binary add its own collectors (e.g. FIX gateway).
func (s *Server) Registry() *prometheus.Registry { return s.reg }

func (s *Server) metrics() {
	st := s.e.Stats()
	counter := func(name, help string, f func() uint64) {
		s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) }))
	}
	counter("trade_commands_accepted_total", "Commands journaled and applied.", st.Accepted.Load)
	counter("trade_commands_rejected_total", "Commands rejected by validation (nothing changed).", st.Rejected.Load)
	counter("trade_trades_total", "Fills between a maker and a taker.", st.Trades.Load)
	counter("trade_volume_total", "Quantity traded.", st.Volume.Load)
	counter("trade_commands_replayed_total", "Commands replayed from the journal at start.", st.Replayed.Load)
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trade_order_records", Help: "Order records kept in memory (open and terminal)."},
		func() float64 { n, _ := s.e.Counts(); return float64(n) }))
	s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "trade_resting_orders", Help: "Orders resting in the books."},
		func() float64 { _, n := s.e.Counts(); return float64(n) }))
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "trade_http_request_seconds",
		Help: "HTTP request latency by route, including journal durability wait.", Buckets: prometheus.ExponentialBuckets(20e-6, 2, 16)},
		[]string{"route", "code"})
	s.reg.MustRegister(s.latency, prometheus.NewGoCollector())
}

type handler func(r *http.Request) (int, any)

func (s *Server) handle(pattern, route string, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		code, body := h(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(body)
		s.latency.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

// fail maps an engine error to the contract's status and body.
func fail(err error) (int, any) {
	var e *engine.Error
	if !errors.As(err, &e) {
		return http.StatusInternalServerError, apiError{Error: err.Error(), Code: "internal"}
	}
	status := http.StatusBadRequest
	switch e.Code {
	case engine.CodeOrderNotFound:
		status = http.StatusNotFound
	case engine.CodeDuplicateClientID:
		status = http.StatusConflict
	case engine.CodeUnavailable:
		status = http.StatusServiceUnavailable
	}
	return status, apiError{Error: e.Msg, Code: e.Code}
}

func orderID(r *http.Request) (uint64, error) {
	s := r.PathValue("order_id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, &engine.Error{Code: engine.CodeOrderNotFound, Msg: "order " + strconv.Quote(s) + " does not exist: order ids are the decimal numbers returned by POST /v1/orders"}
	}
	return id, nil
}

func (s *Server) place(r *http.Request) (int, any) {
	var req OrderRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return fail(err)
	}
	no, verr := req.ToNewOrder()
	if verr != nil {
		s.e.Stats().Rejected.Add(1)
		return fail(verr)
	}
	o, err := s.e.Place(no)
	if err != nil {
		return fail(err)
	}
	return http.StatusCreated, toJSON(o)
}

func (s *Server) cancel(r *http.Request) (int, any) {
	id, err := orderID(r)
	if err != nil {
		return fail(err)
	}
	o, err := s.e.Cancel(id)
	if err != nil {
		return fail(err)
	}
	return http.StatusOK, toJSON(o)
}

func (s *Server) replace(r *http.Request) (int, any) {
	id, err := orderID(r)
	if err != nil {
		return fail(err)
	}
	var req ReplaceRequest
	if err := decodeStrict(r.Body, &req); err != nil {
		return fail(err)
	}
	price, perr := priceString(req.Price)
	if perr != nil {
		return fail(perr)
	}
	qty, hasQty, perr := quantity(req.Quantity)
	if perr != nil {
		return fail(perr)
	}
	if price == "" || !hasQty {
		cur, ok := s.e.Get(id)
		if !ok {
			return fail(&engine.Error{Code: engine.CodeOrderNotFound, Msg: "order " + strconv.FormatUint(id, 10) + " does not exist"})
		}
		if price == "" {
			price = cur.Price
		}
		if !hasQty {
			qty = cur.Quantity
		}
	}
	o, err := s.e.Replace(id, price, qty, "", "")
	if err != nil {
		return fail(err)
	}
	return http.StatusOK, toJSON(o)
}

func (s *Server) get(r *http.Request) (int, any) {
	id, err := orderID(r)
	if err != nil {
		return fail(err)
	}
	o, ok := s.e.Get(id)
	if !ok {
		return fail(&engine.Error{Code: engine.CodeOrderNotFound, Msg: "order " + strconv.FormatUint(id, 10) + " does not exist"})
	}
	return http.StatusOK, toJSON(o)
}

func (s *Server) book(r *http.Request) (int, any) {
	depth := 10
	if d := r.URL.Query().Get("depth"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 1 || n > 1000 {
			return http.StatusBadRequest, apiError{Error: "depth " + strconv.Quote(d) + " must be a whole number from 1 to 1000", Code: "invalid_depth"}
		}
		depth = n
	}
	v, err := s.e.Book(r.PathValue("symbol"), depth)
	if err != nil {
		code, body := fail(err)
		if code == http.StatusBadRequest {
			code = http.StatusNotFound
		}
		return code, body
	}
	return http.StatusOK, BookJSON{Symbol: v.Symbol, Sequence: v.Sequence, Bids: levels(v.Bids), Asks: levels(v.Asks)}
}

// HashJSON is GET /v1/debug/hash: the deterministic book hashes used to
// verify journal replay.
type HashJSON struct {
	Hash  string            `json:"hash"`
	Books map[string]string `json:"books"`
}

func (s *Server) hash(*http.Request) (int, any) {
	books, all := s.e.Hashes()
	return http.StatusOK, HashJSON{Hash: all, Books: books}
}
