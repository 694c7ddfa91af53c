package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/finvirt/finvirt/internal/agent/proto"
)

// procRoot is /proc; tests point it at a fixture tree.
var procRoot = "/proc"

// ReadMetrics samples /proc for the guest-wide figures and the given workload pids.
func ReadMetrics(workloads []proto.Workload) (*proto.Metrics, error) {
	m := &proto.Metrics{}
	stat, err := os.ReadFile(filepath.Join(procRoot, "stat"))
	if err != nil {
		return nil, err
	}
	if err := parseProcStat(stat, m); err != nil {
		return nil, err
	}
	mem, err := os.ReadFile(filepath.Join(procRoot, "meminfo"))
	if err != nil {
		return nil, err
	}
	parseMeminfo(mem, m)
	if b, err := os.ReadFile(filepath.Join(procRoot, "loadavg")); err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &m.Load1, &m.Load5, &m.Load15)
	}
	if b, err := os.ReadFile(filepath.Join(procRoot, "uptime")); err == nil {
		fmt.Sscanf(string(b), "%f", &m.UptimeSec)
	}
	for _, w := range workloads {
		if w.PID <= 0 {
			continue
		}
		ps, err := readProc(w.PID)
		if err != nil {
			continue // exited between status and sampling
		}
		ps.Name = w.Name
		m.Processes = append(m.Processes, ps)
	}
	return m, nil
}

// parseProcStat reads the aggregate "cpu" line and counts the per-CPU lines.
func parseProcStat(b []byte, m *proto.Metrics) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			if len(f) < 5 {
				return fmt.Errorf("/proc/stat: short cpu line %q", sc.Text())
			}
			var v [10]uint64
			for i := 1; i < len(f) && i <= 10; i++ {
				v[i-1], _ = strconv.ParseUint(f[i], 10, 64)
			}
			// user nice system idle iowait irq softirq steal guest guest_nice; guest time is
			// already included in user, so the total stops at steal.
			m.CPUUser = v[0] + v[1]
			m.CPUSystem = v[2] + v[5] + v[6]
			m.CPUIdle = v[3]
			m.CPUIOWait = v[4]
			m.CPUTotal = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7]
			found = true
		case strings.HasPrefix(f[0], "cpu"):
			m.CPUs++
		}
	}
	if !found {
		return fmt.Errorf("/proc/stat: no aggregate cpu line")
	}
	return nil
}

func parseMeminfo(b []byte, m *proto.Metrics) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 2 && f[2] == "kB" {
			v *= 1024
		}
		switch f[0] {
		case "MemTotal:":
			m.MemTotal = v
		case "MemFree:":
			m.MemFree = v
		case "MemAvailable:":
			m.MemAvailable = v
		}
	}
}

// readProc returns RSS and CPU ticks of pid from /proc/PID/status and /proc/PID/stat.
func readProc(pid int) (proto.ProcStat, error) {
	ps := proto.ProcStat{PID: pid}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	st, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ps, err
	}
	// The command name is in parentheses and may contain spaces: split after the last ')'.
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return ps, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(st[i+1:]))
	// Fields after ')' start at field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	stt, _ := strconv.ParseUint(f[12], 10, 64)
	ps.CPUTicks = ut + stt
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return ps, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(f[0], 10, 64)
				ps.RSSBytes = kb * 1024
			}
		}
	}
	return ps, nil
}
