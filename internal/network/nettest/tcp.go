package nettest

import (
	"io"
	"net"
	"testing"
	"time"
)

// Listen starts a TCP server on port in ns that writes "ok" to each client; closed in
// t.Cleanup.
func (n NS) Listen(t testing.TB, port string) {
	t.Helper()
	var l net.Listener
	err := n.NetNS().Do(func() error {
		var err error
		l, err = net.Listen("tcp4", ":"+port)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", port, n.Name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
}

// TCP dials addr:port from inside ns and reports whether it read the server's "ok".
func (n NS) TCP(addr, port string, timeout time.Duration) bool {
	var c net.Conn
	err := n.NetNS().Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(addr, port), timeout)
		return err
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	b, _ := io.ReadAll(c)
	return string(b) == "ok"
}
