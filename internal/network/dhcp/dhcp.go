// Package dhcp runs one DHCPv4 server per DHCP-enabled network, bound to that network's
// bridge only (SO_BINDTODEVICE through server4), inside the manager's namespace. A known
// NIC's MAC gets the IPAM address of that NIC (a static lease); unknown MACs get a dynamic
// address from the range when the network allows it. Every ACK extends and persists the
// lease in the shared ipam.LeaseStore.
package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/network"
	"github.com/finvirt/finvirt/internal/network/ipam"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Service is a network.Service.
type Service struct {
	ns    network.NetNS
	store ipam.LeaseStore
	// pools returns the manager's pool of a network, so that DHCP and AttachNIC allocate
	// under one lock; nil means the service keeps its own pools over store.
	pools func(string) (*ipam.Pool, bool)

	mu      sync.Mutex
	servers map[string]*server
}

// New returns a DHCP service in ns persisting into store (the manager's lease store).
func New(ns network.NetNS, store ipam.LeaseStore) *Service {
	return &Service{ns: ns, store: store, servers: map[string]*server{}}
}

// UsePools makes the service allocate through the manager's pools (Manager.Pool).
func (s *Service) UsePools(f func(string) (*ipam.Pool, bool)) { s.pools = f }

type server struct {
	net     network.ResolvedNetwork
	srv     *server4.Server
	pool    *ipam.Pool
	mu      sync.Mutex
	known   map[string]netip.Addr // MAC -> NIC address
	done    chan struct{}
	leaseFn time.Duration
}

// Sync starts servers for DHCP-enabled networks, stops the others and refreshes the known
// NICs. A network whose bridge or subnet changed gets a new server.
func (s *Service) Sync(ctx context.Context, st network.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]network.ResolvedNetwork{}
	for _, n := range st.Networks {
		if n.DHCP.Enabled {
			want[n.Name] = n
		}
	}
	for name, sv := range s.servers {
		if n, ok := want[name]; !ok || n.BridgeName != sv.net.BridgeName || n.Prefix != sv.net.Prefix ||
			n.GatewayIP != sv.net.GatewayIP || fmt.Sprint(n.DHCP) != fmt.Sprint(sv.net.DHCP) {
			sv.stop()
			delete(s.servers, name)
		}
	}
	for name, n := range want {
		if _, ok := s.servers[name]; ok {
			continue
		}
		sv, err := s.start(n)
		if err != nil {
			return err
		}
		s.servers[name] = sv
	}
	for name, sv := range s.servers {
		known := map[string]netip.Addr{}
		for _, nic := range st.NICs {
			if nic.Network == name {
				known[strings.ToLower(nic.MAC)] = nic.Addr
			}
		}
		sv.mu.Lock()
		sv.known = known
		sv.mu.Unlock()
	}
	return nil
}

func (s *Service) start(n network.ResolvedNetwork) (*server, error) {
	var pool *ipam.Pool
	if s.pools != nil {
		pool, _ = s.pools(n.Name)
	}
	if pool == nil {
		var start, end netip.Addr
		if n.DHCP.RangeStart != "" {
			start, _ = netip.ParseAddr(n.DHCP.RangeStart)
			end, _ = netip.ParseAddr(n.DHCP.RangeEnd)
		}
		p, err := ipam.NewPool(n.Name, n.Prefix, n.GatewayIP, start, end, s.store)
		if err != nil {
			return nil, err
		}
		pool = p
	}
	lease := time.Duration(n.DHCP.LeaseSecs) * time.Second
	if lease == 0 {
		lease = time.Hour
	}
	sv := &server{net: n, pool: pool, known: map[string]netip.Addr{}, done: make(chan struct{}), leaseFn: lease}
	// The socket must be created inside the namespace; it stays there afterwards.
	err := s.ns.Do(func() error {
		srv, err := server4.NewServer(n.BridgeName, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort}, sv.handle)
		sv.srv = srv
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp: network %q: listen on %s:67: %w", n.Name, n.BridgeName, err)
	}
	go func() {
		defer close(sv.done)
		sv.srv.Serve()
	}()
	return sv, nil
}

