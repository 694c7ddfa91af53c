package fixgw

import (
	"strconv"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/quickfixgo/quickfix"
)

func newMessage(msgType string) *quickfix.Message {
	m := quickfix.NewMessage()
	m.Header.SetString(tagMsgType, msgType)
	return m
}

func ordStatus(s book.Status) string {
	switch s {
	case book.StatusPartiallyFilled:
		return ordStatusPartial
	case book.StatusFilled:
		return ordStatusFilled
	case book.StatusCanceled:
		return ordStatusCanceled
	case book.StatusRejected:
		return ordStatusRejected
	}
	return ordStatusNew
}

func fixSide(s book.Side) string {
	if s == book.Buy {
		return "1"
	}
	return "2"
}

func fixOrdType(t book.OrdType) string {
	if t == book.Market {
		return "1"
	}
	return "2"
}

func fixTIF(t book.TIF) string {
	switch t {
	case book.IOC:
		return "3"
	case book.FOK:
		return "4"
	}
	return "1"
}

var execTypes = map[engine.ExecKind]string{
	engine.ExecNew:      execTypeNew,
	engine.ExecTrade:    execTypeTrade,
	engine.ExecCanceled: execTypeCanceled,
	engine.ExecReplaced: execTypeReplaced,
}

// executionReport builds an 8 for one engine event.
func executionReport(ev *engine.Event) *quickfix.Message {
	o := &ev.Order
	m := newMessage("8")
	b := &m.Body
	b.SetString(tagOrderID, strconv.FormatUint(o.ID, 10))
	b.SetString(tagClOrdID, o.ClientOrderID)
	if (ev.Kind == engine.ExecReplaced || ev.Kind == engine.ExecCanceled) && !ev.SelfTrade && o.OrigClientOrderID != "" {
		b.SetString(tagOrigClOrdID, o.OrigClientOrderID)
	}
	b.SetString(tagExecID, ev.ExecID)
	b.SetString(tagExecType, execTypes[ev.Kind])
	b.SetString(tagOrdStatus, ordStatus(o.Status))
	if o.Account != "" {
		b.SetString(tagAccount, o.Account)
	}
	b.SetString(tagSymbol, o.Symbol)
	b.SetString(tagSide, fixSide(o.Side))
	b.SetString(tagOrdType, fixOrdType(o.Type))
	if o.Price != "" {
		b.SetString(tagPrice, o.Price)
	}
	b.SetString(tagTimeInForce, fixTIF(o.TIF))
	b.SetInt(tagOrderQty, int(o.Quantity))
	b.SetInt(tagLeavesQty, int(o.Leaves))
	b.SetInt(tagCumQty, int(o.Filled))
	b.SetString(tagAvgPx, o.AvgPrice)
	if ev.Kind == engine.ExecTrade {
		b.SetInt(tagLastQty, int(ev.LastQty))
		b.SetString(tagLastPx, ev.LastPx)
	}
	if ev.SelfTrade {
		b.SetString(tagText, "canceled by self-trade prevention: an order of the same account crossed it")
	}
	b.SetString(tagTransactTime, time.Now().UTC().Format("20060102-15:04:05.000"))
	return m
}

var ordRejReasons = map[string]string{
	engine.CodeUnknownSymbol:     ordRejUnknownSymbol,
	engine.CodeDuplicateClientID: ordRejDuplicate,
	engine.CodeInvalidQuantity:   ordRejIncorrectQty,
}

// orderReject is the 8 (ExecType=8, OrdStatus=8) for an invalid D.
func orderReject(in *quickfix.Message, req engine.NewOrder, err *engine.Error) *quickfix.Message {
	m := newMessage("8")
	b := &m.Body
	b.SetString(tagOrderID, "NONE")
	b.SetString(tagClOrdID, req.ClientOrderID)
	b.SetString(tagExecID, "rej-"+req.ClientOrderID)
	b.SetString(tagExecType, execTypeRejected)
	b.SetString(tagOrdStatus, ordStatusRejected)
	reason, ok := ordRejReasons[err.Code]
	if !ok {
		reason = ordRejOther
	}
	b.SetString(tagOrdRejReason, reason)
	for _, t := range []quickfix.Tag{tagSymbol, tagSide, tagOrderQty, tagPrice, tagOrdType, tagAccount} {
		if v, ok := field(in, t); ok {
			b.SetString(t, v)
		}
	}
	b.SetInt(tagLeavesQty, 0)
	b.SetInt(tagCumQty, 0)
	b.SetString(tagAvgPx, "0")
	b.SetString(tagText, err.Code+": "+err.Msg)
	b.SetString(tagTransactTime, time.Now().UTC().Format("20060102-15:04:05.000"))
	return m
}

// cancelReject is the 9 for a refused F or G. cur is the order's state
// when it is known.
func cancelReject(ref cancelRef, cur *engine.Order, respTo, reason, text string) *quickfix.Message {
	m := newMessage("9")
	b := &m.Body
	b.SetString(tagClOrdID, ref.clOrdID)
	b.SetString(tagOrigClOrdID, ref.origClOrdID)
	if cur != nil {
		b.SetString(tagOrderID, strconv.FormatUint(cur.ID, 10))
		b.SetString(tagOrdStatus, ordStatus(cur.Status))
	} else {
		b.SetString(tagOrderID, "NONE")
		b.SetString(tagOrdStatus, ordStatusRejected)
	}
	b.SetString(tagCxlRejResponseTo, respTo)
	b.SetString(tagCxlRejReason, reason)
	b.SetString(tagText, text)
	return m
}

// businessReject is the j for a message the gateway cannot process.
func businessReject(in *quickfix.Message, br *bizReject) *quickfix.Message {
	m := newMessage("j")
	if seq, err := in.Header.GetInt(tagMsgSeqNum); err == nil {
		m.Body.SetInt(tagRefSeqNum, seq)
	}
	if t, err := in.MsgType(); err == nil {
		m.Body.SetString(tagRefMsgType, t)
	}
	m.Body.SetString(tagBusinessRejectReason, br.reason)
	m.Body.SetString(tagText, br.text)
	return m
}
