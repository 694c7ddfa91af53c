package instances_test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
)

// TestSoakFourAtOnce launches four appliances concurrently, execs into each at the same time
// (one shared agent connection per VM), then deletes them. Behind FINVIRT_SOAK=1: four TCG
// boots at once take a 2-core machine for a minute.
func TestSoakFourAtOnce(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("set FINVIRT_SOAK=1 to boot four VMs at once")
	}
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	cleanupInstances(t, c, "default")
	buildImage(t, c, "busy")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			launch(t, c, "", api.InstancesPost{Name: fmt.Sprintf("soak%d", i), Image: "busy", Command: "sleep 3600", Restart: api.RestartAlways})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := len(qemuPids(sd)); n != 4 {
		t.Fatalf("%d QEMUs, want 4", n)
	}
	for i := range 4 {
		for j := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("soak%d", i)
				res, err := c.Exec(ctxT(t, 2*time.Minute), "", name, api.InstanceExecPost{Command: []string{"sh", "-c", fmt.Sprintf("hostname; echo %d", j)}})
				if err != nil || res.ExitCode != 0 || string(res.Stdout) != fmt.Sprintf("%s\n%d\n", name, j) {
					t.Errorf("exec %s/%d: %+v %v", name, j, res, err)
				}
			}()
		}
	}
	wg.Wait()
	for i := range 4 {
		if err := c.DeleteInstance(ctxT(t, time.Minute), "", fmt.Sprintf("soak%d", i), true); err != nil {
			t.Fatal(err)
		}
	}
	if pids := qemuPids(sd); len(pids) != 0 {
		t.Fatalf("QEMUs left: %v", pids)
	}
	p, _ := c.GetProject(ctxT(t, time.Minute), "default")
	if p.Usage != (api.ProjectUsage{}) {
		t.Fatalf("usage: %+v", p.Usage)
	}
	_ = strings.TrimSpace
}
