package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute/internal/testvm"
)

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkLaunchToMarker times Create+Start until the test init prints its marker, through
// the driver and, interleaved in the same run, for a bare qemu-system-x86_64 started by hand
// with the same options (minus -S, which the driver needs for cgroup placement). Reports the
// medians and their ratio (goal <= 1.05).
func BenchmarkLaunchToMarker(b *testing.B) {
	dir := stateDir(b)
	d := newDriver(b, dir)
	bin, _ := exec.LookPath("qemu-system-x86_64")
	var drv, bare []float64
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		runDriver := func() {
			name := fmt.Sprintf("bench-%d", i)
			spec := applianceSpec(b, name, "")
			t0 := time.Now()
			if _, err := d.Create(ctx, spec); err != nil {
				b.Fatal(err)
			}
			if err := d.Start(ctx, name); err != nil {
				b.Fatal(err)
			}
			info, _ := d.Info(ctx, name)
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			if _, err := waitMarker(wctx, info); err != nil {
				b.Fatal(err)
			}
			cancel()
			drv = append(drv, time.Since(t0).Seconds())
			d.Kill(ctx, name)
			d.Delete(ctx, name)
		}
		// Bare QEMU, same argv without -S.
		runBare := func() {
			spec := applianceSpec(b, fmt.Sprintf("bench-%d", i), "")
			bdir := fmt.Sprintf("%s/bare-%d", dir, i)
			os.Mkdir(bdir, 0o700)
			l := NewLayout(bdir, "")
			args, _ := BuildArgs(spec, l, "tcg", nil)
			args = slices.DeleteFunc(args, func(s string) bool { return s == "-S" })
			t0 := time.Now()
			cmd := exec.Command(bin, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			_, err := testvm.WaitLog(wctx, l.SerialLog, testvm.Marker, 0)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			bare = append(bare, time.Since(t0).Seconds())
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			os.RemoveAll(bdir)
		}
		// Alternate the order so neither side always runs on a host still busy with the other.
		if i%2 == 0 {
			runDriver()
			runBare()
		} else {
			runBare()
			runDriver()
		}
	}
	b.ReportMetric(median(drv), "driver-s")
	b.ReportMetric(median(bare), "bare-s")
	b.ReportMetric(median(drv)/median(bare), "ratio")
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

// BenchmarkIdleRSS reports the RSS of an idle 128 MiB appliance 3 s after its init ran, per
// TCG translation cache size.
func BenchmarkIdleRSS(b *testing.B) {
	for _, tb := range []int{16, 32, 64} {
		b.Run(fmt.Sprintf("tb%d", tb), func(b *testing.B) {
			dir := stateDir(b)
			d := newDriver(b, dir)
			var rss []float64
			for i := 0; i < b.N; i++ {
				spec := applianceSpec(b, fmt.Sprintf("rss-%d", i), "")
				spec.TBSizeMiB = tb
				info := bootAppliance(b, d, spec)
				time.Sleep(3 * time.Second)
				rss = append(rss, rssMiB(info.PID))
				d.Kill(context.Background(), spec.Name)
				d.Delete(context.Background(), spec.Name)
			}
			b.ReportMetric(median(rss), "RSS-MiB")
		})
	}
}

// BenchmarkLaunchRate launches 16 appliances with 8 in flight, each to its marker and killed,
// and reports appliances per second. Soak: set FINVIRT_SOAK=1.
func BenchmarkLaunchRate(b *testing.B) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		b.Skip("set FINVIRT_SOAK=1 to run the launch-rate soak")
	}
	dir := stateDir(b)
	d := newDriver(b, dir)
	const total, inflight = 16, 8
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		sem := make(chan struct{}, inflight)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		t0 := time.Now()
		for j := 0; j < total; j++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(name string) {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				err := func() error {
					if _, err := d.Create(ctx, applianceSpec(b, name, "")); err != nil {
						return err
					}
					if err := d.Start(ctx, name); err != nil {
						return err
					}
					info, _ := d.Info(ctx, name)
					_, err := waitMarker(ctx, info)
					d.Kill(ctx, name)
					d.Delete(ctx, name)
					return err
				}()
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}(fmt.Sprintf("rate-%d-%d", i, j))
		}
		wg.Wait()
		if failed != nil {
			b.Fatal(failed)
		}
		elapsed += time.Since(t0)
	}
	b.ReportMetric(float64(total*b.N)/elapsed.Seconds(), "launches/s")
}
