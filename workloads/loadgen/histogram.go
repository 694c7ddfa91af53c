// Package loadgen is the finvirt load-generation engine: open-loop
// (constant arrival rate, latency from the intended send time, so no
// coordinated omission) and closed-loop runs, an HDR-style histogram, and
// the remit, trade and claims scenarios with their correctness checks.
package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the precision: each power-of-two range is split into
// 2^subBits linear sub-buckets, so a recorded value is reported within a
// relative error of 2^-subBits (0.78%), like HdrHistogram with ~2
// significant digits, over the whole int64 range in a fixed 58 KiB array.
const subBits = 7

const (
	subCount = 1 << subBits
	nBuckets = (64-subBits)*subCount + subCount
)

// Histogram records non-negative int64 values (nanoseconds here) in
// log-linear buckets. Not safe for concurrent use: give each worker its own
// and Merge them.
type Histogram struct {
	counts [nBuckets]uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{min: math.MaxInt64} }

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - 1 // position of the top bit, >= subBits
	shift := e - subBits
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i>>subBits - 1
	sub := uint64(i&(subCount-1)) + subCount
	return (sub+1)<<shift - 1
}

// Record adds one value (negative values are recorded as 0).
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds o's values into h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the exact largest value.
func (h *Histogram) Max() int64 {
	if h.n == 0 {
		return 0
	}
	return h.max
}

// Mean is the exact mean.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q (0..1): the upper edge of the
// bucket holding the ceil(q*n)-th value, clamped to the exact min/max, so
// it never under-reports by more than one bucket's width.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := int64(bucketHigh(i))
			return max(min(v, h.max), h.min)
		}
	}
	return h.max
}
