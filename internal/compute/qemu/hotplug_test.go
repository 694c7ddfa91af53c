package qemu

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

func qemuImg(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
}

// createLUKS makes a LUKS-encrypted qcow2. qemu-img times its PBKDF iterations with thread
// CPU time and can fail with "Unable to get accurate CPU usage" on a loaded host: retry.
func createLUKS(t *testing.T, path, key string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils)")
	}
	var out []byte
	var err error
	for i := 0; i < 5; i++ {
		out, err = exec.Command("qemu-img", "create", "-q", "--object", "secret,id=s0,data="+key, "-f", "qcow2",
			"-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=50", path, "32M").CombinedOutput()
		if err == nil {
			return
		}
		os.Remove(path)
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("qemu-img create LUKS: %v\n%s", err, out)
}

// peripherals lists the ids of user-created devices (qom-list /machine/peripheral).
func peripherals(t *testing.T, d *Driver, name string) []string {
	t.Helper()
	_, _, c := d.insts[name].snapshot()
	var props []struct {
		Name string `json:"name"`
	}
	if err := c.ExecuteInto(ctxT(t, 30*time.Second), "qom-list", map[string]any{"path": "/machine/peripheral"}, &props); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range props {
		if !strings.Contains(p.Name, "<") && p.Name != "type" {
			ids = append(ids, p.Name)
		}
	}
	return ids
}

// blockNodes lists the node names QEMU has (query-named-block-nodes).
func blockNodes(t *testing.T, d *Driver, name string) map[string]bool {
	t.Helper()
	_, _, c := d.insts[name].snapshot()
	var nodes []struct {
		NodeName  string `json:"node-name"`
		Encrypted bool   `json:"encrypted"`
	}
	if err := c.ExecuteInto(ctxT(t, 30*time.Second), "query-named-block-nodes", nil, &nodes); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, n := range nodes {
		m[n.NodeName] = n.Encrypted
	}
	return m
}

