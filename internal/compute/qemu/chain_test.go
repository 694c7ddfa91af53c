package qemu

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/compute"
)

// qemuIO runs one qemu-io command on an image given as --image-opts, with secret s0 = key.
func qemuIO(t *testing.T, key, opts, cmd string) {
	t.Helper()
	out, err := exec.Command("qemu-io", "--object", "secret,id=s0,data="+key, "--image-opts", opts, "-c", cmd).CombinedOutput()
	if err != nil || strings.Contains(string(out), "rror") {
		t.Fatalf("qemu-io %s %q: %v\n%s", opts, cmd, err, out)
	}
}

// TestLUKSChainAtBoot boots an appliance with an encrypted disk whose qcow2 backing chain is
// itself encrypted (a volume with a snapshot, or a clone of one): every layer must be opened as
// an explicit node with the key, and data written into each lower layer reads back through the
// running QEMU. Without explicit backing nodes QEMU opens the header's backing path without the
// key and the boot fails.
func TestLUKSChainAtBoot(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Skip("qemu-io not installed (apt-get install qemu-utils)")
	}
	dir := stateDir(t)
	d := newDriver(t, dir)
	key := fmt.Sprintf("key-%d", rand.Int63())
	base, mid, top := dir+"/base.qcow2", dir+"/mid.qcow2", dir+"/top.qcow2"
	createLUKS(t, base, key)
	enc := ",encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=50"
	for _, l := range [][2]string{{mid, base}, {top, mid}} {
		qemuImg(t, "create", "-q", "-u", "--object", "secret,id=s0,data="+key, "-f", "qcow2",
			"-o", "backing_file="+l[1]+",backing_fmt=qcow2"+enc, l[0], "32M")
	}
	qemuIO(t, key, "driver=qcow2,file.filename="+base+",encrypt.key-secret=s0", "write -P 0x5a 0 64k")
	qemuIO(t, key, "driver=qcow2,file.filename="+mid+",encrypt.key-secret=s0,backing.driver=qcow2,backing.file.filename="+base+",backing.encrypt.key-secret=s0",
		"write -P 0x6b 1M 64k")

	spec := applianceSpec(t, "chain", "")
	spec.Disks = []compute.DiskSpec{{ID: "enc", Path: top, Format: compute.FormatQcow2, Serial: "ENC1",
		Secret:  &compute.Secret{ID: "k", Key: []byte(key)},
		Backing: []compute.DiskLayer{{Path: mid, Format: compute.FormatQcow2, Encrypted: true}, {Path: base, Format: compute.FormatQcow2, Encrypted: true}}}}
	info := bootAppliance(t, d, spec)
	n := blockNodes(t, d, "chain")
	for _, want := range []string{"drive-enc", "bk1-enc", "bk2-enc"} {
		if !n[want] {
			t.Fatalf("%s missing or not encrypted: %v", want, n)
		}
	}
	consoleCommand(t, info, "disks", "vda=ENC1")
	// Read through the running QEMU's top node (HMP qemu-io, whose output goes to QEMU's
	// stdout, qemu.log): the base's data, the middle layer's, and zeros where nothing was written.
	_, _, c := d.insts["chain"].snapshot()
	for _, rd := range []string{"read -P 0x5a 0 64k", "read -P 0x6b 1M 64k", "read -P 0 2M 64k"} {
		var out string
		if err := c.ExecuteInto(ctxT(t, 30e9), "human-monitor-command", map[string]any{"command-line": "qemu-io drive-enc \"" + rd + "\""}, &out); err != nil {
			t.Fatal(err)
		}
	}
	log, _ := os.ReadFile(dir + "/chain/qemu.log")
	for _, want := range []string{"read 65536/65536 bytes at offset 0\n", "read 65536/65536 bytes at offset 1048576\n", "read 65536/65536 bytes at offset 2097152\n"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("qemu.log lacks %q", want)
		}
	}
	if strings.Contains(string(log), "verification failed") || strings.Contains(string(log), "rror") {
		t.Fatalf("reads through the chain failed:\n%s", log)
	}
}
