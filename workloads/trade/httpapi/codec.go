// Package httpapi serves the trade HTTP/JSON API (contract v1): orders,
// cancel, replace, order lookup, book snapshots, health and metrics.
package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/engine"
)

// OrderRequest is the body of POST /v1/orders.
type OrderRequest struct {
	ClientOrderID string          `json:"client_order_id"`
	Account       string          `json:"account"`
	Symbol        string          `json:"symbol"`
	Side          string          `json:"side"`
	Type          string          `json:"type"`
	TimeInForce   string          `json:"time_in_force"`
	Price         json.RawMessage `json:"price"`
	Quantity      json.RawMessage `json:"quantity"`
}

// ReplaceRequest is the body of POST /v1/orders/{id}/replace. An omitted
// field keeps the order's current value.
type ReplaceRequest struct {
	Price    json.RawMessage `json:"price"`
	Quantity json.RawMessage `json:"quantity"`
}

// apiError is the contract's error body.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func decodeStrict(r io.Reader, v any) *engine.Error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return &engine.Error{Code: engine.CodeMalformedJSON, Msg: "request body is not a valid JSON object: " + err.Error()}
	}
	if dec.More() {
		return &engine.Error{Code: engine.CodeMalformedJSON, Msg: "request body has data after the JSON object"}
	}
	return nil
}

// priceString accepts the contract's decimal string ("101.25") and, for
// robustness, a bare JSON number. null/absent gives "".
func priceString(raw json.RawMessage) (string, *engine.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &engine.Error{Code: engine.CodeMalformedJSON, Msg: "price is not a valid JSON string"}
		}
		return s, nil
	}
	if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
		return string(raw), nil
	}
	return "", &engine.Error{Code: engine.CodeInvalidPrice, Msg: fmt.Sprintf("price %s must be a decimal string such as \"101.25\"", raw)}
}

// quantity requires a positive whole JSON number (absent: 0, ok=false).
func quantity(raw json.RawMessage) (int64, bool, *engine.Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	s := string(raw)
	if raw[0] == '"' { // tolerate "100"
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, &engine.Error{Code: engine.CodeMalformedJSON, Msg: "quantity is not a valid JSON value"}
		}
	}
	q, err := strconv.ParseInt(s, 10, 64)
	if err != nil || q <= 0 || q > engine.MaxQuantity {
		return 0, false, &engine.Error{Code: engine.CodeInvalidQuantity, Msg: fmt.Sprintf("quantity %s must be a whole number from 1 to %d", raw, engine.MaxQuantity)}
	}
	return q, true, nil
}

// ToNewOrder validates the enumerations and converts a request.
func (r *OrderRequest) ToNewOrder() (engine.NewOrder, *engine.Error) {
	o := engine.NewOrder{ClientOrderID: r.ClientOrderID, Account: r.Account, Symbol: r.Symbol}
	switch r.Side {
	case "buy":
		o.Side = book.Buy
	case "sell":
		o.Side = book.Sell
	default:
		return o, &engine.Error{Code: engine.CodeInvalidSide, Msg: fmt.Sprintf("side %q must be \"buy\" or \"sell\"", r.Side)}
	}
	switch r.Type {
	case "limit", "":
		o.Type = book.Limit
	case "market":
		o.Type = book.Market
	default:
		return o, &engine.Error{Code: engine.CodeInvalidType, Msg: fmt.Sprintf("type %q must be \"limit\" or \"market\"", r.Type)}
	}
	switch r.TimeInForce {
	case "gtc", "":
		o.TIF = book.GTC
	case "ioc":
		o.TIF = book.IOC
	case "fok":
		o.TIF = book.FOK
	default:
		return o, &engine.Error{Code: engine.CodeInvalidTIF, Msg: fmt.Sprintf("time_in_force %q must be \"gtc\", \"ioc\" or \"fok\"", r.TimeInForce)}
	}
	var err *engine.Error
	if o.Price, err = priceString(r.Price); err != nil {
		return o, err
	}
	q, ok, err := quantity(r.Quantity)
	if err != nil {
		return o, err
	}
	if !ok {
		return o, &engine.Error{Code: engine.CodeInvalidQuantity, Msg: "quantity is required: a whole number from 1 to " + strconv.Itoa(engine.MaxQuantity)}
	}
	o.Quantity = q
	return o, nil
}

// OrderJSON is the contract's order object.
type OrderJSON struct {
	OrderID        string     `json:"order_id"`
	ClientOrderID  string     `json:"client_order_id"`
	Account        string     `json:"account"`
	Symbol         string     `json:"symbol"`
	Side           string     `json:"side"`
	Type           string     `json:"type"`
	TimeInForce    string     `json:"time_in_force"`
	Price          string     `json:"price"`
	Quantity       int64      `json:"quantity"`
	Status         string     `json:"status"`
	FilledQuantity int64      `json:"filled_quantity"`
	LeavesQuantity int64      `json:"leaves_quantity"`
	AvgPrice       string     `json:"avg_price"`
	Fills          []FillJSON `json:"fills"`
}

// FillJSON is one fill of an order.
type FillJSON struct {
	Price        string `json:"price"`
	Quantity     int64  `json:"quantity"`
	MakerOrderID string `json:"maker_order_id"`
	TakerOrderID string `json:"taker_order_id"`
}

func toJSON(o engine.Order) OrderJSON {
	j := OrderJSON{OrderID: strconv.FormatUint(o.ID, 10), ClientOrderID: o.ClientOrderID, Account: o.Account,
		Symbol: o.Symbol, Side: o.Side.String(), Type: o.Type.String(), TimeInForce: o.TIF.String(),
		Price: o.Price, Quantity: o.Quantity, Status: o.Status.String(), FilledQuantity: o.Filled,
		LeavesQuantity: o.Leaves, AvgPrice: o.AvgPrice, Fills: make([]FillJSON, 0, len(o.Fills))}
	for _, f := range o.Fills {
		j.Fills = append(j.Fills, FillJSON{Price: f.Price, Quantity: f.Quantity,
			MakerOrderID: strconv.FormatUint(f.MakerOrderID, 10), TakerOrderID: strconv.FormatUint(f.TakerOrderID, 10)})
	}
	return j
}

// LevelJSON is one level of a book snapshot.
type LevelJSON struct {
	Price    string `json:"price"`
	Quantity int64  `json:"quantity"`
	Orders   int    `json:"orders"`
}

// BookJSON is GET /v1/books/{symbol}.
type BookJSON struct {
	Symbol   string      `json:"symbol"`
	Sequence uint64      `json:"sequence"`
	Bids     []LevelJSON `json:"bids"`
	Asks     []LevelJSON `json:"asks"`
}

func levels(ls []engine.BookLevel) []LevelJSON {
	out := make([]LevelJSON, 0, len(ls))
	for _, l := range ls {
		out = append(out, LevelJSON{Price: l.Price, Quantity: l.Quantity, Orders: l.Orders})
	}
	return out
}
