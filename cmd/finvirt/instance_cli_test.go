package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/internal/image"
)

// TestCLIInstances runs image build, launch, list, exec (output and exit code), stop and
// delete through the CLI against a real daemon process booting a real VM.
func TestCLIInstances(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	k, err := image.FindKernel(image.KernelDir())
	if err != nil {
		t.Skip("no guest kernel: ", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed")
	}
	agentBin := filepath.Join(t.TempDir(), "finvirt-agent")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", agentBin, "github.com/finvirt/finvirt/cmd/finvirt-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	t.Setenv("FINVIRT_AGENT", agentBin)
	p := newDaemonProc(t)
	t.Cleanup(func() { killQEMUsUnder(p.stateDir) }) // after the daemon is gone: VMs outlive it by design
	p.start()
	t.Setenv("FINVIRT_SOCKET", p.socket)
	run := cliRunner(t, p)
	mustRun := func(args ...string) string {
		t.Helper()
		out, errs, code := run(args...)
		if code != 0 {
			t.Fatalf("finvirt %s: exit %d\n%s%s\ndaemon log:\n%s", strings.Join(args, " "), code, out, errs, p.log)
		}
		return out
	}
	t.Cleanup(func() { run("delete", "--force", "web") })

	if out := mustRun("image", "build", "bb", "--binary", "/bin/busybox"); !strings.Contains(out, "/bin/busybox") {
		t.Fatalf("image build output:\n%s", out)
	}
	if out := mustRun("image", "list"); !strings.Contains(out, "bb") || !strings.Contains(out, "appliance") {
		t.Fatalf("image list:\n%s", out)
	}
	if out := mustRun("launch", "bb", "web", "--memory", "192MiB", "--cmd", "sleep 3600", "--restart", "on-failure"); !strings.Contains(out, "running") {
		t.Fatalf("launch:\n%s", out)
	}
	if out := mustRun("list"); !strings.Contains(out, "web") || !strings.Contains(out, "running") || !strings.Contains(out, "on-failure") {
		t.Fatalf("list:\n%s", out)
	}
	if out := mustRun("exec", "web", "--", "cat", "/proc/version"); !strings.Contains(out, k.Version) {
		t.Fatalf("exec cat /proc/version = %q, want guest kernel %s", out, k.Version)
	}
	if out, _, code := run("exec", "web", "--", "sh", "-c", "echo partial; exit 3"); code != 3 || out != "partial\n" {
		t.Fatalf("exec exit 3: code %d, stdout %q", code, out)
	}
	if _, _, code := p.cli("launch", "--help"); code == 0 {
		// Piped stdin reaches the guest command (binary only: in-process runs share os.Stdin).
		cmd := exec.Command(binary, "exec", "web", "--", "tr", "a-z", "A-Z")
		cmd.Env = append(os.Environ(), "FINVIRT_SOCKET="+p.socket)
		cmd.Stdin = strings.NewReader("ledger\n")
		if out, err := cmd.Output(); err != nil || string(out) != "LEDGER\n" {
			t.Fatalf("exec with stdin: %q %v", out, err)
		}
	}
	if _, errs, code := run("launch", "nosuch", "web2"); code == 0 || !strings.Contains(errs, "image nosuch not found") {
		t.Fatalf("launch of an unknown image: exit %d, %s", code, errs)
	}
	if _, errs, code := run("launch", "bb", "web2", "--memory", "lots"); code == 0 || !strings.Contains(errs, "--memory") {
		t.Fatalf("bad --memory: exit %d, %s", code, errs)
	}
	mustRun("config", "set", "web", "restart=always")
	if out := mustRun("console", "web", "--show-log"); !strings.Contains(out, "finvirt-agent: serving") {
		t.Fatalf("console log:\n%s", out)
	}
	if _, _, code := p.cli("launch", "--help"); code == 0 {
		cliConsolePipe(t, p.socket, run)
	}
	// Volumes: an appliance takes disks only while stopped.
	mustRun("storage", "pool", "create", "fast", "--driver", "dir")
	mustRun("storage", "volume", "create", "data", "--pool", "fast", "--size", "64MiB")
	if _, errs, code := run("storage", "volume", "attach", "data", "web"); code == 0 || !strings.Contains(errs, "stop the instance first") {
		t.Fatalf("attach to a running appliance: exit %d, %s", code, errs)
	}
	if out := mustRun("stop", "web"); !strings.Contains(out, "stopped") {
		t.Fatalf("stop:\n%s", out)
	}
	if out := mustRun("storage", "volume", "attach", "data", "web", "--mountpoint", "/mnt/data"); !strings.Contains(out, "attached to instance web") {
		t.Fatalf("attach:\n%s", out)
	}
	if _, errs, code := run("storage", "volume", "delete", "data"); code == 0 || !strings.Contains(errs, "attached to instance web") {
		t.Fatalf("delete of an attached volume: exit %d, %s", code, errs)
	}
	if out := mustRun("storage", "volume", "detach", "data", "web"); !strings.Contains(out, "detached") {
		t.Fatalf("detach:\n%s", out)
	}
	mustRun("storage", "volume", "delete", "data")
	if _, errs, code := run("exec", "web", "--", "true"); code == 0 || !strings.Contains(errs, "not running") {
		t.Fatalf("exec into stopped: exit %d, %s", code, errs)
	}
	mustRun("delete", "web")
	if out := mustRun("list"); strings.Contains(out, "web") {
		t.Fatalf("list after delete:\n%s", out)
	}
	mustRun("image", "delete", "bb")
}

// cliRunner runs the built binary when it has the instance commands; until main.go adds
// newInstanceCommands to the root, it runs the same cobra commands in-process (same flags,
// same client, same daemon process), so the CLI code is tested either way.
func cliRunner(t *testing.T, p *daemonProc) func(args ...string) (string, string, int) {
	if _, _, code := p.cli("launch", "--help"); code == 0 {
		return p.cli
	}
	t.Log("finvirt binary lacks the instance commands (main.go does not call newInstanceCommands yet): running them in-process")
	return func(args ...string) (string, string, int) {
		g := &globals{output: "table"}
		root := &cobra.Command{Use: "finvirt", SilenceUsage: true, SilenceErrors: true}
		root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "")
		root.AddCommand(newInstanceCommands(g)...)
		var out bytes.Buffer
		oldOut, oldErr := stdout, os.Stderr
		r, w, _ := os.Pipe()
		stdout, os.Stderr = &out, w
		root.SetArgs(args)
		err := root.Execute()
		stdout, os.Stderr = oldOut, oldErr
		w.Close()
		var errb bytes.Buffer
		errb.ReadFrom(r)
		code := 0
		var ex *exitError
		switch {
		case errors.As(err, &ex):
			code = ex.code
		case err != nil:
			errb.WriteString("Error: " + err.Error() + "\n")
			code = 1
		}
		return out.String(), errb.String(), code
	}
}

