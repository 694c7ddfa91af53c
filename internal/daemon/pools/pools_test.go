package pools_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
	_ "github.com/finvirt/finvirt/internal/daemon/pools"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/loopdev"
)

const GiB = 1 << 30

func need(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (scripts/setup.sh installs it)", b)
		}
	}
}

// qemuIO runs qemu-io on a volume's active layer, as a guest writing to the disk would.
func qemuIO(t *testing.T, path, cmd string) error {
	t.Helper()
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", cmd, path).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("Pattern verification failed")) {
		return errors.New(string(out))
	}
	return nil
}

// volumePath opens the dir pool read-only through the library to find a volume's file.
func volumePath(t *testing.T, poolPath, poolVolume string) string {
	t.Helper()
	drv, err := storage.Load("dir")
	if err != nil {
		t.Fatal(err)
	}
	p, err := drv.Open(context.Background(), storage.PoolConfig{Name: "fast", Driver: "dir", Path: poolPath})
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Access(context.Background(), poolVolume)
	if err != nil {
		t.Fatal(err)
	}
	return a.Chain[0].Path
}

func TestVolumesThroughTheAPI(t *testing.T) {
	need(t, "qemu-img", "qemu-io")
	td := dt.Start(t)
	ctx := context.Background()
	c := td.Local
	pool, err := c.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "fast", Driver: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if pool.Status != "online" || pool.Capacity == 0 {
		t.Fatalf("pool = %+v", pool)
	}
	if _, err := c.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "fast", Driver: "dir"}); client.StatusOf(err) != 409 {
		t.Fatalf("duplicate pool: %v", err)
	}
	if _, err := c.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "x", Driver: "zfs"}); client.StatusOf(err) != 400 || !strings.Contains(err.Error(), "use one of") {
		t.Fatalf("unknown driver: %v", err)
	}
	if _, err := c.CreateProject(ctx, api.ProjectsPost{Name: "bank", Limits: api.ProjectLimits{Disk: 10 * GiB}}); err != nil {
		t.Fatal(err)
	}

	// Thin: 8 GiB provisioned, almost nothing allocated; the quota counts the 8 GiB.
	v, err := c.CreateVolume(ctx, "bank", api.VolumesPost{Name: "ledger", Pool: "fast", Size: 8 * GiB})
	if err != nil {
		t.Fatal(err)
	}
	if v.Size != 8*GiB || v.Allocated > 16<<20 || v.Format != "qcow2" {
		t.Fatalf("volume = %+v", v)
	}
	p, _ := c.GetProject(ctx, "bank")
	if p.Usage.Disk != 8*GiB {
		t.Fatalf("disk usage = %d, want 8GiB", p.Usage.Disk)
	}
	// Over quota: refused before anything is created.
	if _, err := c.CreateVolume(ctx, "bank", api.VolumesPost{Name: "big", Pool: "fast", Size: 4 * GiB}); client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "over quota") {
		t.Fatalf("over quota: %v", err)
	}
	// Bad input, each precise and changing nothing.
	for _, tc := range []struct {
		req  api.VolumesPost
		code int
		msg  string
	}{
		{api.VolumesPost{Name: "a/b", Pool: "fast", Size: GiB}, 400, "invalid"},
		{api.VolumesPost{Name: "z", Pool: "fast", Size: 0}, 400, "positive"},
		{api.VolumesPost{Name: "z", Pool: "nosuch", Size: GiB}, 404, "storage pool nosuch not found"},
		{api.VolumesPost{Name: "z", Pool: "fast", Size: GiB, Cache: "unsafe"}, 400, "cache policy"},
		{api.VolumesPost{Name: "ledger", Pool: "fast", Size: GiB}, 409, "already exists"},
	} {
		if _, err := c.CreateVolume(ctx, "bank", tc.req); client.StatusOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("create %+v: %v, want %d %q", tc.req, err, tc.code, tc.msg)
		}
	}
	if vs, _ := c.ListVolumes(ctx, "bank"); len(vs) != 1 {
		t.Fatalf("refused creates left volumes: %+v", vs)
	}
	if pl, _ := c.GetStoragePool(ctx, "fast"); pl.Volumes != 1 {
		t.Fatalf("pool holds %d volumes after refused creates, want 1", pl.Volumes)
	}

	// Snapshot, overwrite, restore: the data is exactly as at snapshot time.
	path := volumePath(t, pool.Path, "bank_ledger")
	if err := qemuIO(t, path, "write -P 0xab 0 1M"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SnapshotVolume(ctx, "bank", "ledger", "eod"); err != nil {
		t.Fatal(err)
	}
	// The snapshot may have moved the active layer: write where the guest would now.
	if err := qemuIO(t, volumePath(t, pool.Path, "bank_ledger"), "write -P 0xcd 0 1M"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RestoreVolume(ctx, "bank", "ledger", "eod"); err != nil {
		t.Fatal(err)
	}
	if err := qemuIO(t, volumePath(t, pool.Path, "bank_ledger"), "read -P 0xab 0 1M"); err != nil {
		t.Fatalf("restored data differs: %v", err)
	}

	// Clone (O(1), counted in the quota), dependents block deletion of the source.
	if _, err := c.CloneVolume(ctx, "bank", "ledger", api.VolumeClone{Name: "ledger-copy"}); client.StatusOf(err) != 409 {
		t.Fatalf("clone over quota (8+8 > 10 GiB): %v", err)
	}
	if _, err := c.UpdateProject(ctx, "bank", api.ProjectPatch{Limits: &api.ProjectLimits{Disk: 100 * GiB}}); err != nil {
		t.Fatal(err)
	}
	cl, err := c.CloneVolume(ctx, "bank", "ledger", api.VolumeClone{Name: "ledger-copy"})
	if err != nil || cl.Origin == "" {
		t.Fatalf("clone = %+v, %v", cl, err)
	}
	if err := qemuIO(t, volumePath(t, pool.Path, "bank_ledger-copy"), "read -P 0xab 0 1M"); err != nil {
		t.Fatalf("clone does not hold the source's data: %v", err)
	}
	if err := c.DeleteVolume(ctx, "bank", "ledger"); client.StatusOf(err) != 409 {
		t.Fatalf("delete of a cloned-from volume: %v, want 409", err)
	}
	// Resize within quota.
	if v, err := c.ResizeVolume(ctx, "bank", "ledger-copy", 12*GiB); err != nil || v.Size != 12*GiB {
		t.Fatalf("resize = %+v, %v", v, err)
	}
	p, _ = c.GetProject(ctx, "bank")
	if p.Usage.Disk != 20*GiB {
		t.Fatalf("usage after clone+resize = %d, want 20GiB", p.Usage.Disk)
	}

	// Export as qcow2: a self-contained image (the raw export is checked on the import below).
	var qc bytes.Buffer
	if err := c.ExportVolume(ctx, "bank", "ledger", "qcow2", &qc); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(qc.Bytes(), []byte("QFI\xfb")) || qc.Len() > 64<<20 {
		t.Fatalf("qcow2 export: %d bytes, magic %q", qc.Len(), qc.Bytes()[:4])
	}

	// Import a VMDK (as from VMware) and reject a lying file.
	dir := t.TempDir()
	rawFile := filepath.Join(dir, "disk.raw")
	os.WriteFile(rawFile, bytes.Repeat([]byte{0x5a}, 2<<20), 0o600)
	vmdk := filepath.Join(dir, "disk.vmdk")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "vmdk", rawFile, vmdk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v %s", err, out)
	}
	importFile(t, c, "bank", vmdk, "migrated", "vmdk", true)
	var back bytes.Buffer
	if err := c.ExportVolume(ctx, "bank", "migrated", "raw", &back); err != nil || !bytes.Equal(back.Bytes()[:2<<20], bytes.Repeat([]byte{0x5a}, 2<<20)) {
		t.Fatalf("imported data differs (%d bytes, %v)", back.Len(), err)
	}
	importFile(t, c, "bank", rawFile, "liar", "vmdk", false) // claims vmdk, is raw
	if _, err := c.GetVolume(ctx, "bank", "liar"); client.StatusOf(err) != 404 {
		t.Fatalf("refused import left a volume: %v", err)
	}

	// Delete everything: usage returns to zero, the pool can go.
	for _, n := range []string{"ledger-copy", "ledger", "migrated"} {
		if err := c.DeleteVolume(ctx, "bank", n); err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
	}
	if p, _ := c.GetProject(ctx, "bank"); p.Usage.Disk != 0 {
		t.Fatalf("usage after deletes = %d", p.Usage.Disk)
	}
	if err := c.DeleteStoragePool(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
}

func importFile(t *testing.T, c *client.Client, project, file, name, format string, wantOK bool) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	op, err := c.ImportVolume(ctx, project, "fast", name, filepath.Base(file), format, false, f)
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.WaitOperation(ctx, op.ID, nil)
	if wantOK && err != nil {
		t.Fatalf("import %s: %v", file, err)
	}
	if !wantOK && (err == nil || !strings.Contains(final.Error, name)) {
		t.Fatalf("import of lying %s: %+v %v; want a failure naming %s", file, final, err, name)
	}
}

