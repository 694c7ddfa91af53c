package image

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// A --kernel-package value is either a directory (it contains '/') or a Debian package name:
// a concrete linux-image-<version> package or a metapackage such as linux-image-cloud-amd64,
// which is resolved to the linux-image package it depends on, as scripts/setup.sh does.

// IsKernelPackageDir says whether a kernel_package value names a directory.
func IsKernelPackageDir(v string) bool { return strings.Contains(v, "/") }

// debianName is Debian policy's package name syntax (5.6.1).
var debianName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// KernelPackage is a resolved Debian kernel package.
type KernelPackage struct {
	Requested string // what was asked for (maybe a metapackage)
	Package   string // the linux-image package holding the kernel
	Version   string // its candidate version in apt
}

const aptCache = "apt-cache"

// ResolveKernelPackage maps a package name to the concrete linux-image package and the
// version apt would fetch. It only reads apt's lists (fast); FetchKernelPackage downloads.
func ResolveKernelPackage(ctx context.Context, name string) (KernelPackage, error) {
	if !debianName.MatchString(name) {
		return KernelPackage{}, fmt.Errorf("kernel package %q is not a Debian package name (a directory must contain '/', e.g. ./kernel)", name)
	}
	kp := KernelPackage{Requested: name, Package: name}
	out, err := exec.CommandContext(ctx, aptCache, "depends", name).Output()
	if err != nil || len(out) == 0 {
		return KernelPackage{}, fmt.Errorf("kernel package %s is not known to apt (run apt-get update, or check the name): %v", name, aptErr(err))
	}
	// A metapackage depends on the real one: take its first linux-image-* dependency.
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") && debianName.MatchString(f[1]) {
			kp.Package = f[1]
			break
		}
	}
	if !strings.HasPrefix(kp.Package, "linux-image-") {
		return KernelPackage{}, fmt.Errorf("kernel package %s is neither a linux-image-* package nor a metapackage depending on one", name)
	}
	pol, err := exec.CommandContext(ctx, aptCache, "policy", kp.Package).Output()
	if err != nil {
		return KernelPackage{}, fmt.Errorf("kernel package %s: apt-cache policy %s: %v", name, kp.Package, aptErr(err))
	}
	for _, l := range strings.Split(string(pol), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate:"); ok {
			kp.Version = strings.TrimSpace(v)
		}
	}
	if kp.Version == "" || kp.Version == "(none)" {
		return KernelPackage{}, fmt.Errorf("kernel package %s (%s) has no installable version in apt (run apt-get update)", name, kp.Package)
	}
	return kp, nil
}

func aptErr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return strings.TrimSpace(string(ee.Stderr))
	}
	if err == nil {
		return "no output"
	}
	return err.Error()
}

// KernelPackageDir is where FetchKernelPackage unpacks kp under cacheDir: keyed by package
// and version, so a new kernel version in apt is a new directory and an old one stays valid.
func KernelPackageDir(cacheDir string, kp KernelPackage) string {
	return filepath.Join(cacheDir, kp.Package+"_"+strings.NewReplacer(":", "%3a", "/", "_").Replace(kp.Version))
}

// FetchKernelPackage downloads kp (apt-get download) and unpacks it (dpkg-deb -x) into
// KernelPackageDir, unless that directory already holds the kernel. The unpack goes to a
// temporary directory renamed into place, so a failed or cancelled fetch leaves nothing.
func FetchKernelPackage(ctx context.Context, cacheDir string, kp KernelPackage) (string, error) {
	dir := KernelPackageDir(cacheDir, kp)
	if _, err := FindKernel(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dl := exec.CommandContext(ctx, "apt-get", "download", "-q", kp.Package+"="+kp.Version)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernel package %s: apt-get download %s=%s: %v: %s", kp.Requested, kp.Package, kp.Version, err, strings.TrimSpace(string(out)))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("kernel package %s: apt-get download left %d .deb files, want 1", kp.Requested, len(debs))
	}
	root := filepath.Join(tmp, "root")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernel package %s: dpkg-deb -x: %v: %s", kp.Requested, err, strings.TrimSpace(string(out)))
	}
	if _, err := FindKernel(root); err != nil {
		return "", fmt.Errorf("kernel package %s (%s %s) holds no kernel: %v", kp.Requested, kp.Package, kp.Version, err)
	}
	os.RemoveAll(dir) // a partial directory of an earlier, interrupted layout
	if err := os.Rename(root, dir); err != nil {
		return "", err
	}
	return dir, nil
}
