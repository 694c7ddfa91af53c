package ledger

import (
	"math/big"
	"math/bits"
)

// Int128 is a two's-complement 128-bit integer: per-currency totals over many
// int64 accounts can exceed int64, and the invariants must never wrap.
type Int128 struct {
	Hi int64
	Lo uint64
}

// Add adds an int64 (sign-extended).
func (x Int128) Add(v int64) Int128 {
	ext := int64(0)
	if v < 0 {
		ext = -1
	}
	lo, carry := bits.Add64(x.Lo, uint64(v), 0)
	return Int128{Hi: x.Hi + ext + int64(carry), Lo: lo}
}

// IsZero reports x == 0.
func (x Int128) IsZero() bool { return x.Hi == 0 && x.Lo == 0 }

// String renders x in decimal (a valid JSON number).
func (x Int128) String() string {
	if x.Hi == 0 {
		return new(big.Int).SetUint64(x.Lo).String()
	}
	if x.Hi == -1 && x.Lo >= 1<<63 {
		return big.NewInt(int64(x.Lo)).String()
	}
	b := new(big.Int).SetInt64(x.Hi)
	b.Lsh(b, 64)
	b.Add(b, new(big.Int).SetUint64(x.Lo))
	return b.String()
}
