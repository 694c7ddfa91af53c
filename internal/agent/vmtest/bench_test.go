package vmtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/image"
)

// Boot benchmarks. Run them together so that the ratio compares runs under the same load:
//
//	go test -run XXX -bench 'Boot|IdleRSS|BuildAppliance' -benchtime 5x ./internal/agent/vmtest/
//
// BenchmarkBootToAgentReady: QEMU start -> agent answers ping (through Dial's hello).
// BenchmarkBareBoot: the same kernel, initramfs contents and QEMU options with a trivial /init
// that prints a marker and powers off; time to the marker on the serial console.
// FINVIRT_BENCH_DEBUG=1 prints each bare boot's console (its marker carries the guest uptime).

var (
	bareOnce  sync.Once
	bareImage *image.Image
	bareErr   error
)

func setupBare(b *testing.B) *image.Image {
	setup(b)
	bareOnce.Do(func() {
		bin := filepath.Join(workDir, "bareinit")
		if bareErr = buildStatic("./internal/agent/vmtest/testdata/bareinit", bin); bareErr != nil {
			return
		}
		bareImage, bareErr = store.BuildAppliance(context.Background(), "bare",
			image.ApplianceSpec{Init: bin, Binaries: []string{"/bin/busybox"}}, nil)
	})
	if bareErr != nil {
		b.Fatal(bareErr)
	}
	return bareImage
}

func BenchmarkBootToAgentReady(b *testing.B) {
	setup(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		d, _ := bootReady(b, 32, 0)
		total += d
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/boot")
}

// bootReady boots the test appliance, waits for ping, optionally idles, and returns the time
// to ready and QEMU's RSS (KiB) at the end.
func bootReady(b *testing.B, tbMB int, idle time.Duration) (time.Duration, int) {
	dir, err := os.MkdirTemp("", "finvirt-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	initrd := filepath.Join(dir, "initrd")
	if err := image.WriteInstanceInitrd(appliance.InitrdPath(), agent.Config{Hostname: "bench"}, initrd); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	vm, err := Start(VMOptions{Kernel: appliance.VmlinuxPath(), Initrd: initrd, Agent: true, TBSizeMB: tbMB}, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := agent.Dial(ctx, vm.AgentSock)
	if err == nil {
		_, err = c.Ping(ctx)
	}
	d := time.Since(vm.Started)
	b.StopTimer()
	if err != nil {
		b.Fatalf("agent not ready: %v\n%s", err, vm.Console())
	}
	defer c.Close()
	time.Sleep(idle)
	rss, _ := vm.RSSKiB()
	return d, rss
}

func BenchmarkBareBoot(b *testing.B) {
	im := setupBare(b)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += bareBoot(b, im)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/boot")
}

// bareBoot boots the bare image and returns the time from QEMU start to the marker.
func bareBoot(b *testing.B, im *image.Image) time.Duration {
	dir, err := os.MkdirTemp("", "finvirt-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b.StartTimer()
	vm, err := Start(VMOptions{Kernel: im.VmlinuxPath(), Initrd: im.InitrdPath(), Agent: true}, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Kill()
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(vm.Console(), "FINVIRT-BARE-READY") {
		if time.Now().After(deadline) {
			b.Fatalf("no marker:\n%s", vm.Console())
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(vm.Started)
	b.StopTimer()
	if os.Getenv("FINVIRT_BENCH_DEBUG") != "" {
		fmt.Println(strings.TrimSpace(vm.Console()))
	}
	return d
}

// BenchmarkBootRatio alternates agent and bare boots so both see the same machine load, and
// reports the ratio of the means (agent-ready / bare-marker).
func BenchmarkBootRatio(b *testing.B) {
	setup(b)
	im := setupBare(b)
	b.StopTimer()
	var agentT, bareT time.Duration
	for i := 0; i < b.N; i++ {
		d, _ := bootReady(b, 32, 0)
		agentT += d
		bareT += bareBoot(b, im)
	}
	n := float64(b.N)
	b.ReportMetric(agentT.Seconds()/n, "agent-s")
	b.ReportMetric(bareT.Seconds()/n, "bare-s")
	b.ReportMetric(agentT.Seconds()/bareT.Seconds(), "ratio")
}

// BenchmarkIdleRSS reports QEMU's VmRSS for an idle appliance (ready + 3 s idle) per TCG
// translation-cache size.
func BenchmarkIdleRSS(b *testing.B) {
	setup(b)
	for _, tb := range []int{16, 32, 64} {
		b.Run(fmt.Sprintf("tb-size=%d", tb), func(b *testing.B) {
			var rss int
			for i := 0; i < b.N; i++ {
				_, r := bootReady(b, tb, 3*time.Second)
				rss += r
			}
			b.ReportMetric(float64(rss)/float64(b.N)/1024, "MiB-rss")
		})
	}
}

// BenchmarkBuildAppliance measures an image build with a warm kernel cache (the vmlinux
// extraction is cached by vmlinuz hash) and, separately, the cold extraction.
func BenchmarkBuildAppliance(b *testing.B) {
	setup(b)
	agentBin := filepath.Join(workDir, "finvirt-agent")
	b.Run("warm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			name := fmt.Sprintf("bench-%d", i)
			if _, err := store.BuildAppliance(context.Background(), name, image.ApplianceSpec{Agent: agentBin, Binaries: []string{"/bin/busybox"}}, nil); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			store.Delete(name)
			b.StartTimer()
		}
	})
	b.Run("cold-extract", func(b *testing.B) {
		k, err := image.FindKernel(image.KernelDir())
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			dir := b.TempDir()
			if _, err := image.CachedVmlinux(dir, k.Vmlinuz); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// bootForBench boots one appliance for the channel benchmarks.
func bootForBench(b *testing.B) (*VM, *agent.Client) {
	setup(b)
	dir, err := os.MkdirTemp("", "finvirt-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	vm, err := Start(VMOptions{Kernel: appliance.VmlinuxPath(), Initrd: appliance.InitrdPath(), Agent: true}, dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(vm.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c, err := agent.Dial(ctx, vm.AgentSock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return vm, c
}

// BenchmarkChannel measures the agent channel inside a TCG guest: a ping round trip, an exec
// of /bin/true (fork+exec in the guest), and push/pull throughput of 8 MiB to /tmp.
func BenchmarkChannel(b *testing.B) {
	_, c := bootForBench(b)
	ctx := context.Background()
	b.Run("ping", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := c.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("exec-true", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if code, err := c.Exec(ctx, agent.ExecRequest{Argv: []string{"/bin/true"}}); err != nil || code != 0 {
				b.Fatal(code, err)
			}
		}
	})
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	b.Run("push-8MiB", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if _, err := c.Push(ctx, bytes.NewReader(data), "/tmp/bench.bin", 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pull-8MiB", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if _, err := c.Pull(ctx, "/tmp/bench.bin", io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
