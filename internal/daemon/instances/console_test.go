package instances_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
)

// attachRaw speaks the console upgrade over the daemon's unix socket and returns the
// connection and the reply status.
func attachRaw(t *testing.T, sock, name string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /1.0/instances/%s/console/attach HTTP/1.1\r\nHost: finvirt\r\nConnection: Upgrade\r\nUpgrade: finvirt-console\r\n\r\n", name)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp.StatusCode
}

// TestConsoleAttach attaches to a real appliance VM's serial port through the daemon:
// what the guest writes to ttyS0 arrives, what we type reaches a guest reader, a second
// attach is refused with 409, and a detach leaves the VM running.
func TestConsoleAttach(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 5*time.Minute)
	cleanupInstances(t, c, "default")
	buildImage(t, c, "busy")
	launch(t, c, "", api.InstancesPost{Name: "vm1", Image: "busy", Command: "sleep 3600"})

	conn, br, status := attachRaw(t, td.Socket, "vm1")
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("attach: %d, want 101", status)
	}
	if _, _, st := attachRaw(t, td.Socket, "vm1"); st != http.StatusConflict {
		t.Fatalf("second attach: %d, want 409", st)
	}
	// A guest reader on ttyS0 stands in for the console shell: it echoes the line it reads.
	execIn(t, c, "", "vm1", "sh", "-c", "(read l < /dev/ttyS0; echo got-$l > /dev/ttyS0) >/dev/null 2>&1 &")
	word := fmt.Sprintf("hello-%d", time.Now().UnixNano()%100000)
	// Bytes that reach ttyS0 before the reader opened it are dropped, so the line is
	// typed again until the reply shows.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			fmt.Fprintf(conn, "%s\r", word)
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	sc := bufio.NewScanner(br)
	found := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "got-"+word) {
			found = true
			break
		}
	}
	if !found {
		t.Fatalf("the guest's reply to %q never came back: %v", word, sc.Err())
	}
	conn.Close()
	in, err := c.GetInstance(ctx, "", "vm1")
	if err != nil || in.Status != "running" {
		t.Fatalf("after detach: %+v %v", in, err)
	}
	// The session is released once the daemon sees the close.
	for i := 0; ; i++ {
		_, _, st := attachRaw(t, td.Socket, "vm1")
		if st == http.StatusSwitchingProtocols {
			break
		}
		if i > 50 {
			t.Fatalf("re-attach after detach: %d", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
