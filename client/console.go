package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

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

// AttachConsole opens the instance's interactive serial console: the returned
// stream carries what the guest prints and takes what to type. Close detaches
// (the guest keeps running). A refusal (409: stopped, or held by someone
// else; 403: not an operator) comes back as *Error.
func (c *Client) AttachConsole(ctx context.Context, project, name string) (io.ReadWriteCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+instancePath(project, name, "/console/attach", nil), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "finvirt-console")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		if err := c.decode(resp, nil); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("console attach of %s: unexpected %s", name, resp.Status)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("console attach of %s: the connection did not upgrade", name)
	}
	return rwc, nil
}
