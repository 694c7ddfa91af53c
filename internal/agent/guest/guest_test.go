package guest

import (
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/agent/proto"
	"golang.org/x/sys/unix"
)

func TestReadMetricsFixture(t *testing.T) {
	old := procRoot
	procRoot = "testdata/proc"
	defer func() { procRoot = old }()
	m, err := ReadMetrics([]proto.Workload{{Name: "odd", PID: 42}, {Name: "gone", PID: 99999}, {Name: "stopped"}})
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Metrics{
		CPUUser: 105, CPUSystem: 55, CPUIdle: 1000, CPUIOWait: 20, CPUTotal: 1181, CPUs: 2,
		MemTotal: 250000 * 1024, MemFree: 200000 * 1024, MemAvailable: 220000 * 1024,
		Load1: 0.5, Load5: 0.25, Load15: 0.1, UptimeSec: 12.34,
	}
	got := *m
	got.Processes = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("metrics\n got %+v\nwant %+v", got, want)
	}
	if len(m.Processes) != 1 || m.Processes[0] != (proto.ProcStat{Name: "odd", PID: 42, RSSBytes: 1000 * 1024, CPUTicks: 21}) {
		t.Fatalf("processes %+v", m.Processes)
	}
}

func TestParseProcStatErrors(t *testing.T) {
	for _, in := range []string{"", "intr 1\n", "cpu 1 2\n"} {
		if err := parseProcStat([]byte(in), &proto.Metrics{}); err == nil {
			t.Fatalf("%q accepted", in)
		}
	}
}

func TestRing(t *testing.T) {
	r := NewRing(8)
	r.Write([]byte("abcdef"))
	r.Write([]byte("ghij"))
	if got := r.String(); got != "cdefghij" {
		t.Fatalf("ring %q", got)
	}
}

func waitState(t *testing.T, s *Supervisor, name string, ok func(proto.Workload) bool) proto.Workload {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, w := range s.Status() {
			if w.Name == name && ok(w) {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("workload %s never reached the state: %+v", name, s.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSupervisorPolicies(t *testing.T) {
	s := NewSupervisor(NewProcs(false), nil)
	s.Start([]agent.Workload{
		{Name: "never-fail", Command: "/bin/sh", Args: []string{"-c", "exit 4"}},
		{Name: "onfail-ok", Command: "/bin/sh", Args: []string{"-c", "exit 0"}, Restart: agent.RestartOnFailure},
		{Name: "always", Command: "/bin/sh", Args: []string{"-c", "exit 0"}, Restart: agent.RestartAlways, BackoffMS: 20},
		{Name: "missing", Command: "/nonexistent/bin"},
		{Name: "long", Command: "/bin/sh", Args: []string{"-c", "trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done"}, Restart: agent.RestartNever},
	})
	defer s.Stop(5 * time.Second)
	w := waitState(t, s, "never-fail", func(w proto.Workload) bool { return w.State == StateFailed })
	if w.LastExit != 4 || w.Restarts != 0 {
		t.Fatalf("never-fail %+v", w)
	}
	waitState(t, s, "onfail-ok", func(w proto.Workload) bool { return w.State == StateExited && w.Restarts == 0 })
	waitState(t, s, "always", func(w proto.Workload) bool { return w.Restarts >= 3 })
	waitState(t, s, "missing", func(w proto.Workload) bool { return w.State == StateFailed && w.LastExit == 127 })
	first := waitState(t, s, "long", func(w proto.Workload) bool { return w.State == StateRunning && w.PID > 0 })
	// Restart of a running workload with restart=never: it is stopped and started again.
	if err := s.Restart("long"); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "long", func(w proto.Workload) bool {
		return w.State == StateRunning && w.PID > 0 && w.PID != first.PID && w.Restarts == 1
	})
	// Restart of a finished workload starts it again.
	if err := s.Restart("never-fail"); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, "never-fail", func(w proto.Workload) bool { return w.Restarts == 1 && w.State == StateFailed })
	logs, _ := s.Logs("long")
	if strings.Count(logs, "started") != 2 {
		t.Fatalf("logs %q", logs)
	}
	if err := s.Restart("nope"); err == nil {
		t.Fatal("unknown workload restarted")
	}
}

func TestSupervisorStopEscalates(t *testing.T) {
	s := NewSupervisor(NewProcs(false), nil)
	s.Start([]agent.Workload{{Name: "stubborn", Command: "/bin/sh", Args: []string{"-c", "trap '' TERM; while :; do sleep 0.05; done"}, Restart: agent.RestartAlways}})
	w := waitState(t, s, "stubborn", func(w proto.Workload) bool { return w.State == StateRunning })
	time.Sleep(100 * time.Millisecond) // let the shell install its trap
	start := time.Now()
	s.Stop(300 * time.Millisecond)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("stop returned after %v, before the grace period", d)
	}
	if unix.Kill(w.PID, 0) == nil {
		t.Fatalf("pid %d survived Stop", w.PID)
	}
	waitState(t, s, "stubborn", func(w proto.Workload) bool { return w.State == StateStopped })
}

// TestReaperAll runs the PID 1 reaper in a child test process that is a subreaper, so that
// orphans are re-parented to it as they are to PID 1.
func TestReaperAll(t *testing.T) {
	if os.Getenv("FINVIRT_REAPER_CHILD") == "1" {
		reaperChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaperAll$", "-test.v")
	cmd.Env = append(os.Environ(), "FINVIRT_REAPER_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "REAPER-OK") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func reaperChild(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skip("no subreaper support")
	}
	p := NewProcs(true)
	attr := &os.ProcAttr{Files: []*os.File{nil, nil, nil}}
	for i := 0; i < 20; i++ {
		_, done, err := p.Start([]string{"/bin/sh", "-c", "sleep 0.05 & exit 3"}, attr)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-done:
			if e.Code != 3 {
				t.Fatalf("exit %+v", e)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("exit not reported")
		}
	}
	// The orphaned sleeps must be reaped too: no zombies among our children.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if z := zombies(); z == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d zombies left", z)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Log("REAPER-OK")
}

func zombies() int {
	self := os.Getpid()
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(self) {
			n++
		}
	}
	return n
}
