package storagetest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
)

// Run runs the conformance suite. newPool returns a fresh, empty pool for each subtest and
// registers its own cleanup.
func Run(t *testing.T, newPool func(t *testing.T) storage.Pool) {
	RequireTools(t, "qemu-img", "qemu-io")
	tests := []struct {
		name string
		fn   func(t *testing.T, p storage.Pool)
	}{
		{"CreateListGetDelete", testCRUD},
		{"ThinProvisioning", testThin},
		{"SnapshotRestore", testSnapshotRestore},
		{"CloneIndependence", testCloneIndependence},
		{"CloneLargeThin", testCloneLarge},
		{"DeleteWithDependents", testDependents},
		{"Resize", testResize},
		{"BadInput", testBadInput},
		{"ExportImportRoundTrip", testExportImport},
		{"Encrypted", testEncrypted},
		{"KeyRotation", testKeyRotation},
		{"CachePolicy", testCache},
		{"Info", testInfo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newPool(t)) })
	}
}

func mustCreate(t *testing.T, p storage.Pool, name string, size uint64, opts storage.VolumeOpts) storage.Volume {
	t.Helper()
	v, err := p.CreateVolume(Ctx(t), name, size, opts)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return v
}

func testCRUD(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "alpha", 64*MiB, storage.VolumeOpts{})
	mustCreate(t, p, "beta", 32*MiB, storage.VolumeOpts{})
	vols, err := p.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || vols[0].Name != "alpha" || vols[1].Name != "beta" {
		t.Fatalf("list = %+v, want alpha, beta", vols)
	}
	v, err := p.GetVolume(ctx, "alpha")
	if err != nil || v.Size != 64*MiB {
		t.Fatalf("get alpha = %+v, %v; want size 64 MiB", v, err)
	}
	if _, err := p.CreateVolume(ctx, "alpha", 64*MiB, storage.VolumeOpts{}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("duplicate create: %v, want ErrExists", err)
	}
	MustQemuIO(t, p, "alpha", "write -P 0x5a 0 64k")
	if err := p.DeleteVolume(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.GetVolume(ctx, "alpha"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("get deleted: %v, want ErrNotFound", err)
	}
	// The name is free again and the new volume starts empty.
	mustCreate(t, p, "alpha", 64*MiB, storage.VolumeOpts{})
	WantPattern(t, p, "alpha", "0", "0", "64k")
}

func testThin(t *testing.T, p storage.Pool) {
	v := mustCreate(t, p, "thin", 10*GiB, storage.VolumeOpts{})
	if v.Size != 10*GiB {
		t.Fatalf("provisioned %d, want 10 GiB", v.Size)
	}
	if v.Allocated > 16*MiB {
		t.Fatalf("allocated %d bytes right after creating a 10 GiB volume: not thin", v.Allocated)
	}
	MustQemuIO(t, p, "thin", "write -P 0xab 0 4M")
	v2, err := p.GetVolume(Ctx(t), "thin")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Allocated < 4*MiB || v2.Allocated > 64*MiB {
		t.Fatalf("allocated %d after writing 4 MiB, want about 4 MiB", v2.Allocated)
	}
}

func testSnapshotRestore(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "vm", 64*MiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "vm", "write -P 0xab 0 1M")
	if _, err := p.CreateSnapshot(ctx, "vm", "s1"); err != nil {
		t.Fatal(err)
	}
	MustQemuIO(t, p, "vm", "write -P 0xcd 0 1M", "write -P 0xee 8M 1M")
	if _, err := p.CreateSnapshot(ctx, "vm", "s2"); err != nil {
		t.Fatal(err)
	}
	MustQemuIO(t, p, "vm", "write -P 0x11 0 1M")
	snaps, err := p.ListSnapshots(ctx, "vm")
	if err != nil || len(snaps) != 2 || snaps[0].Name != "s1" || snaps[1].Name != "s2" {
		t.Fatalf("snapshots = %+v, %v", snaps, err)
	}
	if err := p.RestoreSnapshot(ctx, "vm", "s1"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "vm", "0xab", "0", "1M")
	WantPattern(t, p, "vm", "0", "8M", "1M")
	// Later snapshots survive a restore to an earlier one.
	if err := p.RestoreSnapshot(ctx, "vm", "s2"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "vm", "0xcd", "0", "1M")
	WantPattern(t, p, "vm", "0xee", "8M", "1M")
	// Restoring twice gives the snapshot again, not the writes made after the first restore.
	MustQemuIO(t, p, "vm", "write -P 0x22 0 1M")
	if err := p.RestoreSnapshot(ctx, "vm", "s2"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "vm", "0xcd", "0", "1M")
	if err := p.DeleteSnapshot(ctx, "vm", "s1"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "vm", "0xcd", "0", "1M")
	if err := p.RestoreSnapshot(ctx, "vm", "s1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("restore deleted snapshot: %v, want ErrNotFound", err)
	}
	if _, err := p.CreateSnapshot(ctx, "vm", "s2"); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("duplicate snapshot: %v, want ErrExists", err)
	}
	if err := p.DeleteVolume(ctx, "vm"); err != nil {
		t.Fatalf("delete volume with snapshots: %v", err)
	}
}

