package iso20022

import "fmt"

// MinorUnits is the ISO 4217 exponent of the currencies remit settles.
var MinorUnits = map[string]int{
	"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CAD": 2, "AUD": 2,
	"JPY": 0, "KRW": 0, "ISK": 0,
	"BHD": 3, "KWD": 3, "JOD": 3,
}

// ParseAmount converts an ISO 20022 decimal amount to integer minor units
// exactly (no floating point). It returns an ISO reason code and a message on
// failure: AM03 unknown currency, AM01 zero, AM02 out of range, FF01 syntax or
// more fraction digits than the currency has.
func ParseAmount(s, ccy string) (int64, string, string) {
	exp, ok := MinorUnits[ccy]
	if !ok {
		return 0, "AM03", fmt.Sprintf("currency %q is not settled here; use one of EUR, USD, GBP, CHF, JPY, ...", ccy)
	}
	if s == "" {
		return 0, "FF01", "IntrBkSttlmAmt is empty"
	}
	var v int64
	digits, frac, dot := 0, 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		case c >= '0' && c <= '9':
			if dot {
				frac++
				if frac > exp {
					return 0, "FF01", fmt.Sprintf("amount %s has more than %d fraction digits for %s; send at most %d", s, exp, ccy, exp)
				}
			}
			digits++
			if digits > 18 {
				return 0, "AM02", fmt.Sprintf("amount %s has more than 18 digits", s)
			}
			v = v*10 + int64(c-'0')
		default:
			return 0, "FF01", fmt.Sprintf("amount %q is not a decimal such as 1234.56", s)
		}
	}
	for ; frac < exp; frac++ {
		if v > (1<<63-1)/10 {
			return 0, "AM02", fmt.Sprintf("amount %s is too large", s)
		}
		v *= 10
	}
	if v == 0 {
		return 0, "AM01", "amount is zero; send a positive amount"
	}
	return v, "", ""
}
