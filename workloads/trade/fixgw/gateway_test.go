package fixgw

import (
	"strings"
	"testing"
	"time"
)

// TestFIXSession drives the gateway with two real initiator sessions over
// loopback: logon, orders, fills on both sides, replace, cancel, cancel
// rejects, order rejects, business rejects, logout.
func TestFIXSession(t *testing.T) {
	const srv = "TRADEGW"
	_, _, port := startGateway(t, srv, []string{"BUYER", "SELLER"})
	seller := dial(t, port, "SELLER", srv)
	buyer := dial(t, port, "BUYER", srv)

	seller.send(t, "D", tagClOrdID, "s1", tagSymbol, "AAPL", tagSide, "2", tagOrdType, "2", tagPrice, "101.25", tagOrderQty, "100", tagTimeInForce, "1", tagAccount, "acct-s")
	ack := seller.next(t)
	expect(t, "seller new", ack, tagMsgType, "8", tagClOrdID, "s1", tagExecType, "0", tagOrdStatus, "0", tagLeavesQty, "100", tagCumQty, "0", tagSymbol, "AAPL", tagSide, "2")
	orderID := get(ack, tagOrderID)

	buyer.send(t, "D", tagClOrdID, "b1", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "101.30", tagOrderQty, "60", tagAccount, "acct-b")
	expect(t, "buyer new", buyer.next(t), tagExecType, "0", tagOrdStatus, "0", tagClOrdID, "b1", tagLeavesQty, "60")
	expect(t, "buyer fill", buyer.next(t), tagExecType, "F", tagOrdStatus, "2", tagCumQty, "60", tagLeavesQty, "0", tagLastQty, "60", tagLastPx, "101.25", tagAvgPx, "101.25")
	expect(t, "seller fill", seller.next(t), tagExecType, "F", tagOrdStatus, "1", tagCumQty, "60", tagLeavesQty, "40", tagLastQty, "60", tagLastPx, "101.25", tagOrderID, orderID)

	// Replace: new ClOrdID, higher price, total qty 80 (20 open).
	seller.send(t, "G", tagClOrdID, "s1r", tagOrigClOrdID, "s1", tagSymbol, "AAPL", tagSide, "2", tagOrdType, "2", tagPrice, "101.50", tagOrderQty, "80")
	expect(t, "replaced", seller.next(t), tagExecType, "5", tagOrdStatus, "1", tagClOrdID, "s1r", tagOrigClOrdID, "s1", tagPrice, "101.50", tagOrderQty, "80", tagLeavesQty, "20", tagCumQty, "60", tagOrderID, orderID)

	// Replace below the filled quantity: OrderCancelReject, response to G.
	seller.send(t, "G", tagClOrdID, "s1bad", tagOrigClOrdID, "s1r", tagSymbol, "AAPL", tagSide, "2", tagOrdType, "2", tagPrice, "101.50", tagOrderQty, "50")
	expect(t, "replace reject", seller.next(t), tagMsgType, "9", tagCxlRejResponseTo, "2", tagCxlRejReason, "99", tagOrdStatus, "1", tagClOrdID, "s1bad", tagOrigClOrdID, "s1r")

	// Cancel the rest.
	seller.send(t, "F", tagClOrdID, "s1c", tagOrigClOrdID, "s1r", tagSymbol, "AAPL", tagSide, "2", tagOrderQty, "80")
	expect(t, "canceled", seller.next(t), tagExecType, "4", tagOrdStatus, "4", tagClOrdID, "s1c", tagOrigClOrdID, "s1r", tagLeavesQty, "0", tagCumQty, "60")

	// Cancel again: too late. Unknown order: unknown.
	seller.send(t, "F", tagClOrdID, "s1c2", tagOrigClOrdID, "s1c", tagSymbol, "AAPL", tagSide, "2")
	expect(t, "too late", seller.next(t), tagMsgType, "9", tagCxlRejReason, "0", tagCxlRejResponseTo, "1", tagOrdStatus, "4", tagOrderID, orderID)
	seller.send(t, "F", tagClOrdID, "x1", tagOrigClOrdID, "nope", tagSymbol, "AAPL", tagSide, "2")
	expect(t, "unknown", seller.next(t), tagMsgType, "9", tagCxlRejReason, "1", tagCxlRejResponseTo, "1", tagOrderID, "NONE")
	// Another session's order is unknown to this one.
	seller.send(t, "F", tagClOrdID, "x2", tagOrigClOrdID, "b1", tagSymbol, "AAPL", tagSide, "1")
	expect(t, "foreign order", seller.next(t), tagMsgType, "9", tagCxlRejReason, "1")

	// Invalid orders: ExecutionReport rejects with reasons; nothing rests.
	cases := []struct {
		name   string
		kv     []any
		reason string
		text   string
	}{
		{"off tick", []any{tagClOrdID, "r1", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "101.255", tagOrderQty, "10"}, "99", "price_off_tick"},
		{"unknown symbol", []any{tagClOrdID, "r2", tagSymbol, "ZZZ", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "10"}, "1", "unknown_symbol"},
		{"zero qty", []any{tagClOrdID, "r3", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "0"}, "13", "invalid_quantity"},
		{"duplicate", []any{tagClOrdID, "b1", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "1"}, "6", "duplicate_client_order_id"},
		{"bad side", []any{tagClOrdID, "r5", tagSymbol, "AAPL", tagSide, "7", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "1"}, "99", "invalid_side"},
	}
	for _, c := range cases {
		buyer.send(t, "D", c.kv...)
		m := buyer.next(t)
		expect(t, c.name, m, tagMsgType, "8", tagExecType, "8", tagOrdStatus, "8", tagOrdRejReason, c.reason)
		if !strings.HasPrefix(get(m, tagText), c.text) {
			t.Fatalf("%s: Text %q, want prefix %q", c.name, get(m, tagText), c.text)
		}
	}
	buyer.send(t, "D", tagClOrdID, "r6", tagSide, "1", tagOrdType, "2", tagPrice, "1.00", tagOrderQty, "1")
	expect(t, "missing symbol", buyer.next(t), tagMsgType, "j", tagBusinessRejectReason, "5", tagRefMsgType, "D")
	buyer.send(t, "R", tagClOrdID, "q")
	expect(t, "unsupported type", buyer.next(t), tagMsgType, "j", tagBusinessRejectReason, "3", tagRefMsgType, "R")

	// IOC and FOK: FOK with too little liquidity is canceled untouched.
	seller.send(t, "D", tagClOrdID, "s2", tagSymbol, "AAPL", tagSide, "2", tagOrdType, "2", tagPrice, "100.00", tagOrderQty, "10")
	expect(t, "s2 new", seller.next(t), tagExecType, "0")
	buyer.send(t, "D", tagClOrdID, "fok", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "100.00", tagOrderQty, "11", tagTimeInForce, "4")
	expect(t, "fok new", buyer.next(t), tagExecType, "0")
	expect(t, "fok killed", buyer.next(t), tagExecType, "4", tagOrdStatus, "4", tagCumQty, "0", tagLeavesQty, "0")
	buyer.send(t, "D", tagClOrdID, "mkt", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "1", tagOrderQty, "15", tagTimeInForce, "3")
	expect(t, "mkt new", buyer.next(t), tagExecType, "0")
	expect(t, "mkt fill", buyer.next(t), tagExecType, "F", tagOrdStatus, "1", tagCumQty, "10", tagLastPx, "100.00")
	expect(t, "mkt rest canceled", buyer.next(t), tagExecType, "4", tagOrdStatus, "4", tagCumQty, "10", tagLeavesQty, "0")
	expect(t, "s2 filled", seller.next(t), tagExecType, "F", tagOrdStatus, "2", tagCumQty, "10")

	// Logout.
	buyer.stop()
	seller.stop()
	for _, c := range []*client{buyer, seller} {
		select {
		case <-c.logout:
		case <-time.After(60 * time.Second):
			t.Fatal("no logout")
		}
	}
}

