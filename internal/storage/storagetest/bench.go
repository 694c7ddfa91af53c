package storagetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
)

// BenchClone measures CloneVolume of a thin volume of the given provisioned size, from a
// snapshot (the source is unchanged between iterations). The target: equal at 1 GiB and
// 100 GiB, and at most 50 ms.
func BenchClone(b *testing.B, p storage.Pool, size uint64, opts storage.VolumeOpts) {
	ctx := context.Background()
	if _, err := p.CreateVolume(ctx, "src", size, opts); err != nil {
		b.Fatal(err)
	}
	MustQemuIO(b, p, "src", "write -P 0xab 0 4M")
	if _, err := p.CreateSnapshot(ctx, "src", "s"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("c%d", i)
		if _, err := p.CloneVolume(ctx, "src@s", name); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.DeleteVolume(ctx, name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// DataImage writes a raw image of size bytes filled with a non-zero pattern (so neither
// qemu-img nor cp can skip holes).
func DataImage(b testing.TB, dir string, size int64) string {
	path := filepath.Join(dir, "data.raw")
	for _, args := range [][]string{
		{"qemu-img", "create", "-q", "-f", "raw", path, strconv.FormatInt(size, 10)},
		{"qemu-io", "-f", "raw", "-c", "write -P 0x5c 0 " + strconv.FormatInt(size, 10), path},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v %s", args, err, out)
		}
	}
	return path
}

// BenchImport measures ImportVolume of src; compare with BenchCopy of the same file in the
// same run (target: import >= 80% of cp throughput).
func BenchImport(b *testing.B, p storage.Pool, src string) {
	st, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("imp%d", i)
		if _, err := p.ImportVolume(ctx, src, name, storage.ImportOpts{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.DeleteVolume(ctx, name)
		b.StartTimer()
	}
}

// BenchCopy measures cp of src into dir, the import baseline.
func BenchCopy(b *testing.B, src, dir string) {
	st, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	dst := filepath.Join(dir, "copy.raw")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v %s", err, out)
		}
		// Flush like qemu-img does (it fsyncs the target), so both pay for durability.
		if out, err := exec.Command("sync", dst).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v %s", err, out)
		}
		b.StopTimer()
		os.Remove(dst)
		b.StartTimer()
	}
}

// benchCount and benchBS: 1 GiB per qemu-img bench run in 64 KiB requests.
const (
	benchBS    = 64 << 10
	benchCount = 16384
)

// BenchSeqVolume runs qemu-img bench (O_DIRECT, 64 KiB, queue depth 8) through the volume's
// blockdev description; write selects writes. Compare with BenchSeqFile on a raw file.
func BenchSeqVolume(b *testing.B, p storage.Pool, vol string, write bool) {
	a, err := p.Access(context.Background(), vol)
	if err != nil {
		b.Fatal(err)
	}
	args := []string{}
	if a.Key != nil {
		args = append(args, "--object", a.SecretObjectArg())
	}
	benchQemuImg(b, append(args, "json:"+a.BlockdevJSON("")), write)
}

// BenchSeqFile is BenchSeqVolume on a plain raw file: the baseline.
func BenchSeqFile(b *testing.B, path string, write bool) {
	benchQemuImg(b, []string{"--image-opts", "driver=raw,file.filename=" + path + ",cache.direct=on"}, write)
}

func benchQemuImg(b *testing.B, target []string, write bool) {
	b.SetBytes(benchBS * benchCount)
	args := []string{"bench", "-q", "-i", "threads", "-d", "8", "-c", strconv.Itoa(benchCount), "-s", strconv.Itoa(benchBS)}
	if write {
		args = append(args, "-w", "--pattern=90")
	}
	args = append(args, target...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img %v: %v %s", args, err, out)
		}
	}
}

// BenchFio runs fio random 4 KiB I/O (O_DIRECT, psync, 64 MiB per run) on a raw file: a
// btrfs volume's image or the baseline file.
func BenchFio(b *testing.B, path string, write bool) {
	if _, err := exec.LookPath("fio"); err != nil {
		b.Skip("fio not installed")
	}
	rw := "randread"
	if write {
		rw = "randwrite"
	}
	const ioSize = 64 << 20
	b.SetBytes(ioSize)
	args := []string{"--name=r", "--filename=" + path, "--rw=" + rw, "--bs=4k", "--direct=1", "--ioengine=psync",
		"--size=1G", "--io_size=" + strconv.Itoa(ioSize), "--randrepeat=1", "--norandommap", "--output-format=terse"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command("fio", args...).CombinedOutput(); err != nil {
			b.Fatalf("fio: %v %s", err, out)
		}
	}
}
