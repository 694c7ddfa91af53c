package diskimage

import (
	"bytes"
	"strings"
	"testing"
)

var known = map[string]bool{Raw: true, Qcow2: true, VMDK: true, VPC: true, VHDX: true, VDI: true, QED: true, OVA: true,
	LUKS: true, Gzip: true, XZ: true, Zip: true, VMDKDescr: true}

func FuzzDetectFormat(f *testing.F) {
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	f.Add([]byte("KDMV\x01\x00\x00\x00"))
	f.Add([]byte("conectix\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		head := data
		if len(head) > 4096 {
			head = head[:4096]
		}
		var tail []byte
		if len(data) >= 512 {
			tail = data[len(data)-512:]
		}
		got := DetectFormat(head, tail)
		if !known[got] {
			t.Fatalf("unknown format %q", got)
		}
		if got != DetectFormat(head, tail) {
			t.Fatal("not deterministic")
		}
		if h, ok := parseQcow2Header(head); ok {
			qcow2Truncated(h, uint64(len(data))) // must not panic or overflow
		}
	})
}

func FuzzParseOVF(f *testing.F) {
	f.Add([]byte(`<Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References><File ovf:id="f" ovf:href="d.vmdk"/></References><DiskSection><Disk ovf:diskId="d" ovf:fileRef="f" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection></Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ovf, err := ParseOVF(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(ovf.Disks) == 0 || len(ovf.Disks) > MaxOVFDisks {
			t.Fatalf("%d disks accepted", len(ovf.Disks))
		}
		for _, d := range ovf.Disks {
			if safeHref(d.Href) != nil || strings.Contains(d.Href, "/") {
				t.Fatalf("unsafe href %q accepted", d.Href)
			}
			if d.Capacity == 0 || d.Capacity > 1<<63 {
				t.Fatalf("capacity %d accepted", d.Capacity)
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("SHA256(vm.ovf)= 00ff\nSHA1(d.vmdk)= abcd\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			return
		}
		for name, d := range m {
			if d.alg != "SHA1" && d.alg != "SHA256" && d.alg != "SHA512" {
				t.Fatalf("%s: algorithm %q accepted", name, d.alg)
			}
			d.newHash()
		}
	})
}

func FuzzParseCapacity(f *testing.F) {
	f.Add("16", "byte * 2^20")
	f.Add("1024", "byte * 1024")
	f.Fuzz(func(t *testing.T, c, u string) {
		n, err := parseCapacity(c, u)
		if err == nil && (n == 0 || n > 1<<63) {
			t.Fatalf("capacity %d accepted for %q %q", n, c, u)
		}
	})
}
