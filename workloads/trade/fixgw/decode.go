package fixgw

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/quickfixgo/quickfix"
)

// bizReject is a message the gateway cannot act on at all; it is answered
// with a BusinessMessageReject (j).
type bizReject struct {
	reason string // BusinessRejectReason (380)
	text   string
}

func (b *bizReject) Error() string { return b.text }

func field(m *quickfix.Message, tag quickfix.Tag) (string, bool) {
	if !m.Body.Has(tag) {
		return "", false
	}
	v, err := m.Body.GetString(tag)
	if err != nil {
		return "", false
	}
	return v, true
}

func required(m *quickfix.Message, tag quickfix.Tag, name string) (string, *bizReject) {
	v, ok := field(m, tag)
	if !ok || v == "" {
		return "", &bizReject{reason: bizRejRequiredMissing, text: fmt.Sprintf("required field %s (%d) missing", name, tag)}
	}
	return v, nil
}

// parseQty accepts FIX Qty values that are whole numbers ("100", "100.0").
func parseQty(s string) (int64, *engine.Error) {
	t := strings.TrimSpace(s)
	if i := strings.IndexByte(t, '.'); i >= 0 && strings.Trim(t[i+1:], "0") == "" {
		t = t[:i]
	}
	q, err := strconv.ParseInt(t, 10, 64)
	if err != nil || q <= 0 || q > engine.MaxQuantity {
		return 0, &engine.Error{Code: engine.CodeInvalidQuantity, Msg: fmt.Sprintf("OrderQty (38) %q must be a whole number from 1 to %d", s, engine.MaxQuantity)}
	}
	return q, nil
}

func parseSide(s string) (book.Side, *engine.Error) {
	switch s {
	case "1":
		return book.Buy, nil
	case "2":
		return book.Sell, nil
	}
	return 0, &engine.Error{Code: engine.CodeInvalidSide, Msg: fmt.Sprintf("Side (54) %q unsupported: use 1 (buy) or 2 (sell)", s)}
}

// parseNewOrder decodes a NewOrderSingle (D).
func parseNewOrder(m *quickfix.Message, origin string) (engine.NewOrder, *bizReject, *engine.Error) {
	var o engine.NewOrder
	o.Origin = origin
	var br *bizReject
	if o.ClientOrderID, br = required(m, tagClOrdID, "ClOrdID"); br != nil {
		return o, br, nil
	}
	if o.Symbol, br = required(m, tagSymbol, "Symbol"); br != nil {
		return o, br, nil
	}
	side, br := required(m, tagSide, "Side")
	if br != nil {
		return o, br, nil
	}
	qty, br := required(m, tagOrderQty, "OrderQty")
	if br != nil {
		return o, br, nil
	}
	ordType, br := required(m, tagOrdType, "OrdType")
	if br != nil {
		return o, br, nil
	}
	o.Account, _ = field(m, tagAccount)
	var err *engine.Error
	if o.Side, err = parseSide(side); err != nil {
		return o, nil, err
	}
	switch ordType {
	case "1":
		o.Type = book.Market
	case "2":
		o.Type = book.Limit
		if o.Price, br = required(m, tagPrice, "Price"); br != nil {
			return o, br, nil
		}
	default:
		return o, nil, &engine.Error{Code: engine.CodeInvalidType, Msg: fmt.Sprintf("OrdType (40) %q unsupported: use 1 (market) or 2 (limit)", ordType)}
	}
	tif, _ := field(m, tagTimeInForce)
	switch tif {
	case "", "0", "1": // Day is treated as GTC: the engine has no sessions
		o.TIF = book.GTC
	case "3":
		o.TIF = book.IOC
	case "4":
		o.TIF = book.FOK
	default:
		return o, nil, &engine.Error{Code: engine.CodeInvalidTIF, Msg: fmt.Sprintf("TimeInForce (59) %q unsupported: use 0/1 (day/GTC), 3 (IOC) or 4 (FOK)", tif)}
	}
	if o.Quantity, err = parseQty(qty); err != nil {
		return o, nil, err
	}
	return o, nil, nil
}

// cancelRef is the order reference of F and G: ClOrdID (11) of the
// request, OrigClOrdID (41), optional OrderID (37).
type cancelRef struct {
	clOrdID, origClOrdID, orderID string
}

func parseCancelRef(m *quickfix.Message) (cancelRef, *bizReject) {
	var r cancelRef
	var br *bizReject
	if r.clOrdID, br = required(m, tagClOrdID, "ClOrdID"); br != nil {
		return r, br
	}
	if r.origClOrdID, br = required(m, tagOrigClOrdID, "OrigClOrdID"); br != nil {
		return r, br
	}
	r.orderID, _ = field(m, tagOrderID)
	return r, nil
}

// parseReplace decodes the new terms of a G: Price (44) and OrderQty (38).
func parseReplace(m *quickfix.Message) (price string, qty int64, br *bizReject, err *engine.Error) {
	qs, br := required(m, tagOrderQty, "OrderQty")
	if br != nil {
		return "", 0, br, nil
	}
	if price, br = required(m, tagPrice, "Price"); br != nil {
		return "", 0, br, nil
	}
	qty, err = parseQty(qs)
	return price, qty, nil, err
}
