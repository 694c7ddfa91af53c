// Package segment produces the network segmentation report (PCI DSS 11.4.5/11.4.6
// evidence): real ICMP echo and TCP SYN probes, sent from inside each network's probe
// endpoint to every other network's endpoint and to the host, give a reachability matrix;
// every reachable cell is explained by the rules that allow it (or flagged UNEXPLAINED).
package segment

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

var echoID atomic.Uint32

func init() { echoID.Store(uint32(os.Getpid()) & 0xffff) }

// pingOnce sends ICMP echoes from inside ns and reports whether dst answered.
func pingOnce(ctx context.Context, ns network.NetNS, dst string, timeout time.Duration) (bool, error) {
	var c *icmp.PacketConn
	if err := ns.Do(func() error {
		var err error
		c, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return false, err
	}
	defer c.Close()
	id := int(echoID.Add(1) & 0xffff)
	dstAddr := &net.IPAddr{IP: net.ParseIP(dst)}
	deadline := time.Now().Add(timeout)
	for seq := 1; seq <= 2; seq++ {
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("finvirt-segment")}}
		b, _ := msg.Marshal(nil)
		if _, err := c.WriteTo(b, dstAddr); err != nil {
			return false, nil // no route: unreachable
		}
		c.SetReadDeadline(time.Now().Add(timeout / 2))
		buf := make([]byte, 1500)
		for time.Now().Before(deadline) {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && from.String() == dst {
				return true, nil
			}
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	return false, nil
}

// tcpSYN connects from inside ns: an accepted connection or a RST (refused) both prove the
// SYN reached the target, a timeout means it was dropped on the way.
func tcpSYN(ctx context.Context, ns network.NetNS, dst string, port int, timeout time.Duration) (bool, error) {
	var reached bool
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(dst, strconv.Itoa(port)))
		if err == nil {
			c.Close()
			reached = true
			return nil
		}
		reached = errors.Is(err, syscall.ECONNREFUSED)
		return nil
	})
	return reached, err
}
