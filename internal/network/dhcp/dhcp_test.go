package dhcp_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	_ "github.com/finvirt/finvirt/internal/network/bridge"
	"github.com/finvirt/finvirt/internal/network/dhcp"
	"github.com/finvirt/finvirt/internal/network/ipam"
	"github.com/finvirt/finvirt/internal/network/nettest"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

func client(t *testing.T, ns nettest.NS) *nclient4.Client {
	t.Helper()
	var c *nclient4.Client
	// The raw socket is created inside the endpoint namespace and stays there.
	if err := ns.NetNS().Do(func() error {
		var err error
		c, err = nclient4.New("eth0", nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(5))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLeaseRenewPersist(t *testing.T) {
	var svc *dhcp.Service
	leaseFile := t.TempDir() + "/leases.json"
	store, err := ipam.OpenFileStore(leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	h := nettest.NewHost(t, func(h *nettest.Host) network.Service {
		h.Store = store
		svc = dhcp.New(h.NS.NetNS(), store)
		return svc
	})
	svc.UsePools(h.M.Pool)
	ctx := context.Background()
	n, err := h.M.CreateNetwork(ctx, network.Network{Name: "lan", Subnet: "10.70.0.0/24",
		DHCP: network.DHCPConfig{Enabled: true, Dynamic: true, RangeStart: "10.70.0.100", RangeEnd: "10.70.0.110", LeaseSecs: 120, DNS: []string{"10.70.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Running(); len(got) != 1 || got[0] != "lan" {
		t.Fatalf("running servers = %v, want [lan]", got)
	}
	mac := network.DeriveMAC("lan", "vm1", "nic0")
	ep := nettest.NewEndpoint(t, h.NS, "dh", mac, "", "")
	nic, err := h.M.AttachNIC(ctx, network.NIC{ID: "nic0", Instance: "vm1", Network: "lan", HostLink: ep.HostLink})
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, ep.NS)
	var lease *nclient4.Lease
	nettest.Eventually(t, 60*time.Second, "DHCP lease for the known NIC", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		lease, err = c.Request(cctx)
		return err == nil
	})
	ack := lease.ACK
	if !ack.YourIPAddr.Equal(net.IP(nic.Addr.AsSlice())) {
		t.Errorf("lease %s, want the NIC's IPAM address %s", ack.YourIPAddr, nic.Addr)
	}
	if r := ack.Router(); len(r) != 1 || !r[0].Equal(net.IP(n.GatewayIP.AsSlice())) {
		t.Errorf("router %v, want %s", r, n.GatewayIP)
	}
	if d := ack.IPAddressLeaseTime(0); d != 120*time.Second {
		t.Errorf("lease time %s, want 2m", d)
	}
	ls, _ := svc.Leases("lan")
	if len(ls) != 1 || ls[0].IP != nic.Addr.String() || ls[0].Expires.IsZero() {
		t.Fatalf("Leases = %+v, want one for %s with an expiry", ls, nic.Addr)
	}
	first := ls[0].Expires
	// Renew: the client now has the address (unicast renewal from it).
	ep.NS.MustExec(t, "ip", "addr", "add", ack.YourIPAddr.String()+"/24", "dev", "eth0")
	time.Sleep(1100 * time.Millisecond) // the expiry has one-second resolution
	nettest.Eventually(t, 60*time.Second, "DHCP renewal", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := c.Renew(cctx, lease)
		return err == nil
	})
	ls, _ = svc.Leases("lan")
	if len(ls) != 1 || !ls[0].Expires.After(first) {
		t.Errorf("renewal did not extend the lease: first %s, now %+v", first, ls)
	}
	// Persisted: a fresh store from the file sees the lease.
	again, err := ipam.OpenFileStore(leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := again.Get("lan", mac.String()); err != nil || !l.Expires.Equal(ls[0].Expires) {
		t.Errorf("persisted lease = %+v, %v", l, err)
	}

	// An unknown MAC on a plain bridge port gets a dynamic address from the range.
	mac2 := net.HardwareAddr{0x02, 0, 0, 0, 0x70, 0x02}
	ep2 := nettest.NewEndpoint(t, h.NS, "dy", mac2, "", "")
	h.NS.MustExec(t, "ip", "link", "set", ep2.HostLink, "master", n.BridgeName, "up")
	c2 := client(t, ep2.NS)
	var l2 *nclient4.Lease
	nettest.Eventually(t, 60*time.Second, "dynamic DHCP lease", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l2, err = c2.Request(cctx)
		return err == nil
	})
	// The NIC took the first address of the range (IPAM allocates from it), so the
	// dynamic client gets the next one, never the NIC's.
	if ip := l2.ACK.YourIPAddr.String(); nic.Addr.String() != "10.70.0.100" || ip != "10.70.0.101" {
		t.Errorf("nic %s, dynamic lease %s; want 10.70.0.100 and 10.70.0.101", nic.Addr, ip)
	}
	if ls, _ := svc.Leases("lan"); len(ls) != 2 {
		t.Errorf("Leases = %+v, want 2", ls)
	}
	// Deleting the network stops its server.
	h.M.DetachNIC(ctx, "nic0")
	h.NS.MustExec(t, "ip", "link", "set", ep2.HostLink, "nomaster")
	if err := h.M.DeleteNetwork(ctx, "lan"); err != nil {
		t.Fatal(err)
	}
	if got := svc.Running(); len(got) != 0 {
		t.Errorf("servers after delete: %v", got)
	}
}
