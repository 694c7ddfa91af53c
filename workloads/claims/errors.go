package claims

import (
	"fmt"
	"strings"
)

// Error is a rejection returned to API callers: an HTTP status, a machine
// code and a human message naming the object and the fix. From/To are set
// for illegal transitions so clients need not parse the message.
type Error struct {
	Status int    `json:"-"`
	Code   string `json:"code"`
	Msg    string `json:"error"`
	From   State  `json:"from,omitempty"`
	To     State  `json:"to,omitempty"`
}

func (e *Error) Error() string { return e.Msg }

func errf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return errf(400, code, format, args...)
}

func unprocessable(code, format string, args ...any) *Error {
	return errf(422, code, format, args...)
}

func claimNotFound(id string) *Error {
	return errf(404, "claim_not_found", "claim %q does not exist; create it with POST /v1/claims or check the id", id)
}

// illegalTransition builds the 409 for a transition the table does not
// allow from the claim's current state, listing the allowed targets.
func illegalTransition(id string, from, to State) *Error {
	allowed := allowedTargets(from)
	hint := "none (terminal state)"
	if len(allowed) > 0 {
		hint = strings.Join(allowed, ", ")
	}
	e := errf(409, "illegal_transition", "claim %q cannot move from %q to %q; allowed from %q: %s", id, from, to, from, hint)
	e.From, e.To = from, to
	return e
}

// wrongEndpoint is the 422 for a legal edge that belongs to another action.
func wrongEndpoint(id string, from, to State, act Action) *Error {
	var how string
	switch act {
	case ActEvaluate:
		how = "POST /v1/claims/" + id + `/evaluate {"reserve":N}`
	case ActApprove:
		how = "POST /v1/claims/" + id + `/approve {"approver":"..","amount":N}`
	case ActDeny:
		how = "POST /v1/claims/" + id + `/deny {"reason":".."}`
	case ActPay:
		how = "the payout dispatcher (it happens once remit acknowledges the transfer)"
	default:
		how = "POST /v1/claims/" + id + `/transition`
	}
	e := errf(422, "transition_requires_"+string(act), "claim %q moves from %q to %q only through %s", id, from, to, how)
	e.From, e.To = from, to
	return e
}
