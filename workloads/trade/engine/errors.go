package engine

import "fmt"

// Error codes of the trade API contract (v1), plus a few additions.
const (
	CodePriceOffTick      = "price_off_tick"
	CodeInvalidQuantity   = "invalid_quantity"
	CodeInvalidPrice      = "invalid_price"
	CodeUnknownSymbol     = "unknown_symbol"
	CodeDuplicateClientID = "duplicate_client_order_id"
	CodeMalformedJSON     = "malformed_json"
	CodeOrderNotFound     = "order_not_found"
	// Additions (not in the v1 list, never replacing one of it).
	CodeInvalidClientID = "invalid_client_order_id"
	CodeInvalidSide     = "invalid_side"
	CodeInvalidType     = "invalid_type"
	CodeInvalidTIF      = "invalid_time_in_force"
	CodeInvalidAccount  = "invalid_account"
	CodeUnavailable     = "journal_unavailable"
)

// Error is a command rejection. A rejected command changes nothing.
type Error struct {
	Code string
	Msg  string
	// TooLate distinguishes "order known but no longer open" from "no such
	// order" for CodeOrderNotFound (FIX CxlRejReason 0 vs 1).
	TooLate bool
}

func (e *Error) Error() string { return e.Msg }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}
