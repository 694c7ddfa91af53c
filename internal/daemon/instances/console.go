package instances

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
)

// ConsoleUpgrade is the Upgrade token of an interactive console attach: after
// 101 Switching Protocols the connection is a raw byte stream to and from the
// guest's serial port (no framing, so no dependency and any client can speak it).
const ConsoleUpgrade = "finvirt-console"

func (s *Subsystem) handleConsoleAttach(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	if !strings.EqualFold(r.Header.Get("Upgrade"), ConsoleUpgrade) {
		return daemon.BadRequest("console attach of instance %s: send 'Connection: Upgrade' and 'Upgrade: %s' (or use GET .../console for the log)", name, ConsoleUpgrade)
	}
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	// running gives the precise 409 (stopped: how to start it; paused: how to resume it).
	in, err := s.running(r.Context(), project, name, "attach to the console of")
	if err != nil {
		return err
	}
	info, err := s.drv.Info(r.Context(), in.ID)
	if err != nil || info.Status.State != compute.StateRunning {
		state := "gone"
		if err == nil {
			state = string(info.Status.State)
		}
		return daemon.Conflict("instance %s in project %s: its VM is %s: start it ('finvirt start %s%s') before attaching its console", name, project, state, name, projectFlag(project))
	}
	key := project + "/" + name
	if holder, busy := s.consoles.LoadOrStore(key, rq.Identity()); busy {
		return daemon.Conflict("the console of instance %s is held by %s: wait for them to detach (the log stays readable: 'finvirt console %s --show-log --follow%s')", name, holder, name, projectFlag(project))
	}
	defer s.consoles.Delete(key)
	guest, err := net.Dial("unix", info.ConsoleSocket)
	if err != nil {
		return daemon.Conflict("instance %s: its console socket cannot be reached (%v)", name, err)
	}
	defer guest.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		return fmt.Errorf("console attach of instance %s: connection cannot be upgraded", name)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", ConsoleUpgrade); err != nil {
		return nil
	}
	start := time.Now()
	// Recorded at attach too, so a session in progress is visible in the audit log.
	_ = d.AuditEvent(context.WithoutCancel(r.Context()), "instance.console.attach", name, project, api.OutcomeSuccess,
		fmt.Sprintf("interactive console attached by %s", rq.Identity()))
	// Either direction ending ends the session; closing both sockets unblocks
	// the other copy. Closing our end of QEMU's chardev socket leaves the guest
	// running (server=on keeps listening for the next client).
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(guest, buf); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, guest); done <- struct{}{} }()
	select {
	case <-done:
	case <-r.Context().Done():
	case <-s.ctx.Done(): // daemon shutdown: hijacked connections are not closed by the server
	}
	conn.Close()
	guest.Close()
	_ = d.AuditEvent(context.WithoutCancel(r.Context()), "instance.console", name, project, api.OutcomeSuccess,
		fmt.Sprintf("interactive console held by %s for %s", rq.Identity(), time.Since(start).Round(time.Second)))
	return nil
}
