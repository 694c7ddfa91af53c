package firewall

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestPrefixesToSpans(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	for _, c := range []struct {
		in   []netip.Prefix
		want string
	}{
		{p("10.0.0.0/24"), "[{167772160 167772415}]"},
		{p("10.0.0.0/24", "10.0.0.128/25"), "[{167772160 167772415}]"},                     // contained
		{p("10.0.1.0/24", "10.0.0.0/24"), "[{167772160 167772671}]"},                       // adjacent, unsorted
		{p("10.0.0.1/32", "10.0.0.3/32"), "[{167772161 167772161} {167772163 167772163}]"}, // gap kept
		{p("10.0.0.5/24"), "[{167772160 167772415}]"},                                      // host bits masked
	} {
		if got := fmt.Sprint(prefixesToSpans(c.in)); got != c.want {
			t.Errorf("%v: %s, want %s", c.in, got, c.want)
		}
	}
}

func TestIntervalElements(t *testing.T) {
	els := intervalElements([]span{{1, 2}, {0xfffffff0, 0xffffffff}}, 4)
	// start, end-exclusive(3, IntervalEnd), start of the top span, and no end (it would overflow).
	if len(els) != 3 || !els[1].IntervalEnd || fmt.Sprint(els[1].Key) != "[0 0 0 3]" || els[2].IntervalEnd {
		t.Fatalf("elements %+v", els)
	}
	ports := intervalElements(mergeSpans([]span{{8000, 8100}, {80, 80}, {8050, 9000}}), 2)
	if len(ports) != 4 || fmt.Sprint(ports[2].Key) != "[31 64]" || fmt.Sprint(ports[3].Key) != "[35 41]" {
		t.Fatalf("port elements %+v", ports)
	}
}
