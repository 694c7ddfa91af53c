// Package guest is the guest side of the finvirt agent: PID 1 duties in an appliance (mounts,
// modules, network, volumes, power button), workload supervision, and the server that answers
// the host over the virtio-serial port.
package guest

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit is how a process ended.
type Exit struct {
	Code   int    // exit status, or 128+signal when killed
	Signal string // signal name when killed
	Usage  unix.Rusage
}

func exitOf(ws unix.WaitStatus, ru unix.Rusage) Exit {
	switch {
	case ws.Exited():
		return Exit{Code: ws.ExitStatus(), Usage: ru}
	case ws.Signaled():
		return Exit{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal()), Usage: ru}
	}
	return Exit{Code: -1, Usage: ru}
}

// Procs starts processes and reports their exits. As PID 1 it must reap every child, including
// orphans re-parented to it, so it waits for any pid and dispatches exits to registered
// processes; os/exec's Cmd.Wait would race with that reaper, so all processes of the agent are
// started through Procs. Outside PID 1 (tests, full guests) it waits for each pid separately so
// that it never steals the exit status of a child started by someone else in the process.
type Procs struct {
	reapAll bool
	mu      sync.Mutex
	waiters map[int]chan Exit
}

// NewProcs returns a process table. reapAll makes it the reaper of all children (PID 1).
func NewProcs(reapAll bool) *Procs {
	p := &Procs{reapAll: reapAll, waiters: map[int]chan Exit{}}
	if reapAll {
		go p.reaper()
	}
	return p
}

// Start starts argv[0] with attr and returns its pid and a channel that yields its exit.
func (p *Procs) Start(argv []string, attr *os.ProcAttr) (int, <-chan Exit, error) {
	if len(argv) == 0 {
		return 0, nil, fmt.Errorf("empty argv")
	}
	ch := make(chan Exit, 1)
	// Hold the lock across start and registration so the reaper cannot see the exit first.
	p.mu.Lock()
	proc, err := os.StartProcess(argv[0], argv, attr)
	if err != nil {
		p.mu.Unlock()
		return 0, nil, err
	}
	pid := proc.Pid
	proc.Release() // we wait with wait4 ourselves
	if p.reapAll {
		p.waiters[pid] = ch
		p.mu.Unlock()
		return pid, ch, nil
	}
	p.mu.Unlock()
	go func() {
		var ws unix.WaitStatus
		var ru unix.Rusage
		for {
			_, err := unix.Wait4(pid, &ws, 0, &ru)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				ch <- Exit{Code: -1}
				return
			}
			ch <- exitOf(ws, ru)
			return
		}
	}()
	return pid, ch, nil
}

func (p *Procs) reaper() {
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	for {
		p.reapOnce()
		<-sig
	}
}

func (p *Procs) reapOnce() {
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		p.mu.Lock()
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, &ru)
		if err == unix.EINTR {
			p.mu.Unlock()
			continue
		}
		if err != nil || pid <= 0 {
			p.mu.Unlock()
			return
		}
		if ch, ok := p.waiters[pid]; ok {
			delete(p.waiters, pid)
			ch <- exitOf(ws, ru)
		}
		// Otherwise an orphan re-parented to PID 1: reaping it is all that is needed. A child
		// of Start is always registered before the reaper can see it (Start holds mu).
		p.mu.Unlock()
	}
}