func TestFourEyesOnVolumesOfProtectedProjects(t *testing.T) {
	need(t, "qemu-img")
	td := dt.Start(t)
	ctx := context.Background()
	if _, err := td.Local.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "fast", Driver: "dir"}); err != nil {
		t.Fatal(err)
	}
	td.MustProject(t, "vault", true)
	if _, err := td.Local.CreateVolume(ctx, "vault", api.VolumesPost{Name: "keys", Pool: "fast", Size: GiB}); err != nil {
		t.Fatal(err)
	}
	var pa *client.PendingApproval
	if err := td.Local.DeleteVolume(ctx, "vault", "keys"); !errors.As(err, &pa) {
		t.Fatalf("delete in protected project: %v, want a pending approval", err)
	}
	if _, err := td.Local.GetVolume(ctx, "vault", "keys"); err != nil {
		t.Fatalf("volume gone before approval: %v", err)
	}
	bob := td.TokenFor(t, "bob", api.RoleOperator, "vault")
	if a, err := bob.DecideApproval(ctx, pa.Approval.ID, true, ""); err != nil || a.Status != api.ApprovalApproved {
		t.Fatalf("approve: %+v %v", a, err)
	}
	if _, err := td.Local.GetVolume(ctx, "vault", "keys"); client.StatusOf(err) != 404 {
		t.Fatalf("volume survived the approved delete: %v", err)
	}
}

