// Package testbin builds the real workload binaries and runs them as child
// processes for end-to-end tests (claims against remit, loadgen against
// remit/trade/claims). Children get their own process group and are
// killed in t.Cleanup.
package testbin

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot finds the module root (the directory holding go.mod).
func RepoRoot() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", file)
		}
		dir = parent
	}
}

// Build compiles ./cmd/<name> into dir and returns the binary path, or an
// error with the compiler output (callers skip tests whose dependency does
// not build yet, saying why).
func Build(dir, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
		return "", fmt.Errorf("cmd/%s does not exist yet", name)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, b)
	}
	return out, nil
}

// FreeAddr returns a currently free 127.0.0.1 address.
func FreeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Server is a running child process.
type Server struct {
	Addr string
	Cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr }

// Done is closed when the process exits.
func (s *Server) Done() <-chan struct{} { return s.done }

// Log returns what the process wrote so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (s *Server) Kill() {
	_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// Start runs bin with args (which must make it listen on addr) and waits
// up to a minute for a stderr line containing ready. env is appended to
// the environment.
func Start(t testing.TB, bin string, addr, ready string, env []string, args ...string) *Server {
	t.Helper()
	s := &Server{Addr: addr, done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	s.Cmd = cmd
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(readyc) })
			}
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			s.Kill()
		}
	})
	select {
	case <-readyc:
	case <-s.done:
		t.Fatalf("%s exited before %q:\n%s", bin, ready, s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready (%q) within 60s:\n%s", bin, ready, s.Log())
	}
	return s
}
