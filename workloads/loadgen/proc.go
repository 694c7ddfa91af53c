package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is a server the load generator may kill -9 and restart (crash
// mode). Either Path (+Args) is exec'd directly, or Shell is run with
// sh -c; the child gets its own process group so the whole group is killed.
type Proc struct {
	Path   string
	Args   []string
	Shell  string
	Env    []string
	Client *Client // used to wait for /healthz after each start
	Log    io.Writer

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	Kills int
}

// FreeAddr returns a free 127.0.0.1 TCP address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Start launches the server and waits until it is healthy.
func (p *Proc) Start(ctx context.Context) error {
	p.mu.Lock()
	var cmd *exec.Cmd
	if p.Shell != "" {
		cmd = exec.Command("sh", "-c", p.Shell)
	} else {
		cmd = exec.Command(p.Path, p.Args...)
	}
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if p.Log != nil {
		cmd.Stdout, cmd.Stderr = p.Log, p.Log
	}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		return fmt.Errorf("start %s%s: %w", p.Path, p.Shell, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	hctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-done:
		case <-hctx.Done():
		}
		cancel()
	}()
	err := p.Client.WaitHealthy(hctx, 60*time.Second)
	select {
	case <-done:
		return fmt.Errorf("server %s%s exited during startup (see its log)", p.Path, p.Shell)
	default:
	}
	cancel()
	return err
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	p.signal(syscall.SIGKILL)
	p.mu.Lock()
	p.Kills++
	p.mu.Unlock()
}

// Stop asks the server to exit (SIGTERM), then kills it after 10s.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.signal(syscall.SIGKILL)
	}
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	<-done
}

// Running reports whether the last started process is still alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// CrashLoop kills and restarts p every interval until ctx ends. It returns
// the first restart error, if any.
func (p *Proc) CrashLoop(ctx context.Context, every time.Duration, logf func(string, ...any)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		p.Kill()
		logf("crash mode: kill -9 #%d, restarting", p.Kills)
		if err := p.Start(context.Background()); err != nil {
			return fmt.Errorf("restart after kill #%d: %w", p.Kills, err)
		}
	}
}
