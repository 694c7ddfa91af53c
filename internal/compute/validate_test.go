package compute

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	lim := Limits{HostCPUs: 2, HostMemoryMiB: 24000}
	base := Spec{Name: "vm1", Profile: ProfileAppliance, VCPUs: 1, MemoryMiB: 128, Kernel: "/k/vmlinux"}
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   string // "" = valid
	}{
		{"valid appliance", func(s *Spec) {}, ""},
		{"valid full uefi", func(s *Spec) { s.Profile, s.Kernel, s.TPM = ProfileFull, "", &TPMSpec{} }, ""},
		{"empty name", func(s *Spec) { s.Name = "" }, "name must be"},
		{"upper-case name", func(s *Spec) { s.Name = "VM1" }, "name must be"},
		{"no profile", func(s *Spec) { s.Profile = "" }, "profile is empty"},
		{"unknown profile", func(s *Spec) { s.Profile = "container" }, `profile "container" is unknown`},
		{"appliance without kernel", func(s *Spec) { s.Kernel = "" }, "needs kernel"},
		{"appliance with tpm", func(s *Spec) { s.TPM = &TPMSpec{} }, "has no TPM"},
		{"full with kernel and firmware", func(s *Spec) { s.Profile, s.Firmware = ProfileFull, "/fw" }, "not both"},
		{"bad tpm model", func(s *Spec) { s.Profile, s.TPM = ProfileFull, &TPMSpec{Model: "tpm-spi"} }, "tpm model"},
		{"cmdline without kernel", func(s *Spec) { s.Profile, s.Kernel, s.Cmdline = ProfileFull, "", "quiet" }, "need a kernel"},
		{"relative kernel", func(s *Spec) { s.Kernel = "vmlinux" }, "must be absolute"},
		{"zero vcpus", func(s *Spec) { s.VCPUs = 0 }, "at least 1"},
		{"vcpus above 4 per host cpu", func(s *Spec) { s.VCPUs = 9 }, "exceeds the limit 8"},
		{"vcpus at the cap", func(s *Spec) { s.VCPUs = 8 }, ""},
		{"memory too small", func(s *Spec) { s.MemoryMiB = 32 }, "below the minimum 64"},
		{"memory above host", func(s *Spec) { s.MemoryMiB = 30000 }, "exceeds host memory"},
		{"tb size negative", func(s *Spec) { s.TBSizeMiB = -1 }, "tb_size_mib"},
		{"cpu weight too small", func(s *Spec) { s.CPUWeight = 1 }, "cpu_weight 1"},
		{"cpuset bad syntax", func(s *Spec) { s.CPUSet = "a-b" }, "not a CPU number"},
		{"cpuset reversed", func(s *Spec) { s.CPUSet = "1-0" }, "not a CPU range"},
		{"cpuset ok", func(s *Spec) { s.CPUSet = "0-1" }, ""},
		{"duplicate disk", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatRaw}, {ID: "a", Path: "/b", Format: FormatRaw}}
		}, "used twice"},
		{"disk bad id", func(s *Spec) { s.Disks = []DiskSpec{{ID: "A_1", Path: "/a", Format: FormatRaw}} }, "disk id"},
		{"disk relative", func(s *Spec) { s.Disks = []DiskSpec{{ID: "a", Path: "a.img", Format: FormatRaw}} }, "must be absolute"},
		{"disk bad cache", func(s *Spec) { s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatRaw, Cache: "unsafe"}} }, "cache"},
		{"aio native needs direct", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatRaw, Cache: CacheWriteback, AIO: "native"}}
		}, "needs cache none"},
		{"serial with comma", func(s *Spec) { s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatRaw, Serial: "a,b"}} }, "serial"},
		{"empty secret", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Secret: &Secret{ID: "k"}}}
		}, "empty key"},
		{"backing under raw", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatRaw, Backing: []DiskLayer{{Path: "/b", Format: FormatQcow2}}}}
		}, "cannot have a backing chain"},
		{"backing relative", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Backing: []DiskLayer{{Path: "b.qcow2", Format: FormatQcow2}}}}
		}, "backing layer 1 path"},
		{"raw backing not at the base", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Backing: []DiskLayer{{Path: "/b", Format: FormatRaw}, {Path: "/c", Format: FormatQcow2}}}}
		}, "only the base may be raw"},
		{"backing bad format", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Backing: []DiskLayer{{Path: "/b", Format: "vmdk"}}}}
		}, "format \"vmdk\""},
		{"encrypted backing without secret", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Backing: []DiskLayer{{Path: "/b", Format: FormatQcow2, Encrypted: true}}}}
		}, "has no secret"},
		{"backing too deep", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "a", Path: "/a", Format: FormatQcow2, Backing: make([]DiskLayer, maxBackingDepth+1)}}
		}, "deeper than"},
		{"nic bad tap", func(s *Spec) { s.NICs = []NICSpec{{ID: "n", Tap: "a/b", MAC: "52:54:00:00:00:01"}} }, "tap"},
		{"nic relative netns", func(s *Spec) { s.NICs = []NICSpec{{ID: "n", Tap: "t0", MAC: "52:54:00:00:00:01", NetNS: "netns/x"}} }, "absolute path"},
		{"nic bad mac", func(s *Spec) { s.NICs = []NICSpec{{ID: "n", Tap: "t0", MAC: "zz"}} }, "48-bit MAC"},
		{"nic id clashes with disk", func(s *Spec) {
			s.Disks = []DiskSpec{{ID: "x", Path: "/a", Format: FormatRaw}}
			s.NICs = []NICSpec{{ID: "x", Tap: "t0", MAC: "52:54:00:00:00:01"}}
		}, "already used"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.mutate(&s)
			err := Validate(s, lim)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `"`+s.Name+`"`) {
				t.Fatalf("error = %v; want ErrInvalid naming the instance and containing %q", err, tc.want)
			}
		})
	}
}

