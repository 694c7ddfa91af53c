package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/compute"
)

// pairs returns the values that follow flag in argv.
func pairs(argv []string, flag string) []string {
	var out []string
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			out = append(out, argv[i+1])
		}
	}
	return out
}

func TestBuildArgs(t *testing.T) {
	l := NewLayout("/var/lib/finvirt/vm/a", "")
	appliance := compute.Spec{Name: "a", Profile: compute.ProfileAppliance, VCPUs: 2, MemoryMiB: 256,
		Kernel: "/k/vmlinux", Initrd: "/k/initrd", Cmdline: "root=/dev/vda ro"}
	full := compute.Spec{Name: "a", Profile: compute.ProfileFull, VCPUs: 4, MemoryMiB: 2048}

	tests := []struct {
		name   string
		spec   func() compute.Spec
		accel  string
		fds    map[string]int
		want   map[string][]string // flag -> values that must all be present
		absent []string            // substrings that must not appear anywhere
		check  func(t *testing.T, argv []string)
	}{
		{name: "appliance tcg", spec: func() compute.Spec { return appliance }, accel: "tcg",
			want: map[string][]string{
				"-M":       {"microvm,acpi=on,pit=off,pic=off,rtc=on,isa-serial=on"},
				"-accel":   {"tcg,tb-size=32"},
				"-m":       {"256M"},
				"-smp":     {"2"},
				"-kernel":  {"/k/vmlinux"},
				"-initrd":  {"/k/initrd"},
				"-qmp":     {"unix:/var/lib/finvirt/vm/a/qmp.sock,server=on,wait=off"},
				"-pidfile": {"/var/lib/finvirt/vm/a/qemu.pid"},
				"-serial":  {"chardev:con0"},
				"-device":  {"virtio-serial-device", "virtserialport,chardev=agent0,name=org.finvirt.agent.0"},
				"-chardev": {"socket,id=agent0,path=/var/lib/finvirt/vm/a/agent.sock,server=on,wait=off",
					"socket,id=con0,path=/var/lib/finvirt/vm/a/console.sock,server=on,wait=off,logfile=/var/lib/finvirt/vm/a/console.log,logappend=on"},
			},
			absent: []string{"pci", "pflash", "-enable-kvm", "balloon"},
			check: func(t *testing.T, argv []string) {
				for _, f := range []string{"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-S"} {
					if !slices.Contains(argv, f) {
						t.Errorf("missing %s", f)
					}
				}
				app := pairs(argv, "-append")[0]
				for _, w := range []string{"console=ttyS0", "tsc_early_khz=2500000", "tsc=reliable", "no_timer_check", "lpj=5000000", "quiet", "root=/dev/vda", "ro"} {
					if !slices.Contains(strings.Fields(app), w) {
						t.Errorf("-append %q lacks %s", app, w)
					}
				}
			}},
		{name: "appliance kvm has no TCG tweaks", spec: func() compute.Spec { return appliance }, accel: "kvm",
			want: map[string][]string{"-accel": {"kvm"}, "-cpu": {"host"}},
			check: func(t *testing.T, argv []string) {
				if app := pairs(argv, "-append")[0]; strings.Contains(app, "tsc_early_khz") {
					t.Errorf("kvm cmdline has TCG tweaks: %q", app)
				}
			}},
		{name: "caller's cmdline value wins", spec: func() compute.Spec {
			s := appliance
			s.Cmdline = "console=hvc0 lpj=1"
			return s
		}, accel: "tcg", check: func(t *testing.T, argv []string) {
			f := strings.Fields(pairs(argv, "-append")[0])
			if slices.Contains(f, "console=ttyS0") || slices.Contains(f, "lpj=5000000") || !slices.Contains(f, "lpj=1") {
				t.Errorf("cmdline %v", f)
			}
		}},
		{name: "tb size per instance", spec: func() compute.Spec {
			s := appliance
			s.TBSizeMiB = 64
			return s
		}, accel: "tcg", want: map[string][]string{"-accel": {"tcg,tb-size=64"}}},
		{name: "appliance disks nics balloon", spec: func() compute.Spec {
			s := appliance
			s.Balloon = true
			s.Disks = []compute.DiskSpec{
				{ID: "root", Path: "/p/root,1.qcow2", Format: compute.FormatQcow2, Serial: "ROOT1"},
				{ID: "data", Path: "/p/data.raw", Format: compute.FormatRaw, ReadOnly: true, Cache: compute.CacheWritethrough, AIO: "io_uring"},
			}
			s.NICs = []compute.NICSpec{{ID: "eth0", Tap: "tap-a0", MAC: "52:54:00:00:00:01"}}
			return s
		}, accel: "tcg", want: map[string][]string{
			"-blockdev": {
				"driver=file,node-name=file-root,filename=/p/root,,1.qcow2,aio=threads,read-only=off,cache.direct=on,cache.no-flush=off",
				"driver=qcow2,node-name=drive-root,file=file-root,read-only=off,cache.direct=on,cache.no-flush=off",
				"driver=file,node-name=file-data,filename=/p/data.raw,aio=io_uring,read-only=on,cache.direct=off,cache.no-flush=off",
				"driver=raw,node-name=drive-data,file=file-data,read-only=on,cache.direct=off,cache.no-flush=off",
			},
			"-device": {
				"virtio-blk-device,drive=drive-root,id=disk-root,serial=ROOT1,write-cache=on",
				"virtio-blk-device,drive=drive-data,id=disk-data,serial=data,write-cache=off",
				"virtio-net-device,netdev=net-eth0,mac=52:54:00:00:00:01,id=nic-eth0",
				"virtio-balloon-device,id=balloon0",
			},
			"-netdev": {"tap,id=net-eth0,ifname=tap-a0,script=no,downscript=no"},
		}},
		{name: "luks secret via fd", spec: func() compute.Spec {
			s := appliance
			s.Disks = []compute.DiskSpec{{ID: "enc", Path: "/p/enc.qcow2", Format: compute.FormatQcow2, Secret: &compute.Secret{ID: "k1", Key: []byte("TOPSECRET")}}}
			return s
		}, accel: "tcg", fds: map[string]int{"k1": 3}, want: map[string][]string{
			"-object":   {"secret,id=sec-k1,format=raw,file=/proc/self/fd/3"},
			"-blockdev": {"driver=qcow2,node-name=drive-enc,file=file-enc,read-only=off,cache.direct=on,cache.no-flush=off,encrypt.format=luks,encrypt.key-secret=sec-k1"},
		}, absent: []string{"TOPSECRET", "VE9QU0VDUkVU"}},
		{name: "encrypted backing chain spelled out", spec: func() compute.Spec {
			s := appliance
			s.Disks = []compute.DiskSpec{{ID: "enc", Path: "/p/top.qcow2", Format: compute.FormatQcow2, Secret: &compute.Secret{ID: "k1", Key: []byte("TOPSECRET")},
				Backing: []compute.DiskLayer{{Path: "/p/mid.qcow2", Format: compute.FormatQcow2, Encrypted: true}, {Path: "/p/base.qcow2", Format: compute.FormatQcow2, Encrypted: true}}}}
			return s
		}, accel: "tcg", fds: map[string]int{"k1": 3}, want: map[string][]string{
			"-blockdev": {`{"backing":{"backing":{"backing":null,"cache":{"direct":true,"no-flush":false},"driver":"qcow2",` +
				`"encrypt":{"format":"luks","key-secret":"sec-k1"},"file":{"aio":"threads","cache":{"direct":true,"no-flush":false},"driver":"file",` +
				`"filename":"/p/base.qcow2","node-name":"bf2-enc","read-only":true},"node-name":"bk2-enc","read-only":true},` +
				`"cache":{"direct":true,"no-flush":false},"driver":"qcow2","encrypt":{"format":"luks","key-secret":"sec-k1"},` +
				`"file":{"aio":"threads","cache":{"direct":true,"no-flush":false},"driver":"file","filename":"/p/mid.qcow2","node-name":"bf1-enc","read-only":true},` +
				`"node-name":"bk1-enc","read-only":true},"cache":{"direct":true,"no-flush":false},"driver":"qcow2",` +
				`"encrypt":{"format":"luks","key-secret":"sec-k1"},"file":"file-enc","node-name":"drive-enc","read-only":false}`},
		}, absent: []string{"TOPSECRET", "VE9QU0VDUkVU"}},
		{name: "tap in another netns is inherited", spec: func() compute.Spec {
			s := appliance
			s.NICs = []compute.NICSpec{{ID: "eth0", Tap: "tap-a0", MAC: "52:54:00:00:00:01", NetNS: "/run/netns/n1"}}
			return s
		}, accel: "tcg", fds: map[string]int{"tap/eth0": 4}, want: map[string][]string{
			"-netdev": {"tap,id=net-eth0,fd=4,vhost=off"},
		}, absent: []string{"ifname=tap-a0"}},
		{name: "full uefi tpm", spec: func() compute.Spec {
			s := full
			s.TPM = &compute.TPMSpec{Model: "tpm-crb"}
			s.Disks = []compute.DiskSpec{{ID: "os", Path: "/p/os.qcow2", Format: compute.FormatQcow2}}
			s.NICs = []compute.NICSpec{{ID: "n0", Tap: "tap0", MAC: "52:54:00:00:00:02"}}
			s.Balloon = true
			return s
		}, accel: "tcg", want: map[string][]string{
			"-M":     {"q35"},
			"-drive": {"if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd", "if=pflash,format=raw,unit=1,file=/var/lib/finvirt/vm/a/OVMF_VARS.fd"},
			"-device": {"virtio-serial-pci", "virtio-blk-pci,drive=drive-os,id=disk-os,serial=os,write-cache=on,bus=rp-os",
				"virtio-net-pci,netdev=net-n0,mac=52:54:00:00:00:02,id=nic-n0,bus=rp-n0", "pcie-root-port,id=rp-os,bus=pcie.0,chassis=1",
				"pcie-root-port,id=rp-n0,bus=pcie.0,chassis=2", "virtio-balloon-pci,id=balloon0",
				"tpm-crb,tpmdev=tpm0", "pcie-root-port,id=hp0,bus=pcie.0,chassis=3", "pcie-root-port,id=hp3,bus=pcie.0,chassis=6"},
			"-tpmdev":  {"emulator,id=tpm0,chardev=chrtpm"},
			"-chardev": {"socket,id=chrtpm,path=/var/lib/finvirt/vm/a/swtpm.sock"},
		}, absent: []string{"microvm", "-kernel", "virtio-blk-device"}},
		{name: "full direct kernel boot", spec: func() compute.Spec {
			s := full
			s.Kernel = "/k/vmlinux"
			return s
		}, accel: "tcg", want: map[string][]string{"-M": {"q35"}, "-kernel": {"/k/vmlinux"}}, absent: []string{"pflash"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec()
			if err := compute.Validate(spec, compute.Limits{HostCPUs: 8, HostMemoryMiB: 16384}); err != nil {
				t.Fatalf("spec invalid: %v", err)
			}
			argv, err := BuildArgs(spec, l, tc.accel, tc.fds)
			if err != nil {
				t.Fatal(err)
			}
			for flag, vals := range tc.want {
				got := pairs(argv, flag)
				for _, v := range vals {
					if !slices.Contains(got, v) {
						t.Errorf("%s %q missing; have %q", flag, v, got)
					}
				}
			}
			joined := strings.Join(argv, " ")
			for _, a := range tc.absent {
				if strings.Contains(joined, a) {
					t.Errorf("argv contains %q: %s", a, joined)
				}
			}
			if !strings.Contains(joined, l.Dir+"/") {
				t.Errorf("argv does not name the instance dir (needed to recognise the process)")
			}
			if tc.check != nil {
				tc.check(t, argv)
			}
		})
	}
	if _, err := BuildArgs(appliance, l, "hvf", nil); err == nil {
		t.Error("unknown accelerator accepted")
	}
	s := appliance
	s.Disks = []compute.DiskSpec{{ID: "enc", Path: "/p", Format: compute.FormatRaw, Secret: &compute.Secret{ID: "k", Key: []byte("x")}}}
	if _, err := BuildArgs(s, l, "tcg", nil); err == nil {
		t.Error("secret without an fd accepted")
	}
}
