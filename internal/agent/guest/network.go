package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
)

// ConfigureNetwork brings up lo and every NIC of cfg (matched by MAC), with a static address
// and default route or by DHCP, and writes /etc/resolv.conf. NICs appear asynchronously after
// virtio_net loads, so each is awaited for up to wait.
func ConfigureNetwork(ctx context.Context, cfg agent.Config, wait time.Duration) error {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		netlink.LinkSetUp(lo)
	}
	var errs []error
	var dns []string
	staticGW := false
	for _, n := range cfg.NICs {
		staticGW = staticGW || n.Gateway != ""
	}
	for _, n := range cfg.NICs {
		got, err := configureNIC(ctx, n, wait, !staticGW)
		if err != nil {
			errs = append(errs, err)
		}
		dns = append(dns, got...)
	}
	if len(cfg.DNS) > 0 {
		dns = cfg.DNS
	}
	if len(dns) > 0 {
		var b strings.Builder
		for _, d := range dns {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		if err := os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func linkByMAC(mac net.HardwareAddr, wait time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(wait)
	for {
		links, err := netlink.LinkList()
		if err == nil {
			for _, l := range links {
				if l.Attrs().HardwareAddr.String() == mac.String() {
					return l, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nic %s: no interface with this MAC appeared within %v (check -device virtio-net-*,mac=%s)", mac, wait, mac)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// configureNIC returns DNS servers learned by DHCP. dhcpRoute allows a DHCP router to become
// the default route; a configured static gateway always takes precedence.
func configureNIC(ctx context.Context, n agent.NIC, wait time.Duration, dhcpRoute bool) ([]string, error) {
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return nil, err
	}
	l, err := linkByMAC(mac, wait)
	if err != nil {
		return nil, err
	}
	name := l.Attrs().Name
	if n.MTU > 0 {
		if err := netlink.LinkSetMTU(l, n.MTU); err != nil {
			return nil, fmt.Errorf("nic %s (%s): mtu %d: %w", mac, name, n.MTU, err)
		}
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("nic %s (%s): up: %w", mac, name, err)
	}
	addr, gw := n.Address, n.Gateway
	var dns []string
	if n.DHCP {
		lease, err := dhcp(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("nic %s (%s): dhcp: %w", mac, name, err)
		}
		ack := lease.ACK
		ones, _ := ack.SubnetMask().Size()
		addr = fmt.Sprintf("%s/%d", ack.YourIPAddr, ones)
		if r := ack.Router(); len(r) > 0 && dhcpRoute {
			gw = r[0].String()
		}
		for _, d := range ack.DNS() {
			dns = append(dns, d.String())
		}
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("nic %s: address %q: %w", mac, addr, err)
	}
	if err := netlink.AddrReplace(l, a); err != nil {
		return nil, fmt.Errorf("nic %s (%s): add %s: %w", mac, name, addr, err)
	}
	if gw != "" {
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw)}
		if err := netlink.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("nic %s (%s): default route via %s: %w", mac, name, gw, err)
		}
	}
	return dns, nil
}

func dhcp(ctx context.Context, ifname string) (*nclient4.Lease, error) {
	c, err := nclient4.New(ifname, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(5))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.Request(ctx)
}
