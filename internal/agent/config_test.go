package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{
		Hostname:  "ledger-1",
		NICs:      []NIC{{MAC: "52:54:00:12:34:56", Address: "10.0.0.5/24", Gateway: "10.0.0.1"}, {MAC: "52:54:00:12:34:57", DHCP: true}},
		DNS:       []string{"10.0.0.1"},
		Volumes:   []Volume{{Serial: "data0", MountPoint: "/data"}},
		Workloads: []Workload{{Name: "ledger", Command: "/bin/ledger", Restart: RestartOnFailure, Env: []string{"A=b"}}},
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{"bad hostname", func(c *Config) { c.Hostname = "-x" }, "hostname"},
		{"bad mac", func(c *Config) { c.NICs[0].MAC = "zz" }, "nics[0].mac"},
		{"duplicate mac", func(c *Config) { c.NICs[1].MAC = c.NICs[0].MAC }, "listed twice"},
		{"dhcp and address", func(c *Config) { c.NICs[0].DHCP = true }, "both dhcp and address"},
		{"neither", func(c *Config) { c.NICs[0].Address = "" }, "needs an address"},
		{"address not cidr", func(c *Config) { c.NICs[0].Address = "10.0.0.5" }, "CIDR"},
		{"bad gateway", func(c *Config) { c.NICs[0].Gateway = "gw" }, "gateway"},
		{"two gateways", func(c *Config) { c.NICs[1] = NIC{MAC: c.NICs[1].MAC, Address: "10.1.0.5/24", Gateway: "10.1.0.1"} }, "second default gateway"},
		{"gateway with dhcp", func(c *Config) { c.NICs = []NIC{{MAC: c.NICs[1].MAC, DHCP: true, Gateway: "10.0.0.1"}} }, "gateway with dhcp"},
		{"bad mtu", func(c *Config) { c.NICs[0].MTU = 10 }, "mtu"},
		{"bad dns", func(c *Config) { c.DNS = []string{"dns"} }, "dns[0]"},
		{"bad serial", func(c *Config) { c.Volumes[0].Serial = "a serial that is far too long" }, "serial"},
		{"relative mount", func(c *Config) { c.Volumes[0].MountPoint = "data" }, "mountpoint"},
		{"root mount", func(c *Config) { c.Volumes[0].MountPoint = "/" }, "mountpoint"},
		{"unclean mount", func(c *Config) { c.Volumes[0].MountPoint = "/data/../etc" }, "mountpoint"},
		{"bad fstype", func(c *Config) { c.Volumes[0].FSType = "ntfs" }, "fstype"},
		{"duplicate serial", func(c *Config) { c.Volumes = append(c.Volumes, Volume{Serial: "data0", MountPoint: "/x"}) }, "listed twice"},
		{"bad workload name", func(c *Config) { c.Workloads[0].Name = "a/b" }, "name"},
		{"relative command", func(c *Config) { c.Workloads[0].Command = "ledger" }, "absolute path"},
		{"bad restart", func(c *Config) { c.Workloads[0].Restart = "sometimes" }, "restart"},
		{"bad env", func(c *Config) { c.Workloads[0].Env = []string{"NOEQUALS"} }, "KEY=VALUE"},
		{"duplicate workload", func(c *Config) { c.Workloads = append(c.Workloads, c.Workloads[0]) }, "used twice"},
		{"negative grace", func(c *Config) { c.ShutdownGraceMS = -1 }, "shutdown_grace_ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.NICs = append([]NIC(nil), good.NICs...)
			c.Volumes = append([]Volume(nil), good.Volumes...)
			c.Workloads = append([]Workload(nil), good.Workloads...)
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.err)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	if c, err := LoadConfig(filepath.Join(dir, "missing.json")); err != nil || c.Hostname != "" {
		t.Fatalf("missing file: %+v %v", c, err)
	}
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"hostname":"a","bogus":1}`), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown field: %v", err)
	}
	os.WriteFile(p, []byte(`{"hostname":"ok-1"}`), 0o644)
	if c, err := LoadConfig(p); err != nil || c.Hostname != "ok-1" {
		t.Fatalf("%+v %v", c, err)
	}
}

// FuzzLoadConfig: any file content must yield a config or an error, never a panic, and an
// accepted config must survive a JSON round trip and validate again.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"hostname":"a","nics":[{"mac":"52:54:00:00:00:01","address":"10.0.0.2/24","gateway":"10.0.0.1"}]}`))
	f.Add([]byte(`{"volumes":[{"serial":"d","mountpoint":"/d"}],"workloads":[{"name":"w","command":"/bin/w","restart":"always"}]}`))
	f.Add([]byte(`{"nics":[{"mac":"zz"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "c.json")
		os.WriteFile(p, data, 0o644)
		c, err := LoadConfig(p)
		if err != nil {
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var c2 Config
		if err := json.Unmarshal(b, &c2); err != nil {
			t.Fatal(err)
		}
		if err := c2.Validate(); err != nil {
			t.Fatalf("accepted config fails validation after a round trip: %v", err)
		}
	})
}