func testCloneIndependence(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "src", 64*MiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "src", "write -P 0xab 0 1M")
	c, err := p.CloneVolume(ctx, "src", "clone")
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 64*MiB || c.Origin != "src" {
		t.Fatalf("clone = %+v", c)
	}
	WantPattern(t, p, "clone", "0xab", "0", "1M")
	MustQemuIO(t, p, "clone", "write -P 0x11 0 512k")
	WantPattern(t, p, "src", "0xab", "0", "1M")
	MustQemuIO(t, p, "src", "write -P 0x22 512k 512k")
	WantPattern(t, p, "clone", "0x11", "0", "512k")
	WantPattern(t, p, "clone", "0xab", "512k", "512k")

	// Clone of a snapshot sees the snapshot, not later writes.
	if _, err := p.CreateSnapshot(ctx, "src", "snap"); err != nil {
		t.Fatal(err)
	}
	MustQemuIO(t, p, "src", "write -P 0x33 0 1M")
	if _, err := p.CloneVolume(ctx, "src@snap", "fromsnap"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "fromsnap", "0xab", "0", "512k")
	WantPattern(t, p, "fromsnap", "0x22", "512k", "512k")
	MustQemuIO(t, p, "fromsnap", "write -P 0x44 0 1M")
	WantPattern(t, p, "src", "0x33", "0", "1M")
	if err := p.RestoreSnapshot(ctx, "src", "snap"); err != nil {
		t.Fatal(err)
	}
	WantPattern(t, p, "fromsnap", "0x44", "0", "1M")
	WantPattern(t, p, "src", "0xab", "0", "512k")
}

func testCloneLarge(t *testing.T, p storage.Pool) {
	mustCreate(t, p, "big", 100*GiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "big", "write -P 0xab 99G 1M")
	c, err := p.CloneVolume(Ctx(t), "big", "bigclone")
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 100*GiB {
		t.Fatalf("clone size %d, want 100 GiB", c.Size)
	}
	if c.Allocated > 64*MiB {
		t.Fatalf("clone allocated %d bytes: data was copied", c.Allocated)
	}
	WantPattern(t, p, "bigclone", "0xab", "99G", "1M")
}

// Drivers whose clones share blocks with the source (dir: backing chain) must refuse to delete
// the source; drivers whose clones are independent (btrfs: extent refcounts) may delete it, and
// then the clone must still read its data.
func testDependents(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "base", 64*MiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "base", "write -P 0xab 0 1M")
	if _, err := p.CreateSnapshot(ctx, "base", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CloneVolume(ctx, "base@s", "child"); err != nil {
		t.Fatal(err)
	}
	err := p.DeleteSnapshot(ctx, "base", "s")
	if err != nil {
		WantErr(t, "delete snapshot with a clone", err, storage.ErrInUse)
		if !strings.Contains(err.Error(), "child") {
			t.Fatalf("error %q does not name the dependent clone", err)
		}
		WantPattern(t, p, "base", "0xab", "0", "1M")
	}
	err = p.DeleteVolume(ctx, "base")
	if err != nil {
		WantErr(t, "delete volume with a clone", err, storage.ErrInUse)
		if !strings.Contains(err.Error(), "child") {
			t.Fatalf("error %q does not name the dependent clone", err)
		}
		WantPattern(t, p, "base", "0xab", "0", "1M")
		WantPattern(t, p, "child", "0xab", "0", "1M")
		if err := p.DeleteVolume(ctx, "child"); err != nil {
			t.Fatal(err)
		}
		if err := p.DeleteVolume(ctx, "base"); err != nil {
			t.Fatalf("delete after removing the clone: %v", err)
		}
	} else {
		WantPattern(t, p, "child", "0xab", "0", "1M")
	}
}

