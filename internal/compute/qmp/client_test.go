package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU serves the handshake and then answers each command with the given handler, which
// may write events before its reply. It exists to drive the interleavings and failures that a
// real QEMU produces only by chance; TestRealQEMU covers the real thing.
func fakeQEMU(t *testing.T, handle func(w *bufio.Writer, cmd string, id string)) (*Client, net.Conn) {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	go func() {
		w := bufio.NewWriter(srv)
		r := bufio.NewReader(srv)
		w.WriteString(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}` + "\n")
		w.Flush()
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req struct {
				Execute string `json:"execute"`
				ID      string `json:"id"`
			}
			json.Unmarshal(line, &req)
			if req.Execute == "qmp_capabilities" {
				w.WriteString(`{"return": {}, "id": "` + req.ID + `"}` + "\n")
			} else {
				handle(w, req.Execute, req.ID)
			}
			w.Flush()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClient(ctx, cli)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

func TestEventsBetweenReplies(t *testing.T) {
	c, _ := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {
		switch cmd {
		case "stop":
			w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 0}, "event": "STOP"}` + "\n")
			w.WriteString(`{"timestamp": {"seconds": 1, "microseconds": 1}, "event": "BALLOON_CHANGE", "data": {"actual": 1}}` + "\n")
			w.WriteString(`{"return": {}, "id": "` + id + `"}` + "\n")
		case "query-status":
			w.WriteString(`{"return": {"status": "paused", "running": false}, "id": "` + id + `"}` + "\n")
		default:
			w.WriteString(`{"error": {"class": "CommandNotFound", "desc": "The command ` + cmd + ` has not been found"}, "id": "` + id + `"}` + "\n")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopSub := c.Subscribe("STOP")
	all := c.Subscribe()
	if _, err := c.Execute(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := c.ExecuteInto(ctx, "query-status", nil, &st); err != nil || st.Status != "paused" {
		t.Fatalf("query-status = %+v, %v", st, err)
	}
	if ev, err := stopSub.Wait(ctx, nil); err != nil || ev.Name != "STOP" {
		t.Fatalf("STOP subscriber got %+v, %v", ev, err)
	}
	var names []string
	for i := 0; i < 2; i++ {
		ev, err := all.Wait(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ev.Name)
	}
	if strings.Join(names, ",") != "STOP,BALLOON_CHANGE" {
		t.Fatalf("all-events subscriber got %v", names)
	}
	_, err := c.Execute(ctx, "nope", nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("unknown command error = %v", err)
	}
}

func TestConnectionLossReported(t *testing.T) {
	c, srv := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {
		// Never answer: the peer dies instead.
	})
	sub := c.Subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := c.Execute(ctx, "query-status", nil); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("pending Execute error = %v, want ErrClosed", err)
		}
	case <-ctx.Done():
		t.Fatal("pending Execute not released on connection loss")
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed")
	}
	if _, ok := <-sub.Events(); ok {
		t.Fatal("subscription channel not closed on connection loss")
	}
	if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Execute after loss = %v", err)
	}
}

func TestExecuteContextCancel(t *testing.T) {
	c, _ := fakeQEMU(t, func(w *bufio.Writer, cmd, id string) {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Execute(ctx, "query-status", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want deadline exceeded", err)
	}
}

// TestRealQEMU talks to a real QEMU with no guest (-M none): handshake, a query, stop/cont with
// their events, an error reply, and the loss of the connection when QEMU quits.
func TestRealQEMU(t *testing.T) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not installed (scripts/setup.sh installs qemu-system-x86)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "qmp.sock")
	cmd := exec.Command(bin, "-M", "none", "-nodefaults", "-no-user-config", "-display", "none",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var c *Client
	for {
		if _, err := os.Stat(sock); err == nil {
			if c, err = Dial(ctx, sock); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("QMP socket never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()
	if c.Version.Major < 7 {
		t.Fatalf("version %v", c.Version)
	}
	sub := c.Subscribe("STOP", "RESUME")
	for _, want := range []struct{ cmd, event, status string }{{"stop", "STOP", "paused"}, {"cont", "RESUME", "running"}} {
		if _, err := c.Execute(ctx, want.cmd, nil); err != nil {
			t.Fatalf("%s: %v", want.cmd, err)
		}
		if ev, err := sub.Wait(ctx, nil); err != nil || ev.Name != want.event {
			t.Fatalf("after %s got event %+v, %v", want.cmd, ev, err)
		}
		var st struct {
			Status string `json:"status"`
		}
		if err := c.ExecuteInto(ctx, "query-status", nil, &st); err != nil || st.Status != want.status {
			t.Fatalf("query-status after %s = %+v, %v", want.cmd, st, err)
		}
	}
	var qe *Error
	if _, err := c.Execute(ctx, "device_del", map[string]string{"id": "nosuch"}); !errors.As(err, &qe) {
		t.Fatalf("device_del of a missing device = %v, want a QMP error", err)
	}
	if _, err := c.Execute(ctx, "quit", nil); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("quit: %v", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("connection loss not reported after quit")
	}
}
