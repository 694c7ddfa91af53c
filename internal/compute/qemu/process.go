package qemu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a launched or re-attached QEMU. exited is closed when it is gone; exitStatus is
// known only when this process is its parent.
type proc struct {
	pid        int
	dir        string
	exited     chan struct{}
	exitStatus string
}

// startProcess launches QEMU detached from the caller: its own session and process group (a
// signal to the daemon's group or terminal never reaches it, and it survives the daemon),
// stdin /dev/null, stdout and stderr appended to the instance's qemu.log. We stay its parent
// (no -daemonize) so we learn its exit status while we run; after a daemon restart the
// pidfile and /proc identify it instead.
func startProcess(bin string, args []string, l Layout, extra []*os.File) (*proc, error) {
	logf, err := os.OpenFile(l.QEMULog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s start: %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = l.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{pid: cmd.Process.Pid, dir: l.Dir, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		switch {
		case err == nil:
			p.exitStatus = "exit status 0"
		default:
			p.exitStatus = err.Error() // "signal: killed", "exit status 1"
		}
		close(p.exited)
	}()
	// exec returns to us once the child's close-on-exec fds are closed, which is before the
	// kernel has set up its new argv: /proc/PID/cmdline reads empty for a moment. Wait for it,
	// so that isOurQEMU does not mistake the new QEMU for a vanished one.
	for i := 0; i < 500 && !isOurQEMU(p.pid, p.dir); i++ {
		select {
		case <-p.exited:
			return p, nil
		case <-time.After(2 * time.Millisecond):
		}
	}
	return p, nil
}

// attachProcess adopts a QEMU that is not our child; a poller closes exited when it is gone.
func attachProcess(pid int, dir string) *proc {
	p := &proc{pid: pid, dir: dir, exited: make(chan struct{})}
	go func() {
		for isOurQEMU(pid, dir) {
			time.Sleep(100 * time.Millisecond)
		}
		close(p.exited)
	}()
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return isOurQEMU(p.pid, p.dir)
	}
}

// wait waits up to d for the process to end.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// kill SIGKILLs the process group, but only after checking that the pid still is this
// instance's QEMU (a recycled pid must never be signalled).
func (p *proc) kill() error {
	if !p.alive() {
		return nil
	}
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill QEMU process group %d: %w", p.pid, err)
	}
	return nil
}

// isOurQEMU tells whether pid is alive (not a zombie) and runs with the instance directory on
// its command line.
func isOurQEMU(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(cmdline) == 0 {
		return false // gone, or a zombie (empty cmdline)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return false
		}
	}
	return bytes.Contains(cmdline, []byte(dir+"/"))
}

// readPIDFile returns the pid QEMU wrote, 0 when there is none.
func readPIDFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// logTail returns the last lines of QEMU's log, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var out []string
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if strings.HasPrefix(lines[i], "--- ") {
			break
		}
		out = append([]string{lines[i]}, out...)
	}
	return strings.Join(out, "; ")
}
