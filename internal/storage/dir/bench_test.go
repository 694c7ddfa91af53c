package dir

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func BenchmarkClone(b *testing.B) {
	for _, size := range []struct {
		name string
		n    uint64
	}{{"1GiB", 1 << 30}, {"100GiB", 100 << 30}} {
		b.Run(size.name, func(b *testing.B) { storagetest.BenchClone(b, newPool(b), size.n, storage.VolumeOpts{}) })
	}
	b.Run("100GiB-encrypted", func(b *testing.B) {
		storagetest.BenchClone(b, newPool(b), 100<<30, storage.VolumeOpts{Encrypted: true})
	})
}

func BenchmarkImport(b *testing.B) {
	dir := b.TempDir()
	src := storagetest.DataImage(b, dir, 512<<20)
	b.Run("cp", func(b *testing.B) { storagetest.BenchCopy(b, src, b.TempDir()) })
	b.Run("import-qcow2", func(b *testing.B) { storagetest.BenchImport(b, newPool(b), src) })
}

// BenchmarkSeqIO compares qemu-img bench through a qcow2 volume (preallocated by a first
// full write, so the steady state is measured) with a raw file on the same filesystem.
func BenchmarkSeqIO(b *testing.B) {
	p := newPool(b)
	ctx := context.Background()
	if _, err := p.CreateVolume(ctx, "bench", 1<<30, storage.VolumeOpts{}); err != nil {
		b.Fatal(err)
	}
	storagetest.MustQemuIO(b, p, "bench", "write -P 0x1 0 1G")
	raw := filepath.Join(b.TempDir(), "base.raw")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=full", raw, "1G").CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	for _, w := range []bool{false, true} {
		mode := "read"
		if w {
			mode = "write"
		}
		b.Run(mode+"/raw-file", func(b *testing.B) { storagetest.BenchSeqFile(b, raw, w) })
		b.Run(mode+"/qcow2-volume", func(b *testing.B) { storagetest.BenchSeqVolume(b, p, "bench", w) })
	}
}
