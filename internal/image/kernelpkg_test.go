package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func needApt(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("apt-cache"); err != nil {
		t.Skip("apt-cache not installed (not a Debian host)")
	}
	if out, _ := exec.Command("apt-cache", "policy", "linux-image-cloud-amd64").Output(); !strings.Contains(string(out), "Candidate:") {
		t.Skip("apt lists do not know linux-image-cloud-amd64 (run apt-get update)")
	}
}

func TestIsKernelPackageDir(t *testing.T) {
	for v, want := range map[string]bool{"linux-image-cloud-amd64": false, "./kernel": true, "/var/cache/finvirt/kernel": true, "kernel": false} {
		if IsKernelPackageDir(v) != want {
			t.Errorf("%q: dir = %v, want %v", v, !want, want)
		}
	}
}

// TestResolveKernelPackage runs the real apt-cache against this host's lists.
func TestResolveKernelPackage(t *testing.T) {
	needApt(t)
	ctx := context.Background()
	meta, err := ResolveKernelPackage(ctx, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(meta.Package, "linux-image-") || meta.Package == "linux-image-cloud-amd64" || meta.Version == "" {
		t.Fatalf("metapackage not resolved: %+v", meta)
	}
	// The concrete package resolves to itself with the same version.
	if c, err := ResolveKernelPackage(ctx, meta.Package); err != nil || c.Package != meta.Package || c.Version != meta.Version {
		t.Fatalf("concrete %s: %+v, %v", meta.Package, c, err)
	}
	for _, tc := range []struct{ name, want string }{
		{"Linux Image", "is not a Debian package name"},
		{"kernel;rm", "is not a Debian package name"},
		{"linux-image-does-not-exist-finvirt", "is not known to apt"},
		{"bash", "neither a linux-image-* package nor a metapackage"},
	} {
		if _, err := ResolveKernelPackage(ctx, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestFetchKernelPackage downloads the real cloud kernel package once (apt-get download,
// dpkg-deb -x), finds the kernel in the cache dir keyed by version, and reuses it the second
// time without a download (the downloaded .deb is gone, the directory is the same).
func TestFetchKernelPackage(t *testing.T) {
	needApt(t)
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kp, err := ResolveKernelPackage(ctx, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	dir, err := FetchKernelPackage(ctx, cache, kp)
	if err != nil {
		if strings.Contains(err.Error(), "apt-get download") && (strings.Contains(err.Error(), "Could not resolve") || strings.Contains(err.Error(), "Failed to fetch")) {
			t.Skipf("Debian mirror unreachable from here: %v", err)
		}
		t.Fatal(err)
	}
	if dir != KernelPackageDir(cache, kp) || !strings.Contains(dir, kp.Version) {
		t.Fatalf("dir %s not keyed by %s", dir, kp.Version)
	}
	k, err := FindKernel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kp.Package, k.Version) {
		t.Fatalf("kernel %s does not match package %s", k.Version, kp.Package)
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 1 {
		t.Fatalf("cache dir holds %d entries (temp left behind?)", len(ents))
	}
	marker := filepath.Join(dir, "reused")
	os.WriteFile(marker, nil, 0o600)
	if dir2, err := FetchKernelPackage(ctx, cache, kp); err != nil || dir2 != dir {
		t.Fatalf("second fetch: %s, %v", dir2, err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("second fetch replaced the cached directory instead of reusing it")
	}
}