func testResize(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "r", 64*MiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "r", "write -P 0xab 0 1M")
	if err := p.ResizeVolume(ctx, "r", 128*MiB); err != nil {
		t.Fatal(err)
	}
	v, _ := p.GetVolume(ctx, "r")
	if v.Size != 128*MiB {
		t.Fatalf("size after grow %d", v.Size)
	}
	MustQemuIO(t, p, "r", "write -P 0xcd 100M 1M")
	WantPattern(t, p, "r", "0xab", "0", "1M")
	err := p.ResizeVolume(ctx, "r", 64*MiB)
	WantErr(t, "shrink below used", err, storage.ErrInvalid)
	WantPattern(t, p, "r", "0xcd", "100M", "1M")
	err = p.ResizeVolume(ctx, "r", 120*MiB)
	if err != nil {
		WantErr(t, "shrink", err, storage.ErrUnsupported)
		return
	}
	v, _ = p.GetVolume(ctx, "r")
	if v.Size != 120*MiB {
		t.Fatalf("size after shrink %d", v.Size)
	}
	WantPattern(t, p, "r", "0xcd", "100M", "1M")
}

func testBadInput(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "ok", 64*MiB, storage.VolumeOpts{})
	long := strings.Repeat("x", 64)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"empty name", func() error { _, e := p.CreateVolume(ctx, "", MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"path separator", func() error { _, e := p.CreateVolume(ctx, "a/b", 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"dot dot", func() error { _, e := p.CreateVolume(ctx, "..", 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"hidden", func() error { _, e := p.CreateVolume(ctx, ".tmp-x", 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"at sign", func() error { _, e := p.CreateVolume(ctx, "a@b", 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"space", func() error { _, e := p.CreateVolume(ctx, "a b", 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"too long", func() error { _, e := p.CreateVolume(ctx, long, 64*MiB, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"zero size", func() error { _, e := p.CreateVolume(ctx, "z", 0, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"overflow size", func() error { _, e := p.CreateVolume(ctx, "z", ^uint64(0), storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"odd size", func() error { _, e := p.CreateVolume(ctx, "z", 64*MiB+1, storage.VolumeOpts{}); return e }, storage.ErrInvalid},
		{"bad cache", func() error {
			_, e := p.CreateVolume(ctx, "z", 64*MiB, storage.VolumeOpts{Cache: "unsafe"})
			return e
		}, storage.ErrInvalid},
		{"get missing", func() error { _, e := p.GetVolume(ctx, "nope"); return e }, storage.ErrNotFound},
		{"delete missing", func() error { return p.DeleteVolume(ctx, "nope") }, storage.ErrNotFound},
		{"resize missing", func() error { return p.ResizeVolume(ctx, "nope", 64*MiB) }, storage.ErrNotFound},
		{"resize zero", func() error { return p.ResizeVolume(ctx, "ok", 0) }, storage.ErrInvalid},
		{"snapshot missing", func() error { _, e := p.CreateSnapshot(ctx, "nope", "s"); return e }, storage.ErrNotFound},
		{"snapshot bad name", func() error { _, e := p.CreateSnapshot(ctx, "ok", "s/1"); return e }, storage.ErrInvalid},
		{"restore missing snap", func() error { return p.RestoreSnapshot(ctx, "ok", "nope") }, storage.ErrNotFound},
		{"delete missing snap", func() error { return p.DeleteSnapshot(ctx, "ok", "nope") }, storage.ErrNotFound},
		{"clone missing", func() error { _, e := p.CloneVolume(ctx, "nope", "c"); return e }, storage.ErrNotFound},
		{"clone missing snap", func() error { _, e := p.CloneVolume(ctx, "ok@nope", "c"); return e }, storage.ErrNotFound},
		{"clone onto existing", func() error { _, e := p.CloneVolume(ctx, "ok", "ok"); return e }, storage.ErrExists},
		{"clone bad dst", func() error { _, e := p.CloneVolume(ctx, "ok", "../c"); return e }, storage.ErrInvalid},
		{"export bad format", func() error {
			return p.ExportVolumeFile(ctx, "ok", "vmdk", filepath.Join(t.TempDir(), "x"), nil)
		}, storage.ErrInvalid},
		{"import missing file", func() error {
			_, e := p.ImportVolume(ctx, filepath.Join(t.TempDir(), "none.qcow2"), "imp", storage.ImportOpts{})
			return e
		}, storage.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { WantErr(t, tt.name, tt.call(), tt.want) })
	}
	vols, err := p.ListVolumes(ctx)
	if err != nil || len(vols) != 1 {
		t.Fatalf("bad input changed the pool: %+v, %v", vols, err)
	}
}

func testExportImport(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	mustCreate(t, p, "orig", 64*MiB, storage.VolumeOpts{})
	MustQemuIO(t, p, "orig", "write -P 0xab 0 1M", "write -P 0xcd 40M 3M")
	for _, f := range []storage.Format{storage.FormatQcow2, storage.FormatRaw} {
		path := Export(t, p, "orig", f)
		if !SameContent(t, p, "orig", path, string(f)) {
			t.Fatalf("%s export differs from the volume", f)
		}
		var progress []float64
		name := "imp-" + string(f)
		v, err := p.ImportVolume(ctx, path, name, storage.ImportOpts{Progress: func(pc float64) { progress = append(progress, pc) }})
		if err != nil {
			t.Fatalf("import %s: %v", f, err)
		}
		if v.Size != 64*MiB {
			t.Fatalf("imported size %d", v.Size)
		}
		if !SameContent(t, p, name, path, string(f)) {
			t.Fatalf("%s import differs from the export", f)
		}
		if len(progress) == 0 || progress[len(progress)-1] != 100 {
			t.Fatalf("progress %v does not end at 100", progress)
		}
	}
	// Export to a writer gives the same bytes as the file export.
	var buf bytes.Buffer
	if err := p.ExportVolume(ctx, "orig", storage.FormatRaw, &buf, nil); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(Export(t, p, "orig", storage.FormatRaw))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("ExportVolume wrote %d bytes that differ from the %d-byte file export", buf.Len(), len(want))
	}
	// A corrupt file is refused and leaves no volume.
	bad := filepath.Join(t.TempDir(), "bad.qcow2")
	os.WriteFile(bad, []byte("QFI\xfb\x00\x00\x00\x03garbage"), 0o600)
	if _, err := p.ImportVolume(ctx, bad, "bad", storage.ImportOpts{}); !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("corrupt import: %v, want ErrInvalid", err)
	}
	if _, err := p.GetVolume(ctx, "bad"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("corrupt import left a volume: %v", err)
	}
}

func testCache(t *testing.T, p storage.Pool) {
	for _, c := range []storage.CachePolicy{storage.CacheNone, storage.CacheWritethrough, storage.CacheWriteback} {
		name := "c-" + string(c)
		v := mustCreate(t, p, name, 64*MiB, storage.VolumeOpts{Cache: c})
		if v.Cache != c {
			t.Fatalf("cache %q, want %q", v.Cache, c)
		}
		a, err := p.Access(Ctx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		cache := a.BlockdevNode("n")["cache"].(map[string]any)
		if cache["direct"] != (c == storage.CacheNone) || cache["no-flush"] != false {
			t.Fatalf("%s: cache options %v", c, cache)
		}
		// The node opens in the real block layer with O_DIRECT too.
		args := append([]string{"-c", "write -P 0x1 0 64k", "-c", "flush"}, a.QemuIOArgs()...)
		if out, err := runQemuIO(t, args); err != nil {
			t.Fatalf("%s: qemu-io: %v\n%s", c, err, out)
		}
	}
	v := mustCreate(t, p, "default", 64*MiB, storage.VolumeOpts{})
	if v.Cache != storage.CacheNone {
		t.Fatalf("default cache %q, want none", v.Cache)
	}
}

func testInfo(t *testing.T, p storage.Pool) {
	mustCreate(t, p, "a", 1*GiB, storage.VolumeOpts{})
	mustCreate(t, p, "b", 3*GiB, storage.VolumeOpts{})
	info, err := p.Info(Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Provisioned != 4*GiB || info.Volumes != 2 || info.Capacity == 0 {
		t.Fatalf("info %+v", info)
	}
	want := float64(info.Provisioned) / float64(info.Capacity)
	if info.Overcommit != want {
		t.Fatalf("overcommit %v, want %v", info.Overcommit, want)
	}
	err = p.Delete(Ctx(t))
	WantErr(t, "delete pool with volumes", err, storage.ErrInUse)
}
