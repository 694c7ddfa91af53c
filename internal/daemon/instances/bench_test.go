package instances_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/image"
)

// BenchmarkLaunchToAgentReady compares, boot by boot (alternating order, so both see the same
// host load), launch-to-agent-ready through the API (POST /1.0/instances until the operation
// succeeds: validation, record + quota transaction, instance initrd, driver Create/Start, agent
// handshake and ping) with the library-level boot of the same image and spec (driver Create +
// Start + agent.Dial + WaitReady in a driver of its own). Reports medians and their ratio.
func BenchmarkLaunchToAgentReady(b *testing.B) {
	if skipVM != "" {
		b.Skip(skipVM)
	}
	sd := benchStateDir(b)
	td := startB(b, sd)
	c := td.Local
	ctx := context.Background()
	op, err := c.BuildImage(ctx, api.ImagesPost{Name: "busy", Binaries: []string{"/bin/busybox"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		b.Fatal(err)
	}
	st, err := image.OpenStore(filepath.Join(sd, "images"))
	if err != nil {
		b.Fatal(err)
	}
	im, err := st.Get("busy")
	if err != nil {
		b.Fatal(err)
	}
	libDir := filepath.Join(sd, "lib")
	initrd := filepath.Join(sd, "lib-initrd")
	if err := image.WriteInstanceInitrd(im.InitrdPath(), agent.Config{Hostname: "lib"}, initrd); err != nil {
		b.Fatal(err)
	}
	h, _ := c.Host(ctx)
	drv, err := compute.Load("qemu", compute.WithStateDir(libDir), compute.WithAccel(h.Accel))
	if err != nil {
		b.Fatal(err)
	}
	defer drv.Close()
	apiBoot := func(i int) time.Duration {
		name := fmt.Sprintf("b%d", i)
		t0 := time.Now()
		op, err := c.CreateInstance(ctx, "", api.InstancesPost{Name: name, Image: "busy", VCPUs: 1, Memory: 256 << 20})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if err := c.DeleteInstance(ctx, "", name, true); err != nil {
			b.Fatal(err)
		}
		return d
	}
	libBoot := func(i int) time.Duration {
		name := fmt.Sprintf("l%d", i)
		spec := compute.Spec{Name: name, Profile: compute.ProfileAppliance, VCPUs: 1, MemoryMiB: 256, Kernel: im.VmlinuxPath(), Initrd: initrd, Cmdline: "mitigations=off nokaslr panic=-1"}
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		t0 := time.Now()
		info, err := drv.Create(bctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := drv.Start(bctx, name); err != nil {
			b.Fatal(err)
		}
		ac, err := agent.Dial(bctx, info.AgentSocket)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ac.WaitReady(bctx); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		ac.Close()
		drv.Kill(ctx, name)
		drv.Delete(ctx, name)
		return d
	}
	var apiT, libT []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			apiT = append(apiT, apiBoot(i))
			libT = append(libT, libBoot(i))
		} else {
			libT = append(libT, libBoot(i))
			apiT = append(apiT, apiBoot(i))
		}
	}
	b.StopTimer()
	ma, ml := median(apiT), median(libT)
	b.ReportMetric(ma.Seconds(), "api-s")
	b.ReportMetric(ml.Seconds(), "library-s")
	b.ReportMetric(ma.Seconds()/ml.Seconds(), "ratio")
	b.Logf("accel %s, %d boots each: API %v (all %v), library %v (all %v)", h.Accel, b.N, ma, apiT, ml, libT)
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
