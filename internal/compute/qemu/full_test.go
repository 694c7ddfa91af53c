package qemu

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

// TestFullUEFIWithTPM starts a q35 guest on OVMF with a swtpm TPM and no disk: the firmware
// must run (it reports on the serial console), QEMU must see the TPM, and stopping must end
// swtpm too.
func TestFullUEFIWithTPM(t *testing.T) {
	if _, err := os.Stat(DefaultFirmware); err != nil {
		t.Skip("OVMF not installed (apt-get install ovmf)")
	}
	if _, err := exec.LookPath("swtpm"); err != nil {
		t.Skip("swtpm not installed (apt-get install swtpm)")
	}
	dir := stateDir(t)
	d := newDriver(t, dir)
	ctx := ctxT(t, 3*time.Minute)
	spec := compute.Spec{Name: "uefi", Profile: compute.ProfileFull, VCPUs: 1, MemoryMiB: 256, TPM: &compute.TPMSpec{}, TBSizeMiB: 32}
	info, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir + "/uefi/OVMF_VARS.fd"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("per-instance UEFI vars: %v", err)
	}
	if err := d.Start(ctx, "uefi"); err != nil {
		t.Fatal(err)
	}
	_, _, c := d.insts["uefi"].snapshot()
	var tpms []struct {
		ID    string `json:"id"`
		Model string `json:"model"`
	}
	if err := c.ExecuteInto(ctx, "query-tpm", nil, &tpms); err != nil || len(tpms) != 1 || tpms[0].Model != "tpm-tis" {
		t.Fatalf("query-tpm = %+v, %v", tpms, err)
	}
	// OVMF's boot manager reports on the serial console once the firmware has run.
	if _, err := testvm.WaitLog(ctx, info.SerialLog, "BdsDxe", 0); err != nil {
		t.Fatal(err)
	}
	tpmPID := readPIDFile(dir + "/uefi/swtpm.pid")
	if !isOurQEMU(tpmPID, dir+"/uefi") {
		t.Fatalf("swtpm (pid %d) not running", tpmPID)
	}
	// The firmware ignores the power button: Stop must fall through to quit.
	if err := d.Stop(ctx, "uefi", compute.StopOptions{Timeout: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && isOurQEMU(tpmPID, dir+"/uefi"); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if isOurQEMU(tpmPID, dir+"/uefi") {
		t.Fatal("swtpm still running after stop")
	}
	noQEMUUnder(t, dir)
}
