package dir

import (
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func layers(t *testing.T, p *Pool, vol string) int {
	t.Helper()
	m, err := p.load(vol)
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}

// TestCompaction: deleting a snapshot, or the only clone of a volume, merges the hidden layer
// left behind, so the chain and the space shrink back; the data stays exact.
func TestCompaction(t *testing.T) {
	for _, enc := range []bool{false, true} {
		name := "plain"
		if enc {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) {
			ctx := storagetest.Ctx(t)
			p := newPool(t).(*Pool)
			if _, err := p.CreateVolume(ctx, "v", 64<<20, storage.VolumeOpts{Encrypted: enc}); err != nil {
				t.Fatal(err)
			}
			storagetest.MustQemuIO(t, p, "v", "write -P 0xab 0 2M")
			if _, err := p.CreateSnapshot(ctx, "v", "s1"); err != nil {
				t.Fatal(err)
			}
			storagetest.MustQemuIO(t, p, "v", "write -P 0xcd 1M 2M")
			if n := layers(t, p, "v"); n != 2 {
				t.Fatalf("%d layers after a snapshot, want 2", n)
			}
			if err := p.DeleteSnapshot(ctx, "v", "s1"); err != nil {
				t.Fatal(err)
			}
			if n := layers(t, p, "v"); n != 1 {
				t.Fatalf("%d layers after deleting the only snapshot, want 1", n)
			}
			storagetest.WantPattern(t, p, "v", "0xab", "0", "1M")
			storagetest.WantPattern(t, p, "v", "0xcd", "1M", "2M")

			if _, err := p.CloneVolume(ctx, "v", "c"); err != nil {
				t.Fatal(err)
			}
			storagetest.MustQemuIO(t, p, "v", "write -P 0xee 0 512k")
			if err := p.DeleteVolume(ctx, "c"); err != nil {
				t.Fatal(err)
			}
			if n := layers(t, p, "v"); n != 1 {
				t.Fatalf("%d layers after deleting the only clone, want 1", n)
			}
			storagetest.WantPattern(t, p, "v", "0xee", "0", "512k")
			storagetest.WantPattern(t, p, "v", "0xab", "512k", "512k")
			storagetest.WantPattern(t, p, "v", "0xcd", "1M", "2M")
		})
	}
}
