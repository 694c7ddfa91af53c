package instances_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
)

// consoleReader collects what the guest prints on an attached console.
type consoleReader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func readConsole(r io.Reader) *consoleReader {
	cr := &consoleReader{done: make(chan struct{})}
	go func() {
		defer close(cr.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			cr.mu.Lock()
			cr.buf.Write(b[:n])
			cr.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return cr
}

func (cr *consoleReader) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		cr.mu.Lock()
		ok := strings.Contains(cr.buf.String(), s)
		cr.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	t.Fatalf("console never showed %q; it showed:\n%s", s, cr.buf.String())
}

// TestConsoleAttachRemote drives the interactive console of a real appliance through the
// client over TLS with tokens (TestConsoleAttach speaks the upgrade by hand on the socket): a guest program on ttyS0 prints, reads a line sent by the client and
// answers it; a second session gets 409 naming the holder, a viewer 403; after detach the VM
// runs on, the console can be taken again, the audit log says who held it for how long, and a
// stop while attached ends the stream from the guest side, and a stopped instance gets 409.
func TestConsoleAttachRemote(t *testing.T) {
	needVM(t)
	td := start(t, stateDir(t))
	td.StandardRoles(t) // the bank project
	alice := td.TokenFor(t, "alice", api.RoleOperator, "bank")
	bob := td.TokenFor(t, "bob", api.RoleOperator, "bank")
	viewer := td.TokenFor(t, "vera", api.RoleViewer, "bank")
	c := td.Local
	buildImage(t, c, "busy")
	launch(t, c, "bank", api.InstancesPost{Name: "con", Image: "busy"})
	ctx := ctxT(t, 3*time.Minute)

	con, err := alice.AttachConsole(ctx, "bank", "con")
	if err != nil {
		t.Fatal(err)
	}
	out := readConsole(con)

	// The guest side: a program holding ttyS0 open that announces itself, reads a line and
	// answers it (the agent's exec buffers output, so it runs in the background).
	execDone := make(chan api.InstanceExecResult, 1)
	go func() {
		res, _ := c.Exec(ctx, "bank", "con", api.InstanceExecPost{Command: []string{"sh", "-c",
			"exec 3<>/dev/ttyS0; stty -F /dev/ttyS0 sane; echo guest-ready >&3; read l <&3; echo got-$l >&3"}})
		execDone <- res
	}()
	out.waitFor(t, "guest-ready", 60*time.Second)
	if _, err := io.WriteString(con, "hello-XYZ\r"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "got-hello-XYZ", 60*time.Second)
	if res := <-execDone; res.ExitCode != 0 {
		t.Fatalf("guest reader: %+v", res)
	}

	_, err = bob.AttachConsole(ctx, "bank", "con")
	if client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("second attach: %v, want 409 naming alice", err)
	}
	err = alice.Do(ctx, "GET", "/1.0/instances/con/console/attach?project=bank", nil, nil)
	if client.StatusOf(err) != 400 || !strings.Contains(err.Error(), "Upgrade: finvirt-console") {
		t.Fatalf("attach without the Upgrade headers: %v, want 400 saying which headers", err)
	}
	_, err = viewer.AttachConsole(ctx, "bank", "con")
	if client.StatusOf(err) != 403 {
		t.Fatalf("viewer attach: %v, want 403", err)
	}
	if _, err := viewer.ConsoleLog(ctx, "bank", "con", 5); err != nil {
		t.Fatalf("viewer reads the log: %v", err)
	}

	// Detach: the daemon ends the session (the console is free again) and the guest runs on.
	con.Close()
	<-out.done
	var con2 io.ReadWriteCloser
	for deadline := time.Now().Add(30 * time.Second); ; {
		con2, err = bob.AttachConsole(ctx, "bank", "con")
		if err == nil || client.StatusOf(err) != 409 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("attach after detach: %v", err)
	}
	con2.Close()
	if in, err := c.GetInstance(ctx, "bank", "con"); err != nil || in.Status != api.InstanceRunning {
		t.Fatalf("after detach: %+v %v", in, err)
	}
	if res := execIn(t, c, "bank", "con", "true"); res.ExitCode != 0 {
		t.Fatalf("exec after detach: %+v", res)
	}
	assertConsoleAudit(t, c, "alice")

	// Stopping the instance while attached ends the session from the guest side.
	con3, err := alice.AttachConsole(ctx, "bank", "con")
	if err != nil {
		t.Fatal(err)
	}
	defer con3.Close()
	out3 := readConsole(con3)
	state(t, c, "bank", "con", "stop")
	select {
	case <-out3.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the console stream stayed open after the instance stopped")
	}
	_, err = alice.AttachConsole(ctx, "bank", "con")
	if client.StatusOf(err) != 409 || !strings.Contains(err.Error(), "finvirt start con") {
		t.Fatalf("attach to a stopped instance: %v, want 409 saying how to start it", err)
	}
}

func assertConsoleAudit(t *testing.T, c *client.Client, who string) {
	t.Helper()
	recs, err := c.AuditList(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var attach, held bool
	for _, r := range recs {
		switch {
		case r.Action == "instance.console.attach" && strings.Contains(r.Detail, "attached by "+who) && r.Outcome == api.OutcomeSuccess:
			attach = true
		case r.Action == "instance.console" && strings.Contains(r.Detail, "held by "+who+" for ") && r.Outcome == api.OutcomeSuccess:
			held = true
		}
	}
	if !attach || !held {
		t.Fatalf("audit: attach %v, held-for %v in %+v", attach, held, recs)
	}
}
