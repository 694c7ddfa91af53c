package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/finvirt/finvirt/workloads/remit/ledger"
)

// Responses are appended by hand into pooled buffers: encoding/json's
// reflection and allocations would dominate the per-request cost of the
// single-transfer path.

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { b := bufPool.Get().(*[]byte); *b = (*b)[:0]; return b }
func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		bufPool.Put(b)
	}
}

const hex = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

func appendField(b []byte, name string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func appendTime(b []byte, ns int64) []byte {
	b = append(b, '"')
	b = time.Unix(0, ns).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendTransfer(b []byte, t *ledger.Transfer) []byte {
	b = append(b, '{')
	b = appendField(b, "id")
	b = appendJSONString(b, t.ID)
	b = append(b, ',')
	b = appendField(b, "debit_account_id")
	b = appendJSONString(b, t.DebitID)
	b = append(b, ',')
	b = appendField(b, "credit_account_id")
	b = appendJSONString(b, t.CreditID)
	b = append(b, ',')
	b = appendField(b, "amount")
	b = strconv.AppendInt(b, t.Amount, 10)
	b = append(b, ',')
	b = appendField(b, "currency")
	b = appendJSONString(b, t.Currency)
	b = append(b, ',')
	b = appendField(b, "pending")
	b = strconv.AppendBool(b, t.Pending)
	b = append(b, ',')
	b = appendField(b, "timeout_seconds")
	b = strconv.AppendInt(b, t.TimeoutSeconds, 10)
	b = append(b, ',')
	b = appendField(b, "status")
	b = appendJSONString(b, t.Status.String())
	b = append(b, ',')
	b = appendField(b, "timestamp")
	b = appendTime(b, t.Timestamp)
	b = append(b, ',')
	b = appendField(b, "updated_at")
	b = appendTime(b, t.UpdatedAt)
	return append(b, '}')
}

func appendAccount(b []byte, a *ledger.Account) []byte {
	b = append(b, '{')
	b = appendField(b, "id")
	b = appendJSONString(b, a.ID)
	b = append(b, ',')
	b = appendField(b, "currency")
	b = appendJSONString(b, a.Currency)
	b = append(b, ',')
	b = appendField(b, "flags")
	b = append(b, '[')
	for i, f := range a.Flags.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f)
	}
	b = append(b, ']', ',')
	for _, kv := range []struct {
		k string
		v int64
	}{{"debits_posted", a.DebitsPosted}, {"credits_posted", a.CreditsPosted}, {"debits_pending", a.DebitsPending}, {"credits_pending", a.CreditsPending}, {"balance", a.Balance()}} {
		b = appendField(b, kv.k)
		b = strconv.AppendInt(b, kv.v, 10)
		b = append(b, ',')
	}
	b = appendField(b, "timestamp")
	b = appendTime(b, a.Timestamp)
	return append(b, '}')
}

// appendResult appends one batch result {"id","status","code","error"}.
func appendResult(b []byte, id string, c ledger.Code, msgObject string) []byte {
	b = append(b, '{')
	b = appendField(b, "id")
	b = appendJSONString(b, id)
	b = append(b, ',')
	b = appendField(b, "status")
	b = strconv.AppendInt(b, int64(c.HTTPStatus()), 10)
	b = append(b, ',')
	b = appendField(b, "code")
	b = appendJSONString(b, c.Name())
	b = append(b, ',')
	b = appendField(b, "error")
	if c.Success() {
		b = append(b, '"', '"')
	} else {
		b = appendJSONString(b, c.Message(msgObject))
	}
	return append(b, '}')
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonCT
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

var jsonCT = []string{"application/json"}

// writeError writes the contract's error body {"error","code"}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b := getBuf()
	*b = append(*b, '{')
	*b = appendField(*b, "error")
	*b = appendJSONString(*b, msg)
	*b = append(*b, ',')
	*b = appendField(*b, "code")
	*b = appendJSONString(*b, code)
	*b = append(*b, '}', '\n')
	writeJSON(w, status, *b)
	putBuf(b)
}

func writeCode(w http.ResponseWriter, c ledger.Code, object string) {
	writeError(w, c.HTTPStatus(), c.Name(), c.Message(object))
}
