package guest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/agent/proto"
	"golang.org/x/sys/unix"
)

// Ring keeps the last N bytes written to it (workload output for the host to fetch).
type Ring struct {
	mu   sync.Mutex
	buf  []byte
	size int
}

// NewRing returns a ring of size bytes.
func NewRing(size int) *Ring { return &Ring{size: size} }

func (r *Ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.size; over > 0 {
		r.buf = append(r.buf[:0:0], r.buf[over:]...)
	}
	return len(p), nil
}

// String returns the retained bytes.
func (r *Ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}

// Workload states.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateBackoff  = "backoff"
	StateExited   = "exited"  // ended with status 0 and will not restart
	StateFailed   = "failed"  // ended non-zero (or could not start) and will not restart
	StateStopped  = "stopped" // stopped by shutdown
)

const (
	defaultBackoff = time.Second
	maxBackoff     = 30 * time.Second
	// A run longer than this resets the backoff: the workload was healthy for a while.
	healthyRun = 10 * time.Second
	ringSize   = 64 << 10
)

type workload struct {
	spec     agent.Workload
	mu       sync.Mutex
	state    string
	pid      int
	restarts int
	lastExit int
	started  time.Time
	ring     *Ring
	kick     chan struct{} // restart now (skip backoff / start a finished workload)
}

// Supervisor runs the configured workloads with their restart policies.
type Supervisor struct {
	procs    *Procs
	console  io.Writer
	mu       sync.Mutex
	wl       map[string]*workload
	order    []string
	stopping bool
	wg       sync.WaitGroup
}

// NewSupervisor returns a supervisor whose workloads' output also goes to console.
func NewSupervisor(procs *Procs, console io.Writer) *Supervisor {
	if console == nil {
		console = io.Discard
	}
	return &Supervisor{procs: procs, console: console, wl: map[string]*workload{}}
}

// Start launches every workload in specs.
func (s *Supervisor) Start(specs []agent.Workload) {
	for _, sp := range specs {
		w := &workload{spec: sp, state: StateStarting, ring: NewRing(ringSize), kick: make(chan struct{}, 1)}
		if w.spec.Restart == "" {
			w.spec.Restart = agent.RestartNever
		}
		s.mu.Lock()
		s.wl[sp.Name] = w
		s.order = append(s.order, sp.Name)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.run(w)
	}
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *Supervisor) setState(w *workload, st string) {
	w.mu.Lock()
	w.state = st
	w.mu.Unlock()
}

// run is the supervision loop of one workload.
func (s *Supervisor) run(w *workload) {
	defer s.wg.Done()
	backoff := time.Duration(w.spec.BackoffMS) * time.Millisecond
	if backoff <= 0 {
		backoff = defaultBackoff
	}
	delay := backoff
	for {
		if s.isStopping() {
			s.setState(w, StateStopped)
			return
		}
		code, ran := s.runOnce(w)
		restart := false
		switch w.spec.Restart {
		case agent.RestartAlways:
			restart = true
		case agent.RestartOnFailure:
			restart = code != 0
		}
		if s.isStopping() {
			s.setState(w, StateStopped)
			return
		}
		if ran >= healthyRun {
			delay = backoff
		}
		final := StateExited
		if code != 0 {
			final = StateFailed
		}
		if !restart {
			s.setState(w, final)
			fmt.Fprintf(s.console, "finvirt-agent: workload %s ended with status %d (%s)\n", w.spec.Name, code, final)
			<-w.kick // wait for an explicit restart (or Stop)
			if !s.isStopping() {
				w.mu.Lock()
				w.restarts++
				w.mu.Unlock()
			}
			continue
		}
		s.setState(w, StateBackoff)
		fmt.Fprintf(s.console, "finvirt-agent: workload %s ended with status %d, restarting in %v\n", w.spec.Name, code, delay)
		select {
		case <-time.After(delay):
		case <-w.kick:
		}
		delay = min(delay*2, maxBackoff)
		w.mu.Lock()
		w.restarts++
		w.mu.Unlock()
	}
}

