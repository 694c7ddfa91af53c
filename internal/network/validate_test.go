package network

import (
	"errors"
	"strings"
	"testing"
)

func TestResolveErrors(t *testing.T) {
	vx := func(vni uint32) *VXLANConfig { return &VXLANConfig{VNI: vni, LocalIP: "192.0.2.1"} }
	cases := []struct {
		name string
		n    Network
		want string // "" = valid
	}{
		{"ok", Network{Name: "a", Subnet: "10.0.0.0/24"}, ""},
		{"ok v6", Network{Name: "a", Subnet: "10.0.0.0/24", Subnet6: "fd00:1::/64"}, ""},
		{"bad name", Network{Name: "a b", Subnet: "10.0.0.0/24"}, "network name"},
		{"no subnet", Network{Name: "a"}, "not an IPv4 CIDR"},
		{"v6 as v4", Network{Name: "a", Subnet: "fd00::/64"}, "not an IPv4 CIDR"},
		{"host bits", Network{Name: "a", Subnet: "10.0.0.1/24"}, "host bits"},
		{"too small", Network{Name: "a", Subnet: "10.0.0.0/31"}, "between /8 and /30"},
		{"gw outside", Network{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.1.1"}, "outside subnet"},
		{"gw broadcast", Network{Name: "a", Subnet: "10.0.0.0/24", Gateway: "10.0.0.255"}, "broadcast"},
		{"bad v6", Network{Name: "a", Subnet: "10.0.0.0/24", Subnet6: "10.1.0.0/24"}, "subnet6"},
		{"dhcp range outside", Network{Name: "a", Subnet: "10.0.0.0/24", DHCP: DHCPConfig{RangeStart: "10.0.0.10", RangeEnd: "10.0.1.5"}}, "DHCP range"},
		{"dhcp range reversed", Network{Name: "a", Subnet: "10.0.0.0/24", DHCP: DHCPConfig{RangeStart: "10.0.0.10", RangeEnd: "10.0.0.5"}}, "start <= end"},
		{"mtu", Network{Name: "a", Subnet: "10.0.0.0/24", MTU: 100}, "MTU"},
		{"bridge too long", Network{Name: "a", Subnet: "10.0.0.0/24", Bridge: "sixteen-chars-xx"}, "IFNAMSIZ"},
		{"vxlan missing", Network{Name: "a", Driver: "vxlan", Subnet: "10.0.0.0/24"}, "needs vxlan settings"},
		{"vni 0", Network{Name: "a", Driver: "vxlan", Subnet: "10.0.0.0/24", VXLAN: vx(0)}, "out of range"},
		{"vni big", Network{Name: "a", Driver: "vxlan", Subnet: "10.0.0.0/24", VXLAN: vx(MaxVNI + 1)}, "out of range"},
		{"vni max", Network{Name: "a", Driver: "vxlan", Subnet: "10.0.0.0/24", VXLAN: vx(MaxVNI)}, ""},
		{"vxlan on bridge", Network{Name: "a", Subnet: "10.0.0.0/24", VXLAN: vx(5)}, "need driver"},
		{"bad peer", Network{Name: "a", Driver: "vxlan", Subnet: "10.0.0.0/24", VXLAN: &VXLANConfig{VNI: 5, LocalIP: "192.0.2.1", Peers: []string{"x"}}}, "peer"},
		{"bad dns", Network{Name: "a", Subnet: "10.0.0.0/24", DHCP: DHCPConfig{DNS: []string{"dns.example"}}}, "DNS server"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Resolve(c.n, "fv")
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.GatewayIP.String() != "10.0.0.1" {
					t.Errorf("default gateway %s", r.GatewayIP)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, c.want)
			}
		})
	}
}

func TestCheckAgainst(t *testing.T) {
	mk := func(name, subnet string, vni uint32) ResolvedNetwork {
		n := Network{Name: name, Subnet: subnet}
		if vni != 0 {
			n.Driver, n.VXLAN = "vxlan", &VXLANConfig{VNI: vni, LocalIP: "192.0.2.1"}
		}
		r, err := Resolve(n, "fv")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	others := []ResolvedNetwork{mk("a", "10.1.0.0/16", 10)}
	for _, c := range []struct {
		r    ResolvedNetwork
		want string
	}{
		{mk("b", "10.1.5.0/24", 0), "overlaps subnet 10.1.0.0/16 of network \"a\""},
		{mk("b", "10.0.0.0/8", 0), "overlaps"},
		{mk("b", "10.2.0.0/24", 10), "VNI 10 is already used by network \"a\""},
		{mk("b", "10.2.0.0/24", 11), ""},
		{mk("a", "10.1.0.0/16", 10), ""}, // itself
	} {
		err := CheckAgainst(c.r, others)
		if (c.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want %q", c.r.Name, c.r.Prefix, err, c.want)
		}
	}
}

func TestDeriveMAC(t *testing.T) {
	a := DeriveMAC("net", "vm", "eth0")
	if a.String() != DeriveMAC("net", "vm", "eth0").String() {
		t.Fatal("not stable")
	}
	if a[0]&2 == 0 || a[0]&1 != 0 {
		t.Errorf("%s is not locally administered unicast", a)
	}
	if a.String() == DeriveMAC("net", "vm", "eth1").String() || a.String() == DeriveMAC("net2", "vm", "eth0").String() {
		t.Error("different NICs share a MAC")
	}
}

func TestNames(t *testing.T) {
	if got := BridgeName("fv", "claims"); got != "fvbrclaims" {
		t.Errorf("bridge %s", got)
	}
	long := BridgeName("fv", "a-network-with-a-long-name")
	if len(long) > MaxIfName || long != BridgeName("fv", "a-network-with-a-long-name") {
		t.Errorf("long bridge name %q", long)
	}
	if n := TapName("fvxx", "some-nic-id"); len(n) > MaxIfName {
		t.Errorf("tap name %q too long", n)
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"80", "8000-8100", "0", "65536", "1-", "-5", "10-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err == nil && (p.From == 0 || p.To < p.From) {
			t.Fatalf("%q parsed to invalid %+v", s, p)
		}
	})
}

func FuzzResolve(f *testing.F) {
	f.Add("n", "10.0.0.0/24", "", "")
	f.Add("n", "10.0.0.0/24", "10.0.0.254", "fd00::/64")
	f.Add("n", "192.168.0.0/30", "192.168.0.3", "")
	f.Fuzz(func(t *testing.T, name, subnet, gw, subnet6 string) {
		r, err := Resolve(Network{Name: name, Subnet: subnet, Gateway: gw, Subnet6: subnet6}, "fv")
		if err != nil {
			return
		}
		if !r.Prefix.Contains(r.GatewayIP) || r.GatewayIP == r.Prefix.Addr() || r.GatewayIP == BroadcastAddr(r.Prefix) {
			t.Fatalf("accepted gateway %s for %s", r.GatewayIP, r.Prefix)
		}
		if len(r.BridgeName) > MaxIfName {
			t.Fatalf("bridge name %q too long", r.BridgeName)
		}
	})
}
