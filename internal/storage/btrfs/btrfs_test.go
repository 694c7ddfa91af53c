package btrfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/loopdev"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func requireBtrfs(t testing.TB) {
	t.Helper()
	storagetest.RequireTools(t, "mkfs.btrfs", "btrfs", "blkid", "wipefs", "losetup")
	if err := loopdev.Available(); err != nil {
		t.Skipf("loop devices unavailable: %v", err)
	}
	b, _ := os.ReadFile("/proc/filesystems")
	if !strings.Contains(string(b), "btrfs") {
		t.Skip("kernel has no btrfs")
	}
}

// newConfig attaches n fresh loop devices and returns a config for a pool over them.
func newConfig(t testing.TB, n int, profile string) storage.PoolConfig {
	return newConfigSize(t, n, profile, 2<<30)
}

func newConfigSize(t testing.TB, n int, profile string, size int64) storage.PoolConfig {
	t.Helper()
	requireBtrfs(t)
	var devs []string
	for i := 0; i < n; i++ {
		devs = append(devs, loopdev.New(t, size))
	}
	root := t.TempDir()
	return storage.PoolConfig{Name: "bt" + fsutil.RandomID(4), Driver: DriverName, Path: filepath.Join(root, "mnt"),
		Devices: devs, Profile: profile, MasterKeyFile: filepath.Join(root, "master.key")}
}

func create(t testing.TB, cfg storage.PoolConfig) storage.Pool {
	t.Helper()
	p, err := storage.CreatePool(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closePool(t, cfg) })
	return p
}

// closePool unmounts whatever is mounted at the pool path (reopened pools included).
func closePool(t testing.TB, cfg storage.PoolConfig) {
	for isMountpoint(cfg.Path) {
		if err := umount(context.Background(), cfg.Path); err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
	}
	for _, d := range cfg.Devices {
		exec.Command("btrfs", "device", "scan", "--forget", d).Run()
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Pool { return create(t, newConfig(t, 2, "raid1")) })
}