func TestParseCPUSet(t *testing.T) {
	got, err := ParseCPUSet("0-2,5,1", 8)
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Fatalf("ParseCPUSet = %v, %v", got, err)
	}
	if _, err := ParseCPUSet("7", 4); err == nil {
		t.Fatal("CPU 7 on a 4-CPU host accepted")
	}
}

func TestMaxVCPUs(t *testing.T) {
	for _, tc := range []struct{ host, want int }{{1, 4}, {2, 8}, {16, 64}, {64, 64}, {0, 64}} {
		if got := MaxVCPUsFor(tc.host); got != tc.want {
			t.Errorf("MaxVCPUsFor(%d) = %d, want %d", tc.host, got, tc.want)
		}
	}
}

func TestRedactedDropsKeys(t *testing.T) {
	s := Spec{Disks: []DiskSpec{{ID: "a", Secret: &Secret{ID: "k", Key: []byte("secret")}}}}
	r := s.Redacted()
	if r.Disks[0].Secret.Key != nil || string(s.Disks[0].Secret.Key) != "secret" {
		t.Fatalf("Redacted changed the original or kept the key")
	}
}

type nopDriver struct{ Driver }

func (nopDriver) Name() string { return "nop" }

func TestRegistry(t *testing.T) {
	Register("test-nop", func(opts ...Option) (Driver, error) {
		var o Options
		for _, f := range opts {
			f(&o)
		}
		if o.StateDir == "" {
			return nil, errors.New("no state dir")
		}
		return nopDriver{}, nil
	})
	d, err := Load("test-nop", WithStateDir("/x"))
	if err != nil || d.Name() != "nop" {
		t.Fatalf("Load = %v, %v", d, err)
	}
	if _, err := Load("test-nop"); err == nil {
		t.Fatal("constructor error not returned")
	}
	if _, err := Load("nosuch"); err == nil || !strings.Contains(err.Error(), "test-nop") {
		t.Fatalf("unknown driver error should list the known ones: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate Register did not panic")
		}
	}()
	Register("test-nop", nil)
}

// FuzzParseCPUSet: the parser never panics, and what it accepts is a set of distinct CPUs,
// each below the host count.
func FuzzParseCPUSet(f *testing.F) {
	for _, s := range []string{"0", "0-1", "0,2-3", "1-0", "", "-", "0--1", "99999999999999999999"} {
		f.Add(s, 4)
	}
	f.Fuzz(func(t *testing.T, s string, host int) {
		if host > 1<<12 {
			host = 1 << 12 // bound the expansion of ranges
		}
		if host <= 0 {
			host = 1
		}
		cpus, err := ParseCPUSet(s, host)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, c := range cpus {
			if c < 0 || c >= host || seen[c] {
				t.Fatalf("ParseCPUSet(%q, %d) = %v", s, host, cpus)
			}
			seen[c] = true
		}
	})
}
