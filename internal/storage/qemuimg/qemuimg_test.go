package qemuimg

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseProgress(t *testing.T) {
	in := "    (0.00/100%)\r    (1.01/100%)\r    (1.01/100%)\r    (50.00/100%)\rgarbage\r    (100.00/100%)\n"
	var got []float64
	ParseProgress(strings.NewReader(in), func(p float64) { got = append(got, p) })
	want := []float64{0, 1.01, 50, 100}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDataEnd(t *testing.T) {
	ext := []Extent{{Start: 0, Length: 1 << 20, Data: true}, {Start: 1 << 20, Length: 8 << 20, Zero: true}, {Start: 9 << 20, Length: 1 << 20, Data: true, Zero: true}}
	if got := DataEnd(ext); got != 1<<20 {
		t.Fatalf("DataEnd %d", got)
	}
}
