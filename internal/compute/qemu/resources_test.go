package qemu

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/cgroup"
)

// TestCgroupPlacement pins an appliance to CPU 0 with a CPU weight: QEMU and every one of its
// threads (vCPU threads included) must be in the instance's cgroups, which are removed on stop.
func TestCgroupPlacement(t *testing.T) {
	if err := cgroup.Available(); err != nil {
		t.Skip(err)
	}
	parent := fmt.Sprintf("finvirt-test-%d", rand.Int63())
	t.Cleanup(func() {
		for _, c := range []string{"cpu", "cpuset"} {
			os.Remove(filepath.Join(cgroup.Root, c, parent, "pinned"))
			os.Remove(filepath.Join(cgroup.Root, c, parent))
		}
	})
	dir := stateDir(t)
	d := newDriver(t, dir, compute.WithCgroupParent(parent))
	spec := applianceSpec(t, "pinned", "")
	spec.CPUSet, spec.CPUWeight = "0", 256
	info := bootAppliance(t, d, spec)

	pid := strconv.Itoa(info.PID)
	cg, _ := os.ReadFile("/proc/" + pid + "/cgroup")
	for _, want := range []string{":cpuset:/" + parent + "/pinned\n", ":cpu:/" + parent + "/pinned\n"} {
		if !strings.Contains(string(cg), want) {
			t.Errorf("QEMU not in %q:\n%s", want, cg)
		}
	}
	tasks, _ := os.ReadDir("/proc/" + pid + "/task")
	vcpu := false
	for _, task := range tasks {
		comm, _ := os.ReadFile("/proc/" + pid + "/task/" + task.Name() + "/comm")
		status, _ := os.ReadFile("/proc/" + pid + "/task/" + task.Name() + "/status")
		if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
			t.Errorf("thread %s (%s) not pinned to CPU 0", task.Name(), strings.TrimSpace(string(comm)))
		}
		if strings.HasPrefix(string(comm), "CPU 0/") {
			vcpu = true
		}
	}
	if !vcpu {
		t.Errorf("no vCPU thread found among %d threads", len(tasks))
	}
	if b, _ := os.ReadFile(filepath.Join(cgroup.Root, "cpu", parent, "pinned", "cpu.shares")); strings.TrimSpace(string(b)) != "256" {
		t.Errorf("cpu.shares = %q", b)
	}
	ctx := ctxT(t, 2*time.Minute)
	if err := d.Stop(ctx, "pinned", compute.StopOptions{Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cgroup.Root, "cpu", parent, "pinned")); !os.IsNotExist(err) {
		t.Errorf("cgroup left after stop: %v", err)
	}
}

// TestFourAtOnce boots four appliances concurrently from one driver and stops them.
func TestFourAtOnce(t *testing.T) {
	dir := stateDir(t)
	d := newDriver(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			ctx := ctxT(t, 3*time.Minute)
			spec := applianceSpec(t, name, "")
			if _, err := d.Create(ctx, spec); err != nil {
				errs <- err
				return
			}
			if err := d.Start(ctx, name); err != nil {
				errs <- err
				return
			}
			info, _ := d.Info(ctx, name)
			if _, err := waitMarker(ctx, info); err != nil {
				errs <- err
				return
			}
			if err := d.Stop(ctx, name, compute.StopOptions{Timeout: 60 * time.Second}); err != nil {
				errs <- err
			}
		}(fmt.Sprintf("four-%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	noQEMUUnder(t, dir)
}