// TestOrphanRemovedAfterCrash plants a pool volume without a record — what a daemon
// killed between the pool operation and its commit leaves — and checks the restarted
// daemon removes it and says so in the audit log.
func TestOrphanRemovedAfterCrash(t *testing.T) {
	need(t, "qemu-img")
	td := dt.Start(t)
	ctx := context.Background()
	pool, err := td.Local.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "fast", Driver: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	td.MustProject(t, "bank", false)
	if _, err := td.Local.CreateVolume(ctx, "bank", api.VolumesPost{Name: "kept", Pool: "fast", Size: GiB}); err != nil {
		t.Fatal(err)
	}
	cfg := td.D.Config()
	td.Stop()
	drv, _ := storage.Load("dir")
	p, err := drv.Open(ctx, storage.PoolConfig{Name: "fast", Driver: "dir", Path: pool.Path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateVolume(ctx, "bank_orphan", GiB, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	td2 := dt.Start(t, func(c *daemon.Config) { c.StateDir, c.MasterKeyPath = cfg.StateDir, cfg.MasterKeyPath })
	if pl, _ := td2.Local.GetStoragePool(ctx, "fast"); pl.Volumes != 1 {
		t.Fatalf("pool holds %d volumes after restart, want 1 (the orphan removed)", pl.Volumes)
	}
	if _, err := td2.Local.GetVolume(ctx, "bank", "kept"); err != nil {
		t.Fatalf("recorded volume lost: %v", err)
	}
	recs, _ := td2.Local.AuditList(ctx, "", 0)
	found := false
	for _, r := range recs {
		found = found || r.Action == "volume.orphan-removed" && r.Target == "volume/bank/orphan"
	}
	if !found {
		t.Fatal("orphan removal not in the audit log")
	}
}

// TestBtrfsPoolOverSeveralDevices creates a raid1 pool over two loop devices through the
// API and checks per-device usage and health are reported.
func TestBtrfsPoolOverSeveralDevices(t *testing.T) {
	need(t, "mkfs.btrfs", "losetup", "qemu-img")
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	a, b := loopdev.New(t, 1<<30), loopdev.New(t, 1<<30)
	td := dt.Start(t)
	ctx := context.Background()
	p, err := td.Local.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "mirror", Driver: "btrfs", Source: []string{a, b}, Profile: "raid1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vs, _ := td.Local.ListVolumes(ctx, "")
		for _, v := range vs {
			td.Local.DeleteVolume(ctx, "", v.Name)
		}
		deadline := time.Now().Add(30 * time.Second)
		for td.Local.DeleteStoragePool(ctx, "mirror") != nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	})
	if p.Profile != "raid1" || len(p.Devices) != 2 || p.Status != "online" {
		t.Fatalf("pool = %+v", p)
	}
	for _, d := range p.Devices {
		if d.Health != "ok" || d.Size == 0 {
			t.Fatalf("device = %+v", d)
		}
	}
	if _, err := td.Local.CreateVolume(ctx, "", api.VolumesPost{Name: "data", Pool: "mirror", Size: 20 * GiB}); err != nil {
		t.Fatalf("thin volume larger than the devices: %v", err)
	}
	p, _ = td.Local.GetStoragePool(ctx, "mirror")
	if p.Overcommit <= 1 {
		t.Fatalf("overcommit = %.2f with 20 GiB on ~1 GiB of raid1", p.Overcommit)
	}
	// A device already in the pool cannot be used again.
	if _, err := td.Local.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "again", Driver: "btrfs", Source: []string{a}}); err == nil {
		t.Fatal("a device of a mounted pool was accepted for another pool")
	}
}

