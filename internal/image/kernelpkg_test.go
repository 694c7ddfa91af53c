package image

import (
	"context"
	"errors"
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
		t.Skip("needs apt-cache (Debian)")
	}
	if out, err := exec.Command("apt-cache", "show", "--no-all-versions", "linux-image-cloud-amd64").Output(); err != nil || len(out) == 0 {
		t.Skip("apt knows no linux-image-cloud-amd64 (no package lists: run apt-get update)")
	}
}

func TestIsKernelPackageName(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"linux-image-cloud-amd64", true},
		{"linux-image-6.1.0-57-cloud-amd64", true},
		{"/var/cache/finvirt/kernel", false},
		{"./kernel", false},
		{"Linux-Image", false},
		{"pkg;rm -rf", false},
		{"", false},
	} {
		if got := IsKernelPackageName(tc.v); got != tc.want {
			t.Errorf("IsKernelPackageName(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// TestResolveKernelPackage asks the real apt: the metapackage resolves to the versioned
// kernel package it depends on; an unknown name is ErrNoPackage; a bad name never reaches apt.
func TestResolveKernelPackage(t *testing.T) {
	needApt(t)
	ctx := context.Background()
	k, err := ResolveKernelPackage(ctx, "linux-image-cloud-amd64")
	if err != nil || !strings.HasPrefix(k.Name, "linux-image-6") || !strings.HasSuffix(k.Name, "-cloud-amd64") || k.Version == "" {
		t.Fatalf("resolve metapackage: %+v %v", k, err)
	}
	k2, err := ResolveKernelPackage(ctx, k.Name)
	if err != nil || k2 != k {
		t.Fatalf("resolve %s: %+v %v", k.Name, k2, err)
	}
	if _, err := ResolveKernelPackage(ctx, "finvirt-no-such-kernel"); !errors.Is(err, ErrNoPackage) || !strings.Contains(err.Error(), "finvirt-no-such-kernel") {
		t.Fatalf("unknown package: %v", err)
	}
	if _, err := ResolveKernelPackage(ctx, "bad name"); err == nil || errors.Is(err, ErrNoPackage) {
		t.Fatalf("bad name: %v", err)
	}
}

// TestFetchKernelPackage downloads the real cloud kernel (~27 MB from the Debian mirror),
// unpacks it, finds its kernel, and reuses the cache the second time. Behind FINVIRT_SOAK
// because it needs the mirror and the default run already fetches the kernel once (setup).
func TestFetchKernelPackage(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("downloads ~27 MB from the Debian mirror: set FINVIRT_SOAK=1")
	}
	needApt(t)
	if os.Geteuid() != 0 {
		t.Skip("apt-get download needs root here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := ResolveKernelPackage(ctx, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	var msgs []string
	dir, err := FetchKernelPackage(ctx, k, cache, func(pct int, msg string) { msgs = append(msgs, msg) })
	if err != nil {
		t.Fatal(err)
	}
	kern, err := FindKernel(dir)
	if err != nil || !strings.Contains(k.Name, kern.Version) {
		t.Fatalf("kernel in %s: %+v %v (package %s)", dir, kern, err, k.Name)
	}
	if len(msgs) == 0 {
		t.Error("no progress reported")
	}
	msgs = nil
	dir2, err := FetchKernelPackage(ctx, k, cache, func(pct int, msg string) { msgs = append(msgs, msg) })
	if err != nil || dir2 != dir || len(msgs) != 0 {
		t.Fatalf("second fetch did not reuse the cache: %s %v %v", dir2, err, msgs)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".tmp-*")); len(left) != 0 {
		t.Fatalf("temporary dirs left: %v", left)
	}
}
