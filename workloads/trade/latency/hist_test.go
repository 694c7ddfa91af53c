package latency

import (
	"testing"
	"time"
)

func TestIndexMonotonicAndInverse(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<20; v += 7 {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d)=%d decreased from %d", v, i, prev)
		}
		if lo := lowest(i); lo > v || index(lo) != i {
			t.Fatalf("lowest(%d)=%d does not bound %d", i, lo, v)
		}
		prev = i
	}
}

func TestQuantiles(t *testing.T) {
	cases := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}}
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range cases {
		got := h.Quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*1.02 {
			t.Errorf("q%.2f = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	if h.Count() != 1000 || h.Max() != time.Millisecond {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
}
