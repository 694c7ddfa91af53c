package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kernel packages by name. `finvirt image build --kernel-package linux-image-cloud-amd64`
// names a Debian package rather than a directory: the daemon resolves a metapackage to the
// versioned kernel package it depends on (as scripts/setup.sh does), downloads it with
// apt-get download and unpacks it (dpkg-deb -x, never installed: the host's own kernel is
// untouched) into <cache>/<package>_<version>, which later builds reuse.

var debPackageRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,100}$`)

// ErrNoPackage is returned when apt knows no package of that name.
var ErrNoPackage = errors.New("no such Debian package")

// IsKernelPackageName says whether v names a package rather than a directory.
func IsKernelPackageName(v string) bool {
	return !strings.Contains(v, "/") && debPackageRe.MatchString(v)
}

// KernelPackage is a resolved kernel package: the versioned package and its version.
type KernelPackage struct {
	Name    string // e.g. linux-image-6.1.0-57-cloud-amd64
	Version string // e.g. 6.1.192-3
}

// dirName is the cache directory of the package (version characters ':' and '~' are safe in
// file names but ':' is not in PATH-like lists; replace it).
func (k KernelPackage) dirName() string {
	return k.Name + "_" + strings.NewReplacer(":", "%3a").Replace(k.Version)
}

// ResolveKernelPackage asks apt (apt-cache, no download) which kernel package name stands
// for: a metapackage such as linux-image-cloud-amd64 resolves to the first linux-image-*
// package it depends on.
func ResolveKernelPackage(ctx context.Context, name string) (KernelPackage, error) {
	if !IsKernelPackageName(name) {
		return KernelPackage{}, fmt.Errorf("kernel package %q is not a Debian package name (or give a directory as an absolute path)", name)
	}
	pkg := name
	if out, err := exec.CommandContext(ctx, "apt-cache", "depends", name).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			if dep, ok := strings.CutPrefix(l, "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") && !strings.Contains(dep, "<") {
				pkg = dep
				break
			}
		}
	}
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", pkg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version:") {
		return KernelPackage{}, fmt.Errorf("%w: %s (apt-cache knows none; check the name, or run apt-get update)", ErrNoPackage, name)
	}
	var k KernelPackage
	k.Name = pkg
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Version: "); ok {
			k.Version = strings.TrimSpace(v)
			break
		}
	}
	return k, nil
}

// FetchKernelPackage returns the directory holding package k unpacked under cacheDir,
// downloading and unpacking it first when it is not there yet. A failed or interrupted fetch
// leaves only a .tmp-* directory, removed by the next fetch.
func FetchKernelPackage(ctx context.Context, k KernelPackage, cacheDir string, progress Progress) (string, error) {
	if progress == nil {
		progress = func(int, string) {}
	}
	dir := filepath.Join(cacheDir, k.dirName())
	if _, err := FindKernel(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	if olds, _ := filepath.Glob(filepath.Join(cacheDir, ".tmp-*")); len(olds) > 0 {
		for _, o := range olds {
			os.RemoveAll(o)
		}
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-"+k.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	progress(5, "downloading "+k.Name+" "+k.Version)
	dl := exec.CommandContext(ctx, "apt-get", "download", "-q", k.Name+"="+k.Version)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s=%s: %v: %s", k.Name, k.Version, err, strings.TrimSpace(tail(out, 300)))
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files, want 1", k.Name, len(debs))
	}
	progress(25, "unpacking "+filepath.Base(debs[0]))
	root := filepath.Join(tmp, "root")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", filepath.Base(debs[0]), err, strings.TrimSpace(tail(out, 300)))
	}
	if _, err := FindKernel(root); err != nil {
		return "", fmt.Errorf("package %s holds no kernel: %w", k.Name, err)
	}
	if err := os.Rename(root, dir); err != nil {
		if _, ferr := FindKernel(dir); ferr == nil {
			return dir, nil // a concurrent fetch won
		}
		return "", err
	}
	return dir, nil
}
