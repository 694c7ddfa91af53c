package journal

import "testing"

// FuzzScan: recovery's record scanner never panics on arbitrary segment bytes,
// never reports more valid bytes than exist, and re-scanning the valid prefix
// yields the same records.
func FuzzScan(f *testing.F) {
	var two []byte
	two = append(two, record("first")...)
	two = append(two, record("second")...)
	f.Add(two, true)
	f.Add(append(append([]byte(nil), two...), 0, 0, 0, 0, 9), true)
	f.Add(append(append([]byte(nil), two...), make([]byte, 64)...), false)
	f.Add(two[:len(two)-3], true)
	f.Fuzz(func(t *testing.T, data []byte, last bool) {
		n := 0
		valid, torn, err := Scan("fuzz", data, last, func(int64, []byte) error { n++; return nil })
		if valid < 0 || valid > int64(len(data)) {
			t.Fatalf("valid %d outside 0..%d", valid, len(data))
		}
		if torn && (!last || err != nil) {
			t.Fatalf("torn=%v last=%v err=%v", torn, last, err)
		}
		m := 0
		v2, torn2, err2 := Scan("fuzz", data[:valid], last, func(int64, []byte) error { m++; return nil })
		if err2 != nil || torn2 || v2 != valid || m != n {
			t.Fatalf("valid prefix rescans differently: %v %v %d/%d %d/%d", err2, torn2, v2, valid, m, n)
		}
	})
}
