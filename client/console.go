package client

import "bytes"

// EscapeCtrlBracket is the byte that detaches an interactive console, as in
// telnet: Ctrl-] (0x1d). A single control byte is used rather than ssh's
// "~." so that detaching never depends on where the cursor is, and because
// on a raw terminal each keypress is its own read, a two-key sequence would
// need state across reads and timeouts to tell apart from typed text.
const EscapeCtrlBracket byte = 0x1d

// ScanEscape splits what the user typed into the bytes to forward to the
// guest and whether the user asked to detach. Everything before the first
// Ctrl-] is forwarded; the Ctrl-] and anything after it are dropped, because
// the session is ending. The guest therefore can never receive a Ctrl-] from
// the interactive console; docs/instances.md must say so when the
// interactive console lands.
func ScanEscape(p []byte) (forward []byte, detach bool) {
	if i := bytes.IndexByte(p, EscapeCtrlBracket); i >= 0 {
		return p[:i], true
	}
	return p, false
}
