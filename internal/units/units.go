// Package units parses and formats byte sizes as people write them ("512MiB", "20GiB", "1.5G").
package units

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

var suffixes = []struct {
	name string
	mult int64
}{
	// Longest first so "MiB" is not read as "M" + "iB".
	{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"EB", 1e18}, {"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	// Bare letters follow the binary convention of qemu-img and most virtualization tools.
	{"E", 1 << 60}, {"P", 1 << 50}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"k", 1 << 10},
	{"B", 1}, {"", 1},
}

// ParseSize reads a size such as "512MiB", "20GiB", "1.5G", "4096" (bytes) and returns bytes.
// It rejects empty, negative, fractional-byte and overflowing sizes with a message that says
// what was wrong and what is accepted.
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("size is empty: give a number with an optional unit, e.g. 512MiB or 20GiB")
	}
	num, mult := in, int64(1)
	for _, suf := range suffixes {
		if suf.name != "" && strings.HasSuffix(in, suf.name) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(in, suf.name)), suf.mult
			break
		}
	}
	if num == "" {
		return 0, fmt.Errorf("size %q has a unit but no number: write e.g. 512MiB", s)
	}
	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("size %q is negative: sizes must be zero or more", s)
	}
	for _, c := range num {
		if (c < '0' || c > '9') && c != '.' {
			return 0, fmt.Errorf("size %q is not a number with a unit: use digits and one of B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)", s)
		}
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok || strings.Count(num, ".") > 1 || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("size %q is not a valid number", s)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("size %q is not a whole number of bytes", s)
	}
	v := r.Num()
	if !v.IsInt64() || v.Int64() > math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large: the most is 8EiB", s)
	}
	return v.Int64(), nil
}

// FormatSize writes bytes with the largest binary unit that keeps the number readable.
func FormatSize(b int64) string {
	if b < 0 {
		return "-" + FormatSize(-b)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(b)
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", b)
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f%s", v, units[i])
	}
	return fmt.Sprintf("%.2f%s", v, units[i])
}