func TestDeviceChecks(t *testing.T) {
	requireBtrfs(t)
	ctx := storagetest.Ctx(t)
	cfg := newConfig(t, 1, "single")
	p := create(t, cfg)
	_ = p
	// A member of a mounted pool is refused, even with force.
	cfg2 := newConfig(t, 0, "single")
	cfg2.Devices = cfg.Devices
	cfg2.Force = true
	_, err := storage.CreatePool(ctx, cfg2)
	storagetest.WantErr(t, "mounted device", err, storage.ErrInUse)

	// A device with an old filesystem is refused without force, accepted with it.
	dev := loopdev.New(t, 1<<30)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v %s", err, out)
	}
	cfg3 := newConfig(t, 0, "single")
	cfg3.Devices = []string{dev}
	_, err = storage.CreatePool(ctx, cfg3)
	storagetest.WantErr(t, "ext4 signature", err, storage.ErrInUse)
	if !strings.Contains(err.Error(), "ext4") || !strings.Contains(err.Error(), "force") {
		t.Fatalf("error %q should name the signature and the fix", err)
	}
	if _, err := os.Stat(cfg3.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused create left the mount path behind")
	}
	cfg3.Force = true
	create(t, cfg3)

	tests := []struct {
		name string
		cfg  storage.PoolConfig
		want error
	}{
		{"no devices", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x"}, storage.ErrInvalid},
		{"missing device", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x", Devices: []string{"/dev/nonexistent-finvirt"}}, storage.ErrNotFound},
		{"not a block device", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x", Devices: []string{"/etc/hostname"}}, storage.ErrInvalid},
		{"raid1 one device", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x", Devices: []string{dev}, Profile: "raid1"}, storage.ErrInvalid},
		{"bad profile", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x", Devices: []string{dev}, Profile: "raid5"}, storage.ErrInvalid},
		{"duplicate device", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "/tmp/x", Devices: []string{dev, dev}, Profile: "raid1"}, storage.ErrInvalid},
		{"relative path", storage.PoolConfig{Name: "x", Driver: DriverName, Path: "x", Devices: []string{dev}}, storage.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := storage.CreatePool(ctx, tt.cfg)
			storagetest.WantErr(t, tt.name, err, tt.want)
		})
	}
}

// TestDegradedRaid1 wipes one member of an unmounted raid1 pool: the pool must still open
// (degraded), report the missing device, and serve the volume data intact.
func TestDegradedRaid1(t *testing.T) {
	ctx := storagetest.Ctx(t)
	cfg := newConfig(t, 2, "raid1")
	p := create(t, cfg)
	if _, err := p.CreateVolume(ctx, "data", 256<<20, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	storagetest.MustQemuIO(t, p, "data", "write -P 0xab 0 16M", "write -P 0xcd 100M 8M")
	info, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Devices) != 2 || info.Degraded || info.Devices[0].Health != "ok" || info.Devices[0].Size != 2<<30 {
		t.Fatalf("healthy info %+v", info)
	}
	// The second member is not in mountinfo (only the first is): it is found through sysfs.
	err = storage.CheckDevice(ctx, cfg.Devices[1], true)
	storagetest.WantErr(t, "member of a mounted multi-device btrfs", err, storage.ErrInUse)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wipe(ctx, cfg.Devices[1]); err != nil {
		t.Fatalf("wipefs: %v", err)
	}
	p2, err := storage.OpenPool(ctx, cfg)
	if err != nil {
		t.Fatalf("open degraded: %v", err)
	}
	info, err = p2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Degraded {
		t.Fatalf("pool with a wiped raid1 member not reported degraded: %+v", info)
	}
	missing := 0
	for _, d := range info.Devices {
		if d.Missing && d.Health == "missing" {
			missing++
		}
	}
	if missing != 1 {
		t.Fatalf("want 1 missing device, got %+v", info.Devices)
	}
	storagetest.WantPattern(t, p2, "data", "0xab", "0", "16M")
	storagetest.WantPattern(t, p2, "data", "0xcd", "100M", "8M")
	// Writes while degraded, then rebuild onto a new device.
	storagetest.MustQemuIO(t, p2, "data", "write -P 0xef 200M 8M")
	var missingID string
	for _, d := range info.Devices {
		if d.Missing {
			missingID = strconv.Itoa(d.ID)
		}
	}
	newDev := loopdev.New(t, 2<<30)
	t.Cleanup(func() { exec.Command("btrfs", "device", "scan", "--forget", newDev).Run() })
	rep := p2.(storage.Replacer)
	err = rep.Replace(ctx, "42", newDev, storage.ExtendOpts{})
	storagetest.WantErr(t, "replace unknown member", err, storage.ErrNotFound)
	if err := rep.Replace(ctx, missingID, newDev, storage.ExtendOpts{}); err != nil {
		t.Fatal(err)
	}
	info, err = p2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Degraded || len(info.Devices) != 2 {
		t.Fatalf("after replace: %+v", info)
	}
	if got := p2.Config().Devices; len(got) != 2 || got[1] != newDev && got[0] != newDev {
		t.Fatalf("config devices after replace %v", got)
	}
	storagetest.WantPattern(t, p2, "data", "0xab", "0", "16M")
	storagetest.WantPattern(t, p2, "data", "0xef", "200M", "8M")
}

func TestExtend(t *testing.T) {
	ctx := storagetest.Ctx(t)
	cfg := newConfig(t, 1, "single")
	p := create(t, cfg)
	before, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateVolume(ctx, "v", 64<<20, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	storagetest.MustQemuIO(t, p, "v", "write -P 0xab 0 8M")
	ext := p.(storage.Extender)
	err = ext.Extend(ctx, cfg.Devices[0], storage.ExtendOpts{})
	storagetest.WantErr(t, "extend with own member", err, storage.ErrInUse)
	dev := loopdev.New(t, 2<<30)
	if err := ext.Extend(ctx, dev, storage.ExtendOpts{Balance: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("btrfs", "device", "scan", "--forget", dev).Run() })
	after, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Devices) != 2 || after.Capacity <= before.Capacity {
		t.Fatalf("after extend: %+v (before capacity %d)", after, before.Capacity)
	}
	storagetest.WantPattern(t, p, "v", "0xab", "0", "8M")
	if got := p.Config().Devices; len(got) != 2 || got[1] != dev {
		t.Fatalf("config devices %v", got)
	}
}

// TestRecoverLeftovers simulates interrupted clone/import/snapshot: temporary subvolumes and
// a snapshot directory of a deleted volume must be gone after Open.
func TestRecoverLeftovers(t *testing.T) {
	ctx := storagetest.Ctx(t)
	cfg := newConfig(t, 1, "single")
	p := create(t, cfg)
	if _, err := p.CreateVolume(ctx, "keep", 64<<20, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	vols := filepath.Join(cfg.Path, "volumes")
	left := []string{filepath.Join(vols, ".tmp-import-aa"), filepath.Join(vols, ".tmp-clone-bb")}
	for _, l := range left {
		if err := subvolCreate(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(left[0], "disk.raw"), []byte("partial"), 0o600)
	orphan := filepath.Join(cfg.Path, "snapshots", "gone", "s1")
	os.MkdirAll(filepath.Dir(orphan), 0o700)
	if err := subvolCreate(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	left = append(left, orphan)
	p2, err := Driver{}.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if _, err := os.Stat(l); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("leftover %s survived Open", l)
		}
	}
	out, _ := run(ctx, "btrfs", "subvolume", "list", cfg.Path)
	if strings.Contains(out, ".tmp-") {
		t.Fatalf("temporary subvolumes remain:\n%s", out)
	}
	storagetest.WantPattern(t, p2, "keep", "0", "0", "64k")
}

func TestDeletePool(t *testing.T) {
	ctx := storagetest.Ctx(t)
	cfg := newConfig(t, 2, "raid1")
	p := create(t, cfg)
	if err := p.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if isMountpoint(cfg.Path) {
		t.Fatal("deleted pool still mounted")
	}
	for _, d := range cfg.Devices {
		if sig := storage.Signature(ctx, d); sig != "" {
			t.Fatalf("%s still carries a %s signature", d, sig)
		}
	}
	// The devices are free for a new pool without force.
	create(t, cfg)
}
