package vmtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/image"
)

// TestBootLoop boots the appliance repeatedly (FINVIRT_SOAK_BOOTS, default 20) and checks that
// every boot reaches a working agent: it hunts races in the boot-time handshake.
func TestBootLoop(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("soak: set FINVIRT_SOAK=1")
	}
	setup(t)
	n := 20
	if v, err := strconv.Atoi(os.Getenv("FINVIRT_SOAK_BOOTS")); err == nil {
		n = v
	}
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		initrd := filepath.Join(dir, "initrd")
		if err := image.WriteInstanceInitrd(appliance.InitrdPath(), agent.Config{Hostname: "loop"}, initrd); err != nil {
			t.Fatal(err)
		}
		vm, err := Start(VMOptions{Kernel: appliance.VmlinuxPath(), Initrd: initrd, Agent: true}, dir)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		c, err := agent.Dial(ctx, vm.AgentSock)
		if err == nil {
			pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
			var out bytes.Buffer
			var code int
			code, err = c.Exec(pctx, agent.ExecRequest{Argv: []string{"echo", "ok"}, Stdout: &out})
			pcancel()
			if err == nil && (code != 0 || out.String() != "ok\n") {
				err = errorf("exec: %d %q", code, out.String())
			}
			c.Close()
		}
		cancel()
		vm.Kill()
		if err != nil {
			t.Fatalf("boot %d: %v\nconsole:\n%s", i, err, vm.Console())
		}
		t.Logf("boot %d ready in %.2fs", i, time.Since(vm.Started).Seconds())
	}
}
