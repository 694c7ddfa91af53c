package qemu

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
)

// TestBadInputChangesNothing: every rejected Create leaves no instance directory and no QEMU,
// and says what is wrong.
func TestBadInputChangesNothing(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir, compute.WithHostLimits(2, 4096))
	ctx := ctxT(t, time.Minute)
	good := applianceSpec(t, "bad", "")
	tests := []struct {
		name   string
		mutate func(*compute.Spec)
		want   string
	}{
		{"zero vcpus", func(s *compute.Spec) { s.VCPUs = 0 }, "vcpus 0"},
		{"too many vcpus", func(s *compute.Spec) { s.VCPUs = 9 }, "exceeds the limit 8"},
		{"tiny memory", func(s *compute.Spec) { s.MemoryMiB = 16 }, "below the minimum 64"},
		{"memory above host", func(s *compute.Spec) { s.MemoryMiB = 8192 }, "exceeds host memory 4096"},
		{"missing kernel file", func(s *compute.Spec) { s.Kernel = "/nonexistent/vmlinux" }, "/nonexistent/vmlinux"},
		{"missing disk file", func(s *compute.Spec) {
			s.Disks = []compute.DiskSpec{{ID: "d0", Path: "/nonexistent.qcow2", Format: compute.FormatQcow2}}
		}, "disk d0"},
		{"bad format", func(s *compute.Spec) {
			s.Disks = []compute.DiskSpec{{ID: "d0", Path: "/x", Format: "vmdk"}}
		}, `format "vmdk" is unknown`},
		{"bad name", func(s *compute.Spec) { s.Name = "../escape" }, "name must be"},
		{"bad mac", func(s *compute.Spec) {
			s.NICs = []compute.NICSpec{{ID: "n0", Tap: "tap0", MAC: "01:00:5e:00:00:01"}}
		}, "multicast"},
		{"cpuset off host", func(s *compute.Spec) { s.CPUSet = "0-3" }, "CPU 2 does not exist"},
		{"firmware on appliance", func(s *compute.Spec) { s.Firmware = "/usr/share/OVMF/OVMF_CODE_4M.fd" }, "takes no firmware"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.mutate(&s)
			_, err := d.Create(ctx, s)
			if !errors.Is(err, compute.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create error = %v; want ErrInvalid mentioning %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("state dir not empty after rejected create: %v", ents)
			}
		})
	}

	// A duplicate name is refused and the first instance is untouched.
	if _, err := d.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	other := good
	other.MemoryMiB = 256
	if _, err := d.Create(ctx, other); !errors.Is(err, compute.ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if info, _ := d.Info(ctx, "bad"); info.Spec.MemoryMiB != 128 {
		t.Fatalf("duplicate create changed the instance: %+v", info.Spec)
	}
	if err := d.Pause(ctx, "bad"); !errors.Is(err, compute.ErrState) {
		t.Fatalf("pause of a stopped instance: %v", err)
	}
	if err := d.AttachDisk(ctx, "bad", compute.DiskSpec{ID: "x", Path: "/nonexistent.img", Format: compute.FormatRaw}); !errors.Is(err, compute.ErrInvalid) {
		t.Fatalf("attach of a missing disk file: %v", err)
	}
	// A stopped appliance takes the disk into its spec, for the next boot.
	img := dir + "/x.img"
	os.WriteFile(img, make([]byte, 4096), 0o600)
	if err := d.AttachDisk(ctx, "bad", compute.DiskSpec{ID: "x", Path: img, Format: compute.FormatRaw}); err != nil {
		t.Fatalf("attach to a stopped appliance: %v", err)
	}
	if err := d.AttachDisk(ctx, "bad", compute.DiskSpec{ID: "x", Path: img, Format: compute.FormatRaw}); !errors.Is(err, compute.ErrInvalid) {
		t.Fatalf("second disk with the same id: %v", err)
	}
	if info, _ := d.Info(ctx, "bad"); len(info.Spec.Disks) != 1 {
		t.Fatalf("spec disks after cold attach: %+v", info.Spec.Disks)
	}
	if err := d.DetachDisk(ctx, "bad", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.State(ctx, "nosuch"); !errors.Is(err, compute.ErrNotFound) {
		t.Fatalf("state of unknown: %v", err)
	}
}

// TestStartFailureLeavesNothingRunning: QEMU refuses a raw file declared as qcow2; Start
// reports QEMU's own message, the instance is in error, and no process or socket is left.
func TestStartFailureLeavesNothingRunning(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	ctx := ctxT(t, time.Minute)
	s := applianceSpec(t, "notap", "")
	raw := dir + "/not-a-qcow2.img"
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Disks = []compute.DiskSpec{{ID: "d0", Path: raw, Format: compute.FormatQcow2}}
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	err := d.Start(ctx, "notap")
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), "qcow2") {
		t.Fatalf("Start = %v; want QEMU's failure", err)
	}
	st, _ := d.State(ctx, "notap")
	if st.State != compute.StateError || !strings.Contains(st.Reason, "start failed") {
		t.Fatalf("state = %+v", st)
	}
	noQEMUUnder(t, dir)
	for _, f := range []string{"qemu.pid", "qmp.sock"} {
		if _, err := os.Stat(dir + "/notap/" + f); err == nil {
			t.Errorf("%s left behind", f)
		}
	}
	if err := d.Delete(ctx, "notap"); err != nil {
		t.Fatal(err)
	}
}
