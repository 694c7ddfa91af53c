package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Progress receives build progress (0-100) and a short message; it may be nil.
type Progress func(pct int, msg string)

// BuildAppliance builds an appliance image named name from spec. The build happens in a
// temporary directory and is renamed into the store only when complete, so a failed or
// cancelled build leaves nothing behind.
func (s *Store) BuildAppliance(ctx context.Context, name string, spec ApplianceSpec, progress Progress) (*Image, error) {
	if progress == nil {
		progress = func(int, string) {}
	}
	start := time.Now()
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.refPath(name)); err == nil {
		return nil, fmt.Errorf("image %q already exists: delete it first or choose another name", name)
	}
	kdir := spec.KernelDir
	if kdir == "" {
		kdir = KernelDir()
	}
	progress(5, "locating kernel in "+kdir)
	k, err := FindKernel(kdir)
	if err != nil {
		return nil, err
	}
	progress(10, "extracting vmlinux from "+filepath.Base(k.Vmlinuz))
	vmlinux, err := CachedVmlinux(filepath.Join(s.dir, "kernels"), k.Vmlinuz)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "build-"+name+"-")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	progress(40, "linking kernel")
	if err := linkOrCopy(vmlinux, filepath.Join(tmp, vmlinuxFile)); err != nil {
		return nil, err
	}
	progress(50, "writing initramfs")
	f, err := os.Create(filepath.Join(tmp, initrdFile))
	if err != nil {
		return nil, err
	}
	contents, err := buildInitramfs(f, spec, k)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress(80, "hashing")
	vi, err := hashFile(filepath.Join(tmp, vmlinuxFile))
	if err != nil {
		return nil, err
	}
	ii, err := hashFile(filepath.Join(tmp, initrdFile))
	if err != nil {
		return nil, err
	}
	im := &Image{
		ID: computeID(KindAppliance, vi, ii, nil), Name: name, Kind: KindAppliance,
		Created: time.Now().UTC(), KernelVersion: k.Version,
		Vmlinux: *vi, Initrd: ii, Contents: contents,
		BuildSeconds: time.Since(start).Seconds(),
	}
	progress(90, "committing")
	committed = true // commit consumes tmp
	out, err := s.commit(tmp, im)
	if err != nil {
		return nil, err
	}
	progress(100, "done")
	return out, nil
}
