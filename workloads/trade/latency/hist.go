// Package latency is a small HDR-style log-linear histogram for latency
// benchmarks: values are bucketed by power of two with 64 linear
// sub-buckets each, so any recorded value is reported within ~1.6%.
package latency

import (
	"fmt"
	"math/bits"
	"time"
)

const subBits = 6 // 64 sub-buckets per power of two

// Hist records non-negative durations in nanoseconds. Record does not
// allocate; the zero value is ready to use.
type Hist struct {
	counts [64 << subBits]uint64
	n      uint64
	max    int64
}

func index(v int64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1
	return e<<subBits | int(uint64(v)>>(e-1))&(1<<subBits-1)
}

// lowest value that maps to bucket i (inverse of index).
func lowest(i int) int64 {
	e := i >> subBits
	if e == 0 {
		return int64(i)
	}
	return int64(1<<subBits|i&(1<<subBits-1)) << (e - 1)
}

// Record adds one observation.
func (h *Hist) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[index(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Count is the number of observations.
func (h *Hist) Count() uint64 { return h.n }

// Max is the largest observation.
func (h *Hist) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the value at quantile q (0..1), as the upper edge of its
// bucket so it never under-reports.
func (h *Hist) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			up := lowest(i+1) - 1
			return time.Duration(min(up, h.max))
		}
	}
	return time.Duration(h.max)
}

// Merge adds o's observations to h.
func (h *Hist) Merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Summary is "p50=.. p90=.. p99=.. p99.9=.. max=..".
func (h *Hist) Summary() string {
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v p99.9=%v max=%v", h.n,
		h.Quantile(.5), h.Quantile(.9), h.Quantile(.99), h.Quantile(.999), h.Max())
}
