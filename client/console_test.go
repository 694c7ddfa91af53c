package client

import (
	"bytes"
	"testing"
)

func TestScanEscape(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		forward string
		detach  bool
	}{
		{"empty", "", "", false},
		{"plain text", "echo hi\r", "echo hi\r", false},
		{"lone escape", "\x1d", "", true},
		{"text then escape", "ls\x1d", "ls", true},
		{"escape drops the rest", "ab\x1dcd", "ab", true},
		{"other control bytes pass", "\x03\x04\x1b[A", "\x03\x04\x1b[A", false},
		{"tilde dot is text", "\r~.", "\r~.", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd, det := ScanEscape([]byte(tc.in))
			if string(fwd) != tc.forward || det != tc.detach {
				t.Fatalf("ScanEscape(%q) = %q, %v; want %q, %v", tc.in, fwd, det, tc.forward, tc.detach)
			}
		})
	}
}

// FuzzScanEscape checks the invariants: what is forwarded is a prefix of the
// input, never contains the escape byte, and detach is reported exactly when
// the input holds the escape byte.
func FuzzScanEscape(f *testing.F) {
	f.Add([]byte("echo hello\r"))
	f.Add([]byte("a\x1db"))
	f.Fuzz(func(t *testing.T, p []byte) {
		fwd, det := ScanEscape(p)
		if !bytes.HasPrefix(p, fwd) {
			t.Fatalf("forwarded %q is not a prefix of %q", fwd, p)
		}
		if bytes.IndexByte(fwd, EscapeCtrlBracket) >= 0 {
			t.Fatalf("forwarded %q holds the escape byte", fwd)
		}
		if det != (bytes.IndexByte(p, EscapeCtrlBracket) >= 0) {
			t.Fatalf("detach = %v for %q", det, p)
		}
	})
}
