// Package fixgw is the FIX 4.4 order-entry gateway: a QuickFIX/Go acceptor
// translating NewOrderSingle (D), OrderCancelRequest (F) and
// OrderCancelReplaceRequest (G) into engine commands and reporting with
// ExecutionReport (8), OrderCancelReject (9) and BusinessMessageReject (j).
// Messages are built from raw tag numbers with quickfix.Message (the
// generated fix44 packages are not available from the module proxy here).
package fixgw

import "github.com/quickfixgo/quickfix"

// FIX 4.4 tags used by the gateway.
const (
	tagAccount              quickfix.Tag = 1
	tagAvgPx                quickfix.Tag = 6
	tagClOrdID              quickfix.Tag = 11
	tagCumQty               quickfix.Tag = 14
	tagExecID               quickfix.Tag = 17
	tagLastPx               quickfix.Tag = 31
	tagLastQty              quickfix.Tag = 32
	tagMsgSeqNum            quickfix.Tag = 34
	tagMsgType              quickfix.Tag = 35
	tagOrderID              quickfix.Tag = 37
	tagOrderQty             quickfix.Tag = 38
	tagOrdStatus            quickfix.Tag = 39
	tagOrdType              quickfix.Tag = 40
	tagOrigClOrdID          quickfix.Tag = 41
	tagPrice                quickfix.Tag = 44
	tagRefSeqNum            quickfix.Tag = 45
	tagSide                 quickfix.Tag = 54
	tagSymbol               quickfix.Tag = 55
	tagText                 quickfix.Tag = 58
	tagTimeInForce          quickfix.Tag = 59
	tagTransactTime         quickfix.Tag = 60
	tagOrdRejReason         quickfix.Tag = 103
	tagCxlRejReason         quickfix.Tag = 102
	tagExecType             quickfix.Tag = 150
	tagLeavesQty            quickfix.Tag = 151
	tagRefMsgType           quickfix.Tag = 372
	tagBusinessRejectReason quickfix.Tag = 380
	tagCxlRejResponseTo     quickfix.Tag = 434
)

// OrdStatus (39) and ExecType (150) values (FIX 4.4).
const (
	ordStatusNew       = "0"
	ordStatusPartial   = "1"
	ordStatusFilled    = "2"
	ordStatusCanceled  = "4"
	ordStatusRejected  = "8"
	execTypeNew        = "0"
	execTypeCanceled   = "4"
	execTypeReplaced   = "5"
	execTypeRejected   = "8"
	execTypeTrade      = "F"
	cxlRejTooLate      = "0"
	cxlRejUnknownOrder = "1"
	cxlRejOther        = "99"
	cxlRejDuplicateID  = "6"
	cxlRespCancel      = "1"
	cxlRespReplace     = "2"
	// OrdRejReason (103)
	ordRejUnknownSymbol = "1"
	ordRejDuplicate     = "6"
	ordRejIncorrectQty  = "13"
	ordRejOther         = "99"
	// BusinessRejectReason (380)
	bizRejUnsupportedType = "3"
	bizRejRequiredMissing = "5"
	bizRejOther           = "0"
)
