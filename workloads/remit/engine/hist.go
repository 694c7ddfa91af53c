package engine

import (
	"sync/atomic"
	"time"
)

// HistBounds are the upper bounds (seconds) of the latency histograms.
var HistBounds = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1}

// Hist is a fixed-bucket, lock-free latency histogram (Prometheus-shaped).
type Hist struct {
	counts [12]atomic.Int64 // len(HistBounds)+1, last is +Inf
	sum    atomic.Int64     // nanoseconds
}

// Observe records d.
func (h *Hist) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(HistBounds) && s > HistBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Counts returns per-bucket (non-cumulative) counts and the sum in seconds.
func (h *Hist) Counts() ([]int64, float64) {
	out := make([]int64, len(h.counts))
	for i := range h.counts {
		out[i] = h.counts[i].Load()
	}
	return out, float64(h.sum.Load()) / 1e9
}

// Quantile returns the upper bound (seconds) of the bucket holding quantile q; +Inf bucket reports 2x the last bound.
func (h *Hist) Quantile(q float64) float64 {
	c, _ := h.Counts()
	var total int64
	for _, v := range c {
		total += v
	}
	if total == 0 {
		return 0
	}
	var cum int64
	for i, v := range c {
		cum += v
		if float64(cum) >= q*float64(total) {
			if i < len(HistBounds) {
				return HistBounds[i]
			}
			break
		}
	}
	return 2 * HistBounds[len(HistBounds)-1]
}
