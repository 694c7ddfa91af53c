package units

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"512MiB", 512 << 20, ""},
		{"20GiB", 20 << 30, ""},
		{"1.5G", 3 << 29, ""},
		{"4096", 4096, ""},
		{"4096B", 4096, ""},
		{" 1 TiB ", 1 << 40, ""},
		{"10GB", 10_000_000_000, ""},
		{"1kB", 1000, ""},
		{"0", 0, ""},
		{"8EiB", 0, "too large"},
		{"", 0, "empty"},
		{"-1GiB", 0, "negative"},
		{"GiB", 0, "no number"},
		{"1.5B", 0, "whole number"},
		{"12XB", 0, "not a number"},
		{"1..5G", 0, "not a valid"},
		{".5G", 0, "not a valid"},
		{"99999999999999999999", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1024, "1KiB"}, {512 << 20, "512MiB"}, {3 << 29, "1.50GiB"}, {20 << 30, "20GiB"}}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseSize checks that the parser never panics, never returns a negative size, and
// that what it accepts is exactly the same number of bytes when written back as plain bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MiB", "1.5G", "0", "-1", "8EiB", "1e9", "GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) returned negative %d", s, v)
		}
		back, err := ParseSize(strconv.FormatInt(v, 10) + "B")
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %d -> %d, %v", s, v, back, err)
		}
		if FormatSize(v) == "" {
			t.Fatalf("FormatSize(%d) is empty", v)
		}
	})
}
