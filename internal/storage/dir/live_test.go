package dir

import (
	"bufio"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

// qmp is a minimal QMP client for the test.
type qmp struct {
	c  net.Conn
	rd *bufio.Reader
}

func (q *qmp) cmd(t *testing.T, name string, args any) map[string]any {
	t.Helper()
	req := map[string]any{"execute": name}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	q.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := q.rd.ReadBytes('\n')
		if err != nil {
			t.Fatalf("qmp %s: %v", name, err)
		}
		var resp map[string]any
		json.Unmarshal(line, &resp)
		if _, ev := resp["event"]; ev {
			continue
		}
		if e, bad := resp["error"]; bad {
			t.Fatalf("qmp %s: %v", name, e)
		}
		return resp
	}
}

// TestLiveSnapshot takes a snapshot of a volume attached to a running QEMU (no guest: -M none)
// through BeginLiveSnapshot + QMP blockdev-add/blockdev-snapshot, writes through QEMU after it,
// and checks the snapshot holds the data from before and the volume the data from after.
func TestLiveSnapshot(t *testing.T) {
	storagetest.RequireTools(t, "qemu-system-x86_64", "qemu-io")
	for _, enc := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "encrypted"}[enc]
		t.Run(name, func(t *testing.T) {
			ctx := storagetest.Ctx(t)
			p := newPool(t).(*Pool)
			if _, err := p.CreateVolume(ctx, "live", 64<<20, storage.VolumeOpts{Encrypted: enc}); err != nil {
				t.Fatal(err)
			}
			storagetest.MustQemuIO(t, p, "live", "write -P 0xab 0 1M")
			a, err := p.Access(ctx, "live")
			if err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(t.TempDir(), "qmp.sock")
			args := []string{"-M", "none", "-nodefaults", "-display", "none", "-qmp", "unix:" + sock + ",server=on,wait=off"}
			if a.Key != nil {
				args = append(args, "-object", a.SecretObjectArg())
			}
			cmd := exec.Command("qemu-system-x86_64", append(args, a.BlockdevArgs("drive0")...)...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
			var c net.Conn
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if c, err = net.Dial("unix", sock); err == nil {
					break
				}
			}
			if c == nil {
				t.Fatalf("no QMP socket: %v\n%s", err, out.String())
			}
			defer c.Close()
			q := &qmp{c: c, rd: bufio.NewReader(c)}
			if _, err := q.rd.ReadBytes('\n'); err != nil { // greeting
				t.Fatal(err)
			}
			q.cmd(t, "qmp_capabilities", nil)

			ls, err := p.BeginLiveSnapshot(ctx, "live", "before")
			if err != nil {
				t.Fatal(err)
			}
			q.cmd(t, "blockdev-add", ls.Overlay.BlockdevNode("ov1"))
			q.cmd(t, "blockdev-snapshot", map[string]any{"node": "drive0", "overlay": "ov1"})
			if err := ls.Commit(); err != nil {
				t.Fatal(err)
			}
			r := q.cmd(t, "human-monitor-command", map[string]any{"command-line": `qemu-io ov1 "write -P 0xcd 0 512k"`})
			if s, _ := r["return"].(string); strings.Contains(s, "rror") {
				t.Fatalf("hmp qemu-io: %s", s)
			}
			q.cmd(t, "quit", nil)
			cmd.Wait()

			storagetest.WantPattern(t, p, "live", "0xcd", "0", "512k")
			storagetest.WantPattern(t, p, "live", "0xab", "512k", "512k")
			if err := p.RestoreSnapshot(ctx, "live", "before"); err != nil {
				t.Fatal(err)
			}
			storagetest.WantPattern(t, p, "live", "0xab", "0", "1M")
		})
	}
}
