package instances_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
)

// TestBuildKernelPackageByName: kernel_package without '/' is a Debian package name. A name
// apt does not know is a 400 naming it and no image is made; linux-image-cloud-amd64 is
// resolved, fetched with apt into the image store's kernel-packages cache (keyed by version)
// and the appliance is built with that kernel.
func TestBuildKernelPackageByName(t *testing.T) {
	needVM(t)
	if out, _ := exec.Command("apt-cache", "policy", "linux-image-cloud-amd64").Output(); !strings.Contains(string(out), "Candidate:") {
		t.Skip("apt lists do not know linux-image-cloud-amd64 (run apt-get update)")
	}
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 10*time.Minute)
	_, err := c.BuildImage(ctx, api.ImagesPost{Name: "kp-bad", Binaries: []string{"/bin/busybox"}, KernelPackage: "linux-image-nosuch-finvirt"})
	wantStatus(t, err, 400, "linux-image-nosuch-finvirt is not known to apt")
	if _, err := c.GetImage(ctx, "kp-bad"); err == nil {
		t.Fatal("image created despite the 400")
	}
	op, err := c.BuildImage(ctx, api.ImagesPost{Name: "kp", Binaries: []string{"/bin/busybox"}, KernelPackage: "linux-image-cloud-amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		if strings.Contains(err.Error(), "Failed to fetch") || strings.Contains(err.Error(), "Could not resolve") {
			t.Skipf("Debian mirror unreachable: %v", err)
		}
		t.Fatal(err)
	}
	im, err := c.GetImage(ctx, "kp")
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(sd, "images", "kernel-packages", "linux-image-*"))
	if len(dirs) != 1 {
		t.Fatalf("kernel-packages cache: %v", dirs)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dirs[0])); len(ents) != 1 {
		t.Fatalf("kernel-packages cache holds leftovers: %v", ents)
	}
	t.Logf("image %+v from %s", im, dirs[0])
}
