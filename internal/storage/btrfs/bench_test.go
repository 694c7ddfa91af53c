package btrfs

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func benchPool(b *testing.B) (storage.Pool, storage.PoolConfig) {
	cfg := newConfigSize(b, 1, "single", 6<<30)
	return create(b, cfg), cfg
}

func BenchmarkClone(b *testing.B) {
	for _, size := range []struct {
		name string
		n    uint64
	}{{"1GiB", 1 << 30}, {"100GiB", 100 << 30}} {
		b.Run(size.name, func(b *testing.B) {
			p, _ := benchPool(b)
			storagetest.BenchClone(b, p, size.n, storage.VolumeOpts{})
		})
	}
}

func BenchmarkImport(b *testing.B) {
	p, cfg := benchPool(b)
	src := storagetest.DataImage(b, b.TempDir(), 512<<20)
	b.Run("cp", func(b *testing.B) { storagetest.BenchCopy(b, src, cfg.Path) })
	b.Run("import-raw", func(b *testing.B) { storagetest.BenchImport(b, p, src) })
}

// BenchmarkIO compares I/O through a raw volume (the image file in its subvolume, opened with
// the volume's blockdev description for qemu-img bench) with a preallocated raw file at the
// root of the same filesystem.
func BenchmarkIO(b *testing.B) {
	p, cfg := benchPool(b)
	ctx := context.Background()
	if _, err := p.CreateVolume(ctx, "bench", 1<<30, storage.VolumeOpts{}); err != nil {
		b.Fatal(err)
	}
	storagetest.MustQemuIO(b, p, "bench", "write -P 0x1 0 1G")
	base := filepath.Join(cfg.Path, "baseline.raw")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=full", base, "1G").CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	vol := filepath.Join(cfg.Path, "volumes", "bench", "disk.raw")
	for _, w := range []bool{false, true} {
		mode := "read"
		if w {
			mode = "write"
		}
		b.Run("seq-"+mode+"/raw-file", func(b *testing.B) { storagetest.BenchSeqFile(b, base, w) })
		b.Run("seq-"+mode+"/volume", func(b *testing.B) { storagetest.BenchSeqVolume(b, p, "bench", w) })
		b.Run("rand4k-"+mode+"/raw-file", func(b *testing.B) { storagetest.BenchFio(b, base, w) })
		b.Run("rand4k-"+mode+"/volume", func(b *testing.B) { storagetest.BenchFio(b, vol, w) })
	}
}
