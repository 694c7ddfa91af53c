package ledger

import "fmt"

// Code is the outcome of one event. OK and Exists are successes; everything
// else is a rejection that changed nothing.
type Code uint8

const (
	OK     Code = iota // created
	Exists             // identical object already exists (idempotent resend)
	InvalidID
	InvalidAmount
	InvalidCurrency
	InvalidFlags
	InvalidTimeout
	AccountsMustBeDifferent
	ExistsWithDifferentCurrency
	ExistsWithDifferentFlags
	ExistsWithDifferentDebitAccountID
	ExistsWithDifferentCreditAccountID
	ExistsWithDifferentAmount
	ExistsWithDifferentPending
	ExistsWithDifferentTimeout
	DebitAccountNotFound
	CreditAccountNotFound
	CurrencyMismatch
	ExceedsCredits
	ExceedsDebits
	Overflow
	LinkedEventFailed
	TransferNotFound
	TransferNotPending
	PendingAlreadyPosted
	PendingAlreadyVoided
	PendingExpired
	AccountNotFound
	IdempotencyKeyMismatch
	numCodes
)

type codeInfo struct {
	name   string
	status int
	msg    string // format with the object id
}

var codeTable = [numCodes]codeInfo{
	OK:                                 {"", 201, ""},
	Exists:                             {"", 200, ""},
	InvalidID:                          {"invalid_id", 400, "%s: ids must be 1-64 characters of [A-Za-z0-9._:-]; fix the id"},
	InvalidAmount:                      {"invalid_amount", 400, "transfer %s: amount must be a positive integer number of minor units (int64); fix the amount"},
	InvalidCurrency:                    {"invalid_currency", 400, "%s: currency must be a 3-letter upper-case ISO 4217 code such as EUR"},
	InvalidFlags:                       {"invalid_flags", 400, "account %s: unknown or conflicting flags; use debits_must_not_exceed_credits or credits_must_not_exceed_debits"},
	InvalidTimeout:                     {"invalid_timeout", 400, "transfer %s: timeout_seconds must be >= 0 and only set on pending transfers"},
	AccountsMustBeDifferent:            {"accounts_must_be_different", 400, "transfer %s: debit_account_id and credit_account_id are the same; use two different accounts"},
	ExistsWithDifferentCurrency:        {"exists_with_different_currency", 422, "account %s already exists with a different currency; use a new id or the existing currency"},
	ExistsWithDifferentFlags:           {"exists_with_different_flags", 422, "account %s already exists with different flags; use a new id or the existing flags"},
	ExistsWithDifferentDebitAccountID:  {"exists_with_different_debit_account_id", 422, "transfer %s already exists with a different debit_account_id; use a new transfer id"},
	ExistsWithDifferentCreditAccountID: {"exists_with_different_credit_account_id", 422, "transfer %s already exists with a different credit_account_id; use a new transfer id"},
	ExistsWithDifferentAmount:          {"exists_with_different_amount", 422, "transfer %s already exists with a different amount; use a new transfer id"},
	ExistsWithDifferentPending:         {"exists_with_different_pending", 422, "transfer %s already exists with a different pending flag; use a new transfer id"},
	ExistsWithDifferentTimeout:         {"exists_with_different_timeout_seconds", 422, "transfer %s already exists with a different timeout_seconds; use a new transfer id"},
	DebitAccountNotFound:               {"debit_account_not_found", 422, "transfer %s: debit account does not exist; create it first"},
	CreditAccountNotFound:              {"credit_account_not_found", 422, "transfer %s: credit account does not exist; create it first"},
	CurrencyMismatch:                   {"currency_mismatch", 422, "transfer %s: currency must equal the currency of both accounts"},
	ExceedsCredits:                     {"exceeds_credits", 422, "transfer %s: debit account's debits would exceed its credits (debits_must_not_exceed_credits); fund it first or lower the amount"},
	ExceedsDebits:                      {"exceeds_debits", 422, "transfer %s: credit account's credits would exceed its debits (credits_must_not_exceed_debits); lower the amount"},
	Overflow:                           {"invalid_amount", 400, "transfer %s: amount would overflow an account total (int64); lower the amount"},
	LinkedEventFailed:                  {"linked_event_failed", 422, "transfer %s: not applied because another transfer in the linked batch failed; fix that one and resend the batch"},
	TransferNotFound:                   {"transfer_not_found", 404, "transfer %s does not exist; check the id"},
	TransferNotPending:                 {"transfer_not_pending", 422, "transfer %s is not a pending (two-phase) transfer; only pending transfers can be posted or voided"},
	PendingAlreadyPosted:               {"pending_transfer_already_posted", 422, "transfer %s was already posted; it can no longer be voided"},
	PendingAlreadyVoided:               {"pending_transfer_already_voided", 422, "transfer %s was already voided; it can no longer be posted"},
	PendingExpired:                     {"pending_transfer_expired", 422, "transfer %s expired (timeout_seconds elapsed) and its reservation was released; create a new transfer"},
	AccountNotFound:                    {"account_not_found", 404, "account %s does not exist; check the id"},
	IdempotencyKeyMismatch:             {"idempotency_key_mismatch", 422, "Idempotency-Key %s was already used with a different request; use a new key for a new request"},
}

// Name is the machine code ("" for successes).
func (c Code) Name() string { return codeTable[c].name }

// HTTPStatus maps the code to the contract's status.
func (c Code) HTTPStatus() int { return codeTable[c].status }

// Message is a human message naming the object and the fix.
func (c Code) Message(object string) string {
	if codeTable[c].msg == "" {
		return ""
	}
	return fmt.Sprintf(codeTable[c].msg, object)
}

// Success reports OK or Exists.
func (c Code) Success() bool { return c == OK || c == Exists }

func (c Code) String() string {
	if c == OK {
		return "ok"
	}
	if c == Exists {
		return "exists"
	}
	return c.Name()
}