func killQEMUsUnder(dir string) {
	for range 50 {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !strings.Contains(string(b), dir+"/") {
				continue
			}
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			found = true
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cliConsolePipe attaches 'finvirt console web' with piped stdin and stdout (no terminal): what
// the guest writes on ttyS0 reaches stdout, and the end of stdin ends the session, exit 0.
func cliConsolePipe(t *testing.T, socket string, run func(...string) (string, string, int)) {
	t.Helper()
	cmd := exec.Command(binary, "console", "web")
	cmd.Env = append(os.Environ(), "FINVIRT_SOCKET="+socket)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		var all []byte
		b := make([]byte, 4096)
		for {
			n, err := outPipe.Read(b)
			all = append(all, b[:n]...)
			if strings.Contains(string(all), "cli-console-ok") {
				got <- string(all)
				io.Copy(io.Discard, outPipe)
				return
			}
			if err != nil {
				got <- string(all)
				return
			}
		}
	}()
	// The session may not be joined yet when the guest first writes: write until it shows.
	var out string
	for deadline := time.Now().Add(60 * time.Second); out == "" && time.Now().Before(deadline); {
		run("exec", "web", "--", "sh", "-c", "echo cli-console-ok > /dev/ttyS0")
		select {
		case out = <-got:
		case <-time.After(time.Second):
		}
	}
	in.Close()
	werr := cmd.Wait()
	if !strings.Contains(out, "cli-console-ok") || werr != nil {
		t.Fatalf("console in pipe mode: stdout %q, exit %v, stderr %s", out, werr, errBuf.String())
	}
}