// TestHotplugFull hot-plugs a qcow2 disk, a LUKS qcow2 disk and a NIC into a running q35 guest
// (direct kernel boot), checks QEMU and the guest see them, and unplugs them again.
func TestHotplugFull(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	spec := compute.Spec{Name: "hp", Profile: compute.ProfileFull, VCPUs: 1, MemoryMiB: 256,
		Kernel: testvm.Vmlinux(t), Initrd: testvm.Initrd(t), Cmdline: "mitigations=off nokaslr", TBSizeMiB: 16}
	info := bootAppliance(t, d, spec)
	ctx := ctxT(t, 5*time.Minute)

	plain := dir + "/data.qcow2"
	qemuImg(t, "create", "-q", "-f", "qcow2", plain, "64M")
	if err := d.AttachDisk(ctx, "hp", compute.DiskSpec{ID: "data", Path: plain, Format: compute.FormatQcow2, Serial: "FVDATA1"}); err != nil {
		t.Fatal(err)
	}
	if p := peripherals(t, d, "hp"); !slices.Contains(p, "disk-data") {
		t.Fatalf("disk-data not among devices %v", p)
	}
	consoleCommand(t, info, "disks", "=FVDATA1")

	// LUKS: the key goes through a QMP secret; a wrong key fails and leaves no node behind.
	enc := dir + "/enc.qcow2"
	createLUKS(t, enc, "correct-horse")
	bad := compute.DiskSpec{ID: "enc", Path: enc, Format: compute.FormatQcow2, Secret: &compute.Secret{ID: "k1", Key: []byte("wrong")}}
	if err := d.AttachDisk(ctx, "hp", bad); err == nil || !strings.Contains(err.Error(), "enc") {
		t.Fatalf("wrong LUKS key accepted: %v", err)
	}
	if n := blockNodes(t, d, "hp"); len(n) != 2 {
		t.Fatalf("failed attach left nodes: %v", n)
	}
	good := bad
	good.Secret = &compute.Secret{ID: "k1", Key: []byte("correct-horse")}
	if err := d.AttachDisk(ctx, "hp", good); err != nil {
		t.Fatal(err)
	}
	if n := blockNodes(t, d, "hp"); !n["drive-enc"] {
		t.Fatalf("drive-enc missing or not encrypted: %v", n)
	}
	consoleCommand(t, info, "disks", "=enc")

	tap := fmt.Sprintf("fvt%06d", rand.Intn(1e6))
	if err := d.AttachNIC(ctx, "hp", compute.NICSpec{ID: "n1", Tap: tap, MAC: "52:54:00:aa:bb:01"}); err != nil {
		t.Fatal(err)
	}
	if p := peripherals(t, d, "hp"); !slices.Contains(p, "nic-n1") {
		t.Fatalf("nic-n1 not among devices %v", p)
	}
	if err := d.AttachNIC(ctx, "hp", compute.NICSpec{ID: "n2", Tap: tap + "b", MAC: "52:54:00:aa:bb:02"}); err != nil {
		t.Fatal(err)
	}
	if err := d.AttachDisk(ctx, "hp", compute.DiskSpec{ID: "five", Path: plain, Format: compute.FormatRaw, ReadOnly: true}); !errors.Is(err, compute.ErrState) {
		t.Fatalf("fifth hot-plug with %d ports: %v, want ErrState", HotplugPorts, err)
	}

	// Hot-plugged devices are part of the spec: after a restart they are cold-plugged, each on
	// its own root port (the LUKS key now through the inherited pipe), and still detachable.
	before, _ := os.ReadFile(info.SerialLog)
	if err := d.Restart(ctx, "hp", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := testvm.WaitLog(ctx, info.SerialLog, testvm.Marker, len(before)); err != nil {
		t.Fatal(err)
	}
	p := peripherals(t, d, "hp")
	for _, want := range []string{"disk-data", "disk-enc", "nic-n1", "nic-n2", "rp-data", "rp-enc", "rp-n1", "rp-n2"} {
		if !slices.Contains(p, want) {
			t.Fatalf("after restart %s missing from %v", want, p)
		}
	}
	consoleCommand(t, info, "disks", "=FVDATA1")

	// Live external snapshots of the running guest's disk: each overlay becomes the top node,
	// the definition follows, bad requests change nothing, and detach removes every overlay.
	for i, ov := range []string{dir + "/ov1.qcow2", dir + "/ov2.qcow2"} {
		back := plain
		if i > 0 {
			back = dir + "/ov1.qcow2"
		}
		qemuImg(t, "create", "-q", "-f", "qcow2", "-b", back, "-F", "qcow2", ov)
		if err := d.SnapshotDisk(ctx, "hp", "data", compute.DiskSpec{ID: "ov", Path: ov, Format: compute.FormatQcow2}); err != nil {
			t.Fatalf("live snapshot %d: %v", i+1, err)
		}
	}
	if n := blockNodes(t, d, "hp"); !slices.ContainsFunc([]string{"sn1-data", "sn2-data"}, func(s string) bool { _, ok := n[s]; return ok }) {
		t.Fatalf("overlay nodes missing: %v", n)
	}
	if got, _ := d.Info(ctx, "hp"); got.Spec.Disks[0].Path != dir+"/ov2.qcow2" || len(got.Spec.Disks[0].Backing) != 2 || got.Spec.Disks[0].Backing[1].Path != plain {
		t.Fatalf("definition after live snapshots: %+v", got.Spec.Disks[0])
	}
	for _, bad := range []struct {
		disk string
		ov   compute.DiskSpec
		want error
	}{
		{"nope", compute.DiskSpec{Path: dir + "/x.qcow2", Format: compute.FormatQcow2}, compute.ErrNotFound},
		{"data", compute.DiskSpec{Path: "x.qcow2", Format: compute.FormatQcow2}, compute.ErrInvalid},
		{"enc", compute.DiskSpec{Path: dir + "/x.qcow2", Format: compute.FormatQcow2}, compute.ErrInvalid}, // plain overlay on LUKS
	} {
		if err := d.SnapshotDisk(ctx, "hp", bad.disk, bad.ov); !errors.Is(err, bad.want) {
			t.Fatalf("snapshot %s with %+v: %v, want %v", bad.disk, bad.ov, err, bad.want)
		}
	}
	consoleCommand(t, info, "disks", "=FVDATA1")

	for _, id := range []string{"data", "enc"} {
		if err := d.DetachDisk(ctx, "hp", id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"n1", "n2"} {
		if err := d.DetachNIC(ctx, "hp", id); err != nil {
			t.Fatal(err)
		}
	}
	if p := peripherals(t, d, "hp"); slices.Contains(p, "disk-data") || slices.Contains(p, "nic-n1") {
		t.Fatalf("devices left after detach: %v", p)
	}
	if n := blockNodes(t, d, "hp"); n["drive-data"] || n["file-enc"] || len(n) != 0 {
		t.Fatalf("block nodes left after detach: %v", n)
	}
	consoleCommand(t, info, "disks", "DISKS []")
	got, _ := d.Info(ctx, "hp")
	if len(got.Spec.Disks) != 0 || len(got.Spec.NICs) != 0 {
		t.Fatalf("spec after detach: %+v", got.Spec)
	}
	if err := d.DetachDisk(ctx, "hp", "data"); !errors.Is(err, compute.ErrNotFound) {
		t.Fatalf("detach of a detached disk: %v", err)
	}
	if err := d.Stop(ctx, "hp", compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
}

// TestLUKSDiskAtBoot boots an appliance with an encrypted disk: the key reaches QEMU through an
// inherited pipe and appears neither in its argv nor in the instance directory.
func TestLUKSDiskAtBoot(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	enc := dir + "/enc.qcow2"
	key := fmt.Sprintf("key-%d", rand.Int63())
	createLUKS(t, enc, key)
	spec := applianceSpec(t, "luks", "")
	spec.Disks = []compute.DiskSpec{{ID: "enc", Path: enc, Format: compute.FormatQcow2, Serial: "ENC1", Secret: &compute.Secret{ID: "k", Key: []byte(key)}}}
	info := bootAppliance(t, d, spec)
	if n := blockNodes(t, d, "luks"); !n["drive-enc"] {
		t.Fatalf("drive-enc missing or not encrypted: %v", n)
	}
	consoleCommand(t, info, "disks", "vda=ENC1")
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(info.PID) + "/cmdline")
	if strings.Contains(string(cmdline), key) {
		t.Fatal("key on the QEMU command line")
	}
	for _, f := range []string{"status.json", "qemu.log", "console.log"} {
		if b, _ := os.ReadFile(dir + "/luks/" + f); strings.Contains(string(b), key) {
			t.Errorf("key in %s", f)
		}
	}
	if fi, _ := os.Stat(dir + "/luks/spec.json"); fi.Mode().Perm() != 0o600 {
		t.Errorf("spec.json mode %v, want 0600", fi.Mode().Perm())
	}
	if got, _ := d.Info(context.Background(), "luks"); got.Spec.Disks[0].Secret.Key != nil {
		t.Error("Info leaks the key")
	}
	// Appliances cannot hot-plug.
	if err := d.AttachDisk(context.Background(), "luks", compute.DiskSpec{ID: "x", Path: enc, Format: compute.FormatRaw}); !errors.Is(err, compute.ErrNotSupported) {
		t.Fatalf("hot-plug on a running appliance: %v", err)
	}
}