func (sv *server) stop() {
	sv.srv.Close()
	<-sv.done
}

// Close stops every server (leases stay in the store).
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, sv := range s.servers {
		sv.stop()
		delete(s.servers, name)
	}
	return nil
}

// Running lists the networks with a running server.
func (s *Service) Running() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := range s.servers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Leases lists the leases of a network (static reservations included).
func (s *Service) Leases(network string) ([]ipam.Lease, error) { return s.store.List(network) }

// addrFor returns the address for mac: the NIC's own address, else a dynamic one.
func (sv *server) addrFor(mac string) (netip.Addr, bool) {
	sv.mu.Lock()
	a, ok := sv.known[mac]
	sv.mu.Unlock()
	if ok {
		return a, a.IsValid()
	}
	if !sv.net.DHCP.Dynamic {
		return netip.Addr{}, false
	}
	l, err := sv.pool.Allocate(mac)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err = netip.ParseAddr(l.IP)
	return a, err == nil
}

func (sv *server) handle(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	if m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
		return
	}
	mac := strings.ToLower(m.ClientHWAddr.String())
	gw := net.IP(sv.net.GatewayIP.AsSlice())
	if sid := m.ServerIdentifier(); sid != nil && !sid.Equal(gw) {
		return // the client chose another server
	}
	var reply *dhcpv4.DHCPv4
	var err error
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		a, ok := sv.addrFor(mac)
		if !ok {
			return
		}
		reply, err = sv.reply(m, dhcpv4.MessageTypeOffer, a)
	case dhcpv4.MessageTypeRequest:
		a, ok := sv.addrFor(mac)
		req := m.RequestedIPAddress()
		if req == nil || req.IsUnspecified() {
			req = m.ClientIPAddr
		}
		if !ok || !net.IP(a.AsSlice()).Equal(req) {
			reply, err = dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithServerIP(gw), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)))
			break
		}
		if _, lerr := sv.pool.Lookup(mac); lerr != nil {
			// A known NIC always has its IPAM lease; a dynamic one was allocated on discover.
			if _, rerr := sv.pool.Reserve(mac, a); rerr != nil {
				return
			}
		}
		if _, err := sv.pool.Renew(mac, sv.leaseFn, m.HostName()); err != nil {
			return
		}
		reply, err = sv.reply(m, dhcpv4.MessageTypeAck, a)
	case dhcpv4.MessageTypeRelease:
		// Keep static leases; a dynamic one is freed.
		sv.mu.Lock()
		_, known := sv.known[mac]
		sv.mu.Unlock()
		if !known {
			sv.pool.Release(mac)
		}
		return
	default:
		return
	}
	if err != nil || reply == nil {
		return
	}
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	if !m.ClientIPAddr.IsUnspecified() && m.ClientIPAddr != nil {
		dst.IP = m.ClientIPAddr // renewal: the client has its address
	}
	conn.WriteTo(reply.ToBytes(), dst)
}

func (sv *server) reply(m *dhcpv4.DHCPv4, t dhcpv4.MessageType, a netip.Addr) (*dhcpv4.DHCPv4, error) {
	gw := net.IP(sv.net.GatewayIP.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(t),
		dhcpv4.WithYourIP(net.IP(a.AsSlice())),
		dhcpv4.WithServerIP(gw),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gw)),
		dhcpv4.WithNetmask(net.CIDRMask(sv.net.Prefix.Bits(), 32)),
		dhcpv4.WithRouter(gw),
		dhcpv4.WithLeaseTime(uint32(sv.leaseFn / time.Second)),
	}
	var dns []net.IP
	for _, d := range sv.net.DHCP.DNS {
		dns = append(dns, net.ParseIP(d))
	}
	if len(dns) > 0 {
		mods = append(mods, dhcpv4.WithDNS(dns...))
	}
	return dhcpv4.NewReplyFromRequest(m, mods...)
}
