package dir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func newPool(t testing.TB) storage.Pool {
	t.Helper()
	root := t.TempDir()
	p, err := storage.CreatePool(context.Background(), storage.PoolConfig{
		Name: "p" + filepath.Base(root), Driver: DriverName, Path: filepath.Join(root, "pool"),
		MasterKeyFile: filepath.Join(root, "keys", "master.key"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Pool { return newPool(t) })
}

func TestCreateRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	_, err := storage.CreatePool(context.Background(), storage.PoolConfig{Name: "p", Driver: DriverName, Path: dir})
	storagetest.WantErr(t, "non-empty dir", err, storage.ErrInUse)
	_, err = storage.CreatePool(context.Background(), storage.PoolConfig{Name: "p", Driver: DriverName, Path: "relative"})
	storagetest.WantErr(t, "relative path", err, storage.ErrInvalid)
	_, err = storage.CreatePool(context.Background(), storage.PoolConfig{Name: "p", Driver: "nosuch", Path: dir})
	storagetest.WantErr(t, "unknown driver", err, storage.ErrNotFound)
	_, err = storage.OpenPool(context.Background(), storage.PoolConfig{Name: "p", Driver: DriverName, Path: filepath.Join(dir, "none")})
	storagetest.WantErr(t, "unknown pool", err, storage.ErrNotFound)
	// A pool opened under another name is refused.
	root := t.TempDir()
	if _, err := storage.CreatePool(context.Background(), storage.PoolConfig{Name: "one", Driver: DriverName, Path: filepath.Join(root, "p")}); err != nil {
		t.Fatal(err)
	}
	_, err = storage.OpenPool(context.Background(), storage.PoolConfig{Name: "two", Driver: DriverName, Path: filepath.Join(root, "p")})
	storagetest.WantErr(t, "wrong pool name", err, storage.ErrInvalid)
	_, err = storage.CreatePool(context.Background(), storage.PoolConfig{Name: "one", Driver: DriverName, Path: filepath.Join(root, "p")})
	storagetest.WantErr(t, "pool exists", err, storage.ErrExists)
}

// TestRecoverLeftovers simulates a crash mid-import and mid-clone: a temporary file still being
// converted, and a finished layer whose volume metadata was never written.
func TestRecoverLeftovers(t *testing.T) {
	ctx := storagetest.Ctx(t)
	p := newPool(t).(*Pool)
	if _, err := p.CreateVolume(ctx, "keep", 64<<20, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	leftovers := []string{
		filepath.Join(p.layerDir(), ".tmp-import-abc"),
		filepath.Join(p.layerDir(), "deadbeef00000000.qcow2"), // orphan layer
		filepath.Join(p.volDir(), ".tmp-write-123"),
		filepath.Join(p.templateDir(), "0123456789abcdef0123456789abcdef.qcow2"), // template of no volume
		filepath.Join(p.templateDir(), ".tmp-template-1"),
	}
	for _, f := range leftovers {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	re, err := Driver{}.Open(ctx, p.Config())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range leftovers {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("leftover %s survived Open", f)
		}
	}
	storagetest.WantPattern(t, re, "keep", "0", "0", "64k")
}

func TestInUseHook(t *testing.T) {
	ctx := storagetest.Ctx(t)
	root := t.TempDir()
	attached := map[string]string{}
	p, err := Driver{}.Create(ctx, storage.PoolConfig{Name: "hook", Path: filepath.Join(root, "p"),
		InUse: func(v string) string { return attached[v] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateVolume(ctx, "v", 64<<20, storage.VolumeOpts{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateSnapshot(ctx, "v", "s"); err != nil {
		t.Fatal(err)
	}
	attached["v"] = "instance web1"
	for name, call := range map[string]func() error{
		"delete":  func() error { return p.DeleteVolume(ctx, "v") },
		"restore": func() error { return p.RestoreSnapshot(ctx, "v", "s") },
		"clone":   func() error { _, e := p.CloneVolume(ctx, "v", "c"); return e },
	} {
		err := call()
		storagetest.WantErr(t, name, err, storage.ErrInUse)
	}
	// Cloning a snapshot of an attached volume is fine: the snapshot is frozen.
	if _, err := p.CloneVolume(ctx, "v@s", "c"); err != nil {
		t.Fatal(err)
	}
}
