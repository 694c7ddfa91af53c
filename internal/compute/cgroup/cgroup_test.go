package cgroup

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestGroupPlacesProcess(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	parent := fmt.Sprintf("finvirt-test-%d", rand.Int63())
	t.Cleanup(func() {
		for _, c := range []string{"cpu", "cpuset"} {
			os.Remove(filepath.Join(Root, c, parent))
		}
	})
	g, err := New(parent, "vm", Config{CPUSet: "0", Shares: 512})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	for _, want := range []string{":cpuset:/" + parent + "/vm", "cpu:/" + parent + "/vm"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/proc/PID/cgroup lacks %q:\n%s", want, b)
		}
	}
	if got := read(filepath.Join(g.Path("cpu"), "cpu.shares")); got != "512" {
		t.Errorf("cpu.shares = %q", got)
	}
	if got := read(filepath.Join(g.Path("cpuset"), "cpuset.cpus")); got != "0" {
		t.Errorf("cpuset.cpus = %q", got)
	}
	// The kernel applies the cpuset to the task itself.
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
		t.Errorf("task affinity not restricted:\n%s", status)
	}
	if err := g.Remove(); err == nil {
		t.Error("Remove of a non-empty group succeeded")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.Path("cpu")); !os.IsNotExist(err) {
		t.Errorf("group dir left: %v", err)
	}
}

func TestBadConfigRollsBack(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	parent := fmt.Sprintf("finvirt-test-%d", rand.Int63())
	t.Cleanup(func() {
		for _, c := range []string{"cpu", "cpuset"} {
			os.Remove(filepath.Join(Root, c, parent))
		}
	})
	if _, err := New(parent, "vm", Config{CPUSet: "999"}); err == nil {
		t.Fatal("cpuset 999 accepted")
	}
	if _, err := os.Stat(filepath.Join(Root, "cpuset", parent, "vm")); !os.IsNotExist(err) {
		t.Fatalf("group left after a failed New: %v", err)
	}
	if _, err := New(parent, "a/b", Config{}); err == nil {
		t.Fatal("name with a slash accepted")
	}
}