// runOnce starts the workload and waits for it; it returns the exit code and run time.
func (s *Supervisor) runOnce(w *workload) (int, time.Duration) {
	r, wr, err := os.Pipe()
	if err != nil {
		return 127, 0
	}
	env := w.spec.Env
	if len(env) == 0 || !hasKey(env, "PATH") {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	argv := append([]string{w.spec.Command}, w.spec.Args...)
	devnull, _ := os.Open(os.DevNull)
	pid, done, err := s.procs.Start(argv, &os.ProcAttr{
		Dir: w.spec.Dir, Env: env, Files: []*os.File{devnull, wr, wr},
		Sys: &unix.SysProcAttr{Setpgid: true},
	})
	wr.Close()
	if devnull != nil {
		devnull.Close()
	}
	if err != nil {
		r.Close()
		fmt.Fprintf(s.console, "finvirt-agent: workload %s: %v\n", w.spec.Name, err)
		w.mu.Lock()
		w.lastExit = 127
		w.mu.Unlock()
		return 127, 0
	}
	start := time.Now()
	w.mu.Lock()
	w.state, w.pid, w.started = StateRunning, pid, start
	w.mu.Unlock()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text() + "\n"
			w.ring.Write([]byte(line))
			fmt.Fprintf(s.console, "[%s] %s", w.spec.Name, line)
		}
	}()
	e := <-done
	// Background children may keep the pipe open; do not wait for them forever.
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
	}
	r.Close()
	w.mu.Lock()
	w.pid, w.lastExit = 0, e.Code
	w.mu.Unlock()
	return e.Code, time.Since(start)
}

func hasKey(env []string, k string) bool {
	for _, e := range env {
		if len(e) > len(k) && e[:len(k)+1] == k+"=" {
			return true
		}
	}
	return false
}

// Status returns the workloads in configuration order.
func (s *Supervisor) Status() []proto.Workload {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]proto.Workload, 0, len(s.order))
	for _, n := range s.order {
		w := s.wl[n]
		w.mu.Lock()
		out = append(out, proto.Workload{Name: n, State: w.state, PID: w.pid, Restarts: w.restarts, LastExit: w.lastExit, Restart: w.spec.Restart})
		w.mu.Unlock()
	}
	return out
}

func (s *Supervisor) get(name string) (*workload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.wl[name]
	if !ok {
		return nil, fmt.Errorf("no workload named %q (configured: %v)", name, s.order)
	}
	return w, nil
}

// Logs returns the retained output of a workload.
func (s *Supervisor) Logs(name string) (string, error) {
	w, err := s.get(name)
	if err != nil {
		return "", err
	}
	return w.ring.String(), nil
}

// Restart stops a running workload (SIGTERM to its process group) and starts it again at once;
// a finished one is started again.
func (s *Supervisor) Restart(name string) error {
	w, err := s.get(name)
	if err != nil {
		return err
	}
	if s.isStopping() {
		return fmt.Errorf("workload %s: the guest is shutting down", name)
	}
	w.mu.Lock()
	pid := w.pid
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if pid > 0 {
		unix.Kill(-pid, unix.SIGTERM)
	}
	return nil
}

// Stop terminates all workloads: SIGTERM to each process group, SIGKILL after grace.
func (s *Supervisor) Stop(grace time.Duration) {
	s.mu.Lock()
	s.stopping = true
	ws := make([]*workload, 0, len(s.wl))
	for _, w := range s.wl {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	signalAll := func(sig unix.Signal) {
		for _, w := range ws {
			w.mu.Lock()
			pid := w.pid
			w.mu.Unlock()
			if pid > 0 {
				unix.Kill(-pid, sig)
			}
			select { // release a loop parked in backoff or after a final exit
			case w.kick <- struct{}{}:
			default:
			}
		}
	}
	signalAll(unix.SIGTERM)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		signalAll(unix.SIGKILL)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}
}