// TestFIXReconnectKeepsOrders: a client logs out and logs on again (new
// connection, sequence numbers reset on logon); its resting order is still
// known by ClOrdID and can be canceled, and heartbeats keep an idle
// session alive past HeartBtInt.
func TestFIXReconnectKeepsOrders(t *testing.T) {
	const srv = "TRADEGW3"
	_, g, port := startGateway(t, srv, []string{"RECON"})
	c := dial(t, port, "RECON", srv)
	c.send(t, "D", tagClOrdID, "keep", tagSymbol, "AAPL", tagSide, "1", tagOrdType, "2", tagPrice, "99.00", tagOrderQty, "5")
	expect(t, "new", c.next(t), tagExecType, "0", tagOrdStatus, "0")
	c.stop()
	select {
	case <-c.logout:
	case <-time.After(60 * time.Second):
		t.Fatal("no logout")
	}
	c2 := dial(t, port, "RECON", srv)
	defer c2.stop()
	// Stay idle past HeartBtInt (5s): the session must survive on heartbeats.
	time.Sleep(6 * time.Second)
	c2.send(t, "F", tagClOrdID, "keep-c", tagOrigClOrdID, "keep", tagSymbol, "AAPL", tagSide, "1")
	expect(t, "canceled after reconnect", c2.next(t), tagExecType, "4", tagOrdStatus, "4", tagClOrdID, "keep-c", tagOrigClOrdID, "keep")
	if n := g.Stats().Logons.Load(); n < 2 {
		t.Fatalf("%d logons, want at least 2", n)
	}
}
