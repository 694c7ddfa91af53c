package dir

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

// TestHelperImport is the child of TestKillMidImport: it imports a large image into the pool
// given in the environment and is killed half way.
func TestHelperImport(t *testing.T) {
	if os.Getenv("FINVIRT_IMPORT_HELPER") == "" {
		t.Skip("helper process for TestKillMidImport")
	}
	cfg := storage.PoolConfig{Name: "crash", Driver: DriverName, Path: os.Getenv("FINVIRT_POOL")}
	p, err := Driver{}.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.ImportVolume(context.Background(), os.Getenv("FINVIRT_IMAGE"), "victim", storage.ImportOpts{})
}

// TestKillMidImport kills a process (and its qemu-img child) in the middle of an import, then
// checks that Open's Recover leaves neither the temporary layer nor a volume behind.
func TestKillMidImport(t *testing.T) {
	storagetest.RequireTools(t, "qemu-img", "qemu-io")
	root := t.TempDir()
	cfg := storage.PoolConfig{Name: "crash", Driver: DriverName, Path: filepath.Join(root, "pool")}
	if _, err := (Driver{}).Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	// 1 GiB of non-zero data: long enough to convert that the kill lands mid-way.
	img := filepath.Join(root, "big.raw")
	for _, args := range [][]string{{"qemu-img", "create", "-q", "-f", "raw", img, "1G"}, {"qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1G", img}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperImport$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FINVIRT_IMPORT_HELPER=1", "FINVIRT_POOL="+cfg.Path, "FINVIRT_IMAGE="+img)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			killed = true
		}
	}
	t.Cleanup(kill)
	layers := filepath.Join(cfg.Path, "layers")
	deadline := time.Now().Add(60 * time.Second)
	found := ""
	for found == "" && time.Now().Before(deadline) {
		ents, _ := os.ReadDir(layers)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-import-") {
				if st, err := e.Info(); err == nil && st.Size() > 0 {
					found = e.Name()
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill()
	if found == "" {
		t.Fatal("the import never started writing its temporary layer")
	}
	if _, err := os.Stat(filepath.Join(layers, found)); err != nil {
		t.Skipf("import finished before the kill (%v); machine too fast for this check", err)
	}
	p, err := Driver{}.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(layers)
	if len(ents) != 0 {
		t.Fatalf("leftovers after Recover: %v", ents)
	}
	if _, err := p.GetVolume(context.Background(), "victim"); err == nil {
		t.Fatal("half-imported volume exists")
	}
}
