package diskimage_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	_ "github.com/finvirt/finvirt/internal/storage/dir"
	"github.com/finvirt/finvirt/internal/storage/diskimage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

type ovaDisk struct {
	id, file, href string
	capacityMiB    int
	parent, addr   int
	path           string
}

// ovfXML generates an OVF 1.0 descriptor like VMware's exporter writes.
func ovfXML(disks []ovaDisk) string {
	var refs, dsks, items strings.Builder
	for i, d := range disks {
		st, _ := os.Stat(d.path)
		size := int64(0)
		if st != nil {
			size = st.Size()
		}
		fmt.Fprintf(&refs, `    <File ovf:href="%s" ovf:id="%s" ovf:size="%d"/>`+"\n", d.href, d.file, size)
		fmt.Fprintf(&dsks, `    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="%s" ovf:fileRef="%s" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`+"\n", d.capacityMiB, d.id, d.file)
		fmt.Fprintf(&items, `      <Item>
        <rasd:AddressOnParent>%d</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk %d</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/%s</rasd:HostResource>
        <rasd:InstanceID>%d</rasd:InstanceID>
        <rasd:Parent>%d</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
`, d.addr, i, d.id, 100+i, d.parent)
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
` + refs.String() + `  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
` + dsks.String() + `  </DiskSection>
  <VirtualSystem ovf:id="ledger-vm">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
` + items.String() + `    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`
}

// writeOVA tars ovf, an optional manifest and the disk files (entry name = href).
func writeOVA(t *testing.T, path, ovf string, disks []ovaDisk, manifest bool, corrupt func(name string, b []byte) []byte) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if corrupt != nil {
			b = corrupt(name, b)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	var mf strings.Builder
	sum := func(name string, b []byte) {
		h := sha256.Sum256(b)
		fmt.Fprintf(&mf, "SHA256(%s)= %s\n", name, hex.EncodeToString(h[:]))
	}
	sum("vm.ovf", []byte(ovf))
	add("vm.ovf", []byte(ovf))
	for _, d := range disks {
		b, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		sum(d.href, b)
		add(d.href, b)
	}
	if manifest {
		add("vm.mf", []byte(mf.String()))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func newDirPool(t *testing.T) storage.Pool {
	root := t.TempDir()
	p, err := storage.CreatePool(context.Background(), storage.PoolConfig{Name: "ova", Driver: "dir", Path: filepath.Join(root, "pool"),
		MasterKeyFile: filepath.Join(root, "master.key")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// twoDisks builds two streamOptimized VMDKs whose OVF order (by controller/address) is the
// reverse of their References order.
func twoDisks(t *testing.T, dir string) []ovaDisk {
	a := convertFixture(t, rawFixture(t, dir, "a.raw", 0x30), "vmdk", "subformat=streamOptimized", dir, "a.vmdk")
	b := convertFixture(t, rawFixture(t, dir, "b.raw", 0x40), "vmdk", "subformat=streamOptimized", dir, "b.vmdk")
	return []ovaDisk{
		{id: "vmdisk1", file: "file1", href: "ledger-disk1.vmdk", capacityMiB: 16, parent: 3, addr: 1, path: a},
		{id: "vmdisk2", file: "file2", href: "ledger-disk2.vmdk", capacityMiB: 16, parent: 3, addr: 0, path: b},
	}
}

func TestImportOVA(t *testing.T) {
	requireQemu(t)
	ctx := storagetest.Ctx(t)
	dir := t.TempDir()
	disks := twoDisks(t, dir)
	ova := filepath.Join(dir, "ledger.ova")
	writeOVA(t, ova, ovfXML(disks), disks, true, nil)
	p := newDirPool(t)
	var last float64
	res, err := diskimage.ImportOVA(ctx, p, ova, "ledger", dir, storage.ImportOpts{Progress: func(pc float64) {
		if pc < last {
			t.Errorf("progress went back from %v to %v", last, pc)
		}
		last = pc
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OVF.Name != "ledger-vm" || len(res.Volumes) != 2 || last != 100 {
		t.Fatalf("result %+v, progress %v", res, last)
	}
	// disk0 is the one at AddressOnParent 0: b (pattern 0x40).
	storagetest.WantPattern(t, p, "ledger-disk0", "0x40", "0", "1M")
	storagetest.WantPattern(t, p, "ledger-disk1", "0x30", "0", "1M")
	storagetest.WantPattern(t, p, "ledger-disk1", "0x31", "8M", "2M")
	if _, err := diskimage.ImportOVA(ctx, p, ova, "ledger", dir, storage.ImportOpts{}); err == nil {
		t.Fatal("second import over existing volumes succeeded")
	}
}

func TestImportOVARejects(t *testing.T) {
	requireQemu(t)
	ctx := storagetest.Ctx(t)
	dir := t.TempDir()
	disks := twoDisks(t, dir)
	good := ovfXML(disks)
	raw := rawFixture(t, dir, "plain.raw", 0x50)
	tests := []struct {
		name     string
		ovf      string
		disks    []ovaDisk
		manifest bool
		corrupt  func(string, []byte) []byte
		substr   string
	}{
		{"path traversal", strings.Replace(good, `ovf:href="ledger-disk1.vmdk"`, `ovf:href="../../etc/passwd"`, 1), disks, false, nil, "not a plain file name"},
		{"missing disk file", good, disks[:1], false, nil, "missing"},
		{"manifest mismatch", good, disks, true, func(n string, b []byte) []byte {
			if n == "ledger-disk2.vmdk" {
				b = append([]byte(nil), b...)
				b[len(b)/2] ^= 0xff
			}
			return b
		}, "manifest digest"},
		{"size mismatch", good, disks, false, func(n string, b []byte) []byte {
			if n == "ledger-disk2.vmdk" {
				return b[:len(b)/2]
			}
			return b
		}, "the OVF says"},
		{"raw posing as vmdk", good, []ovaDisk{disks[0], {id: "vmdisk2", file: "file2", href: "ledger-disk2.vmdk", capacityMiB: 16, parent: 3, addr: 0, path: raw}}, false, nil, "content is raw"},
		{"capacity mismatch", strings.Replace(good, `ovf:capacity="16"`, `ovf:capacity="32"`, 1), disks, false, nil, "the OVF says 33554432"},
		{"not xml", "<Envelope", disks, false, nil, "invalid descriptor"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ova := filepath.Join(dir, fmt.Sprintf("bad%d.ova", i))
			ovf := tt.ovf
			if tt.name == "raw posing as vmdk" {
				ovf = ovfXML(tt.disks)
			}
			writeOVA(t, ova, ovf, tt.disks, tt.manifest, tt.corrupt)
			p := newDirPool(t)
			_, err := diskimage.ImportOVA(ctx, p, ova, "bad", dir, storage.ImportOpts{})
			wantErr(t, err, storage.ErrInvalid, tt.substr)
			if vols, _ := p.ListVolumes(ctx); len(vols) != 0 {
				t.Fatalf("refused OVA left volumes: %+v", vols)
			}
		})
	}
}

// TestImportFormatsIntoPool converts every supported format into a dir pool and compares the
// result with the raw source.
func TestImportFormatsIntoPool(t *testing.T) {
	requireQemu(t)
	ctx := storagetest.Ctx(t)
	dir := t.TempDir()
	raw := rawFixture(t, dir, "src.raw", 0x61)
	p := newDirPool(t)
	for i, f := range formats {
		src := convertFixture(t, raw, f.format, f.opts, dir, f.file)
		name := fmt.Sprintf("imp%d", i)
		if _, err := p.ImportVolume(ctx, src, name, storage.ImportOpts{}); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		storagetest.WantPattern(t, p, name, "0x61", "0", "1M")
		storagetest.WantPattern(t, p, name, "0x62", "8M", "2M")
		storagetest.WantPattern(t, p, name, "0", "10M", "6M")
	}
}