func TestStorageRBAC(t *testing.T) {
	need(t, "qemu-img")
	td := dt.Start(t)
	ctx := context.Background()
	roles := td.StandardRoles(t)
	if _, err := td.Local.CreateStoragePool(ctx, api.StoragePoolsPost{Name: "fast", Driver: "dir"}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.Local.CreateVolume(ctx, "bank", api.VolumesPost{Name: "v", Pool: "fast", Size: GiB}); err != nil {
		t.Fatal(err)
	}
	A, Au, O, V := dt.Admin, dt.Auditor, dt.OpBank, dt.ViewerBank
	readers := []string{A, Au, O, V}
	writers := []string{A, O}
	rows := []dt.RBACRow{
		dt.Row("GET", "/1.0/storage-pools", "", dt.AllRoles...),
		dt.Row("POST", "/1.0/storage-pools", `{"name":"Bad Name","driver":"dir"}`, A),
		dt.Row("GET", "/1.0/storage-pools/fast", "", dt.AllRoles...),
		dt.Row("DELETE", "/1.0/storage-pools/nosuch", "", A),
		dt.Row("POST", "/1.0/storage-pools/fast/extend", `{"device":"relative"}`, A),
		dt.Row("GET", "/1.0/volumes?project=bank", "", readers...),
		dt.Row("POST", "/1.0/volumes?project=bank", `{"name":"Bad Name","pool":"fast","size":1}`, writers...),
		dt.Row("POST", "/1.0/volumes/import?project=bank&name=Bad_Name", "", writers...),
		dt.Row("GET", "/1.0/volumes/v?project=bank", "", readers...),
		dt.Row("DELETE", "/1.0/volumes/nosuch?project=bank", "", writers...),
		dt.Row("POST", "/1.0/volumes/v/resize?project=bank", `{"size":0}`, writers...),
		dt.Row("POST", "/1.0/volumes/v/clone?project=bank", `{"name":"Bad Name"}`, writers...),
		dt.Row("GET", "/1.0/volumes/nosuch/export?project=bank", "", writers...),
		dt.Row("GET", "/1.0/volumes/v/snapshots?project=bank", "", readers...),
		dt.Row("POST", "/1.0/volumes/v/snapshots?project=bank", `{"name":"Bad Name"}`, writers...),
		dt.Row("DELETE", "/1.0/volumes/v/snapshots/nosuch?project=bank", "", writers...),
		dt.Row("POST", "/1.0/volumes/v/restore?project=bank", `{"snapshot":"nosuch"}`, writers...),
		dt.Row("GET", "/1.0/volumes?project=securities", "", A, Au, dt.OpSec),
	}
	td.CheckRBAC(t, roles, rows, "/1.0/storage-pools", "/1.0/volumes")
}
