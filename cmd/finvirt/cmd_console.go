package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/finvirt/finvirt/client"
)

// runConsoleAttach connects the local terminal to an instance's serial port.
// On a TTY the terminal goes raw (keys such as Ctrl-C reach the guest) and
// Ctrl-] detaches; the terminal is restored on every exit path by the defer.
// When stdin is not a TTY (a pipe in a script) the bytes are copied as they
// come and end of input detaches.
func runConsoleAttach(ctx context.Context, c *client.Client, project, name string) error {
	conn, err := c.AttachConsole(ctx, project, name)
	if err != nil {
		return err
	}
	defer conn.Close()
	fd := int(os.Stdin.Fd())
	tty := term.IsTerminal(fd)
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("console %s: cannot put the terminal in raw mode: %v", name, err)
		}
		defer term.Restore(fd, old)
		// SIGTERM/SIGHUP would kill the CLI past the defer and leave the shell raw: they
		// end the session instead, so the terminal is restored on that way out too.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(sig)
		go func() {
			if _, ok := <-sig; ok {
				conn.Close()
			}
		}()
		fmt.Fprintf(os.Stderr, "connected to the console of %s; Ctrl-] detaches\r\n", name)
	}
	out := make(chan error, 1)
	go func() { _, err := io.Copy(stdout, conn); out <- err }()
	in := make(chan error, 1)
	go func() { in <- copyInput(conn, os.Stdin, tty) }()
	select {
	case <-out: // the daemon ended the session (VM stopped, daemon shut down)
	case <-in: // detach or end of input
	case <-ctx.Done():
	}
	return nil
}

// copyInput forwards what the user types until Ctrl-] (on a TTY) or end of input.
func copyInput(w io.Writer, r io.Reader, tty bool) error {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p, detach := buf[:n], false
			if tty {
				p, detach = client.ScanEscape(p)
			}
			if _, werr := w.Write(p); werr != nil {
				return werr
			}
			if detach {
				return nil
			}
		}
		if err != nil {
			return err
		}
	}
}
