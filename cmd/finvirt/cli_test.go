package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/audit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "finvirt-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "finvirt")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build finvirt: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type daemonProc struct {
	t        *testing.T
	stateDir string
	socket   string
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

func newDaemonProc(t *testing.T) *daemonProc {
	sockDir, err := os.MkdirTemp("", "fvc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	return &daemonProc{t: t, stateDir: filepath.Join(t.TempDir(), "state"), socket: filepath.Join(sockDir, "s.sock")}
}

// start runs "finvirt daemon" as a real child process in its own process group and waits
// until its socket answers.
func (p *daemonProc) start() {
	t := p.t
	t.Helper()
	p.log = &bytes.Buffer{}
	p.cmd = exec.Command(binary, "daemon", "--state-dir", p.stateDir, "--socket", p.socket)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := p.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	})
	c := client.NewUnix(p.socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.Info(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer within 30s; log:\n%s", p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *daemonProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			p.t.Fatalf("daemon did not shut down cleanly on SIGTERM: %v\n%s", err, p.log)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatal("daemon ignored SIGTERM for 30s")
	}
}

func (p *daemonProc) kill9() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

// cli runs the finvirt CLI against the daemon and returns stdout, stderr and exit code.
func (p *daemonProc) cli(args ...string) (string, string, int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "FINVIRT_SOCKET="+p.socket)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (p *daemonProc) mustCLI(args ...string) string {
	p.t.Helper()
	out, errs, code := p.cli(args...)
	if code != 0 {
		p.t.Fatalf("finvirt %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestCLIProjectFlow(t *testing.T) {
	p := newDaemonProc(t)
	p.start()
	out := p.mustCLI("project", "create", "bank", "--limit-instances", "10", "--limit-memory", "64GiB", "--description", "Retail bank")
	if !strings.Contains(out, "0 of 10") || !strings.Contains(out, "64GiB") {
		t.Fatalf("create output:\n%s", out)
	}
	var ps []api.Project
	if err := json.Unmarshal([]byte(p.mustCLI("project", "list", "-o", "json")), &ps); err != nil || len(ps) != 2 || ps[0].Limits.Instances != 10 {
		t.Fatalf("project list -o json: %+v %v", ps, err)
	}
	if out := p.mustCLI("project", "list", "-o", "yaml"); !strings.Contains(out, "name: bank") {
		t.Fatalf("yaml output:\n%s", out)
	}
	if out := p.mustCLI("project", "list"); !strings.Contains(out, "NAME") || !strings.Contains(out, "0/10") {
		t.Fatalf("table output:\n%s", out)
	}
	// Errors: one clear line on stderr and a non-zero exit.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"project", "create", "Bad_Name"}, "invalid"},
		{[]string{"project", "create", "bank"}, "already exists"},
		{[]string{"project", "create", "x", "--limit-memory", "lots"}, "--limit-memory"},
		{[]string{"project", "show", "nosuch"}, "project nosuch not found"},
		{[]string{"project", "list", "-o", "xml"}, "unknown output format"},
		{[]string{"token", "create", "alice", "--role", "root"}, "unknown role"},
	} {
		_, errs, code := p.cli(tc.args...)
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(errs, tc.msg) {
			t.Errorf("finvirt %v: exit %d stderr %q; want non-zero and one line with %q", tc.args, code, errs, tc.msg)
		}
	}
	if out := p.mustCLI("audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %s", out)
	}
	if out := p.mustCLI("audit", "export"); strings.Count(out, "\n") < 2 || !strings.Contains(out, `"action":"project.create"`) {
		t.Fatalf("audit export:\n%s", out)
	}
	// Unreachable daemon: a clear message.
	cmd := exec.Command(binary, "project", "list")
	cmd.Env = append(os.Environ(), "FINVIRT_SOCKET=/nonexistent.sock")
	b, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "is 'finvirt daemon' running") {
		t.Fatalf("no daemon: %v %s", err, b)
	}
	p.stop()
}

// TestAuditVerifyCatchesTampering stops the daemon, edits its database the way an insider
// with disk access would, restarts it and expects 'finvirt audit verify' to fail naming the
// first bad record.
func TestAuditVerifyCatchesTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(b *bolt.Bucket)
		wantSeq uint64
	}{
		{"flipped byte", func(b *bolt.Bucket) {
			k := []byte(audit.Key(3))
			v := append([]byte{}, b.Get(k)...)
			i := bytes.Index(v, []byte(`"identity":"local:`)) + len(`"identity":"`)
			v[i] ^= 0x01
			b.Put(k, v)
		}, 3},
		{"deleted record", func(b *bolt.Bucket) { b.Delete([]byte(audit.Key(2))) }, 2},
		{"swapped pair", func(b *bolt.Bucket) {
			a, c := append([]byte{}, b.Get([]byte(audit.Key(2)))...), append([]byte{}, b.Get([]byte(audit.Key(3)))...)
			b.Put([]byte(audit.Key(2)), c)
			b.Put([]byte(audit.Key(3)), a)
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newDaemonProc(t)
			p.start()
			for _, n := range []string{"bank", "securities", "insurance", "treasury"} {
				p.mustCLI("project", "create", n)
			}
			p.mustCLI("audit", "verify")
			p.stop()
			db, err := bolt.Open(filepath.Join(p.stateDir, "state.db"), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { tt.tamper(tx.Bucket([]byte("kv"))); return nil })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			p.start()
			_, errs, code := p.cli("audit", "verify")
			want := fmt.Sprintf("first bad record %d", tt.wantSeq)
			if code == 0 || !strings.Contains(errs, want) {
				t.Fatalf("audit verify after %s: exit %d, %q; want non-zero naming %q", tt.name, code, errs, want)
			}
		})
	}
}

// TestKill9DuringWrites kills the daemon with SIGKILL in the middle of a burst of creates
// from 16 clients, restarts it and checks that every acknowledged create is there, the
// audit chain is intact and records exactly the committed creates.
func TestKill9DuringWrites(t *testing.T) {
	p := newDaemonProc(t)
	p.start()
	c := client.NewUnix(p.socket)
	var mu sync.Mutex
	acked := map[string]bool{}
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("p-%d", n.Add(1))
				if _, err := c.CreateProject(context.Background(), api.ProjectsPost{Name: name}); err != nil {
					return // the daemon died
				}
				mu.Lock()
				acked[name] = true
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill9()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no create was acknowledged before the kill")
	}
	p.start()
	ps, err := c.ListProjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, pr := range ps {
		have[pr.Name] = true
	}
	for name := range acked {
		if !have[name] {
			t.Fatalf("acknowledged project %s lost after kill -9", name)
		}
	}
	res, err := c.AuditVerify(context.Background())
	if err != nil || !res.OK {
		t.Fatalf("audit chain after kill -9: %+v %v", res, err)
	}
	recs, _ := c.AuditList(context.Background(), "", 0)
	creates := 0
	for _, r := range recs {
		if r.Action == "project.create" && r.Outcome == api.OutcomeSuccess {
			creates++
		}
	}
	if creates != len(ps)-1 {
		t.Fatalf("audit shows %d successful creates, store has %d projects (+default)", creates, len(ps)-1)
	}
	t.Logf("%d acknowledged before kill -9, %d present after restart", len(acked), len(ps)-1)
}
