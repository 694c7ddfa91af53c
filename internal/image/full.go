package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FullSpec says what goes into a full (Debian root disk) image.
type FullSpec struct {
	// Agent is the static finvirt-agent: installed as a systemd service in the root disk and
	// used as /init of the boot initramfs (which loads virtio drivers and switches root).
	Agent     string
	KernelDir string
	Suite     string   // default bookworm
	Mirror    string   // default http://deb.debian.org/debian
	Include   []string // extra packages; systemd-sysv and udev are always included
	DiskMB    int      // root filesystem size, default 2048
	// Binaries are copied to /usr/local/bin in the root disk.
	Binaries []string
}

// FullCmdline is what a full image needs on the kernel command line besides the TCG tweaks:
// the initramfs agent mounts this root and executes its /sbin/init.
const FullCmdline = "finvirt.root=/dev/vda"

const agentUnit = `[Unit]
Description=finvirt guest agent
After=systemd-udevd.service
DefaultDependencies=no

[Service]
ExecStart=/usr/local/bin/finvirt-agent
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`

// BuildFull builds a full image: debootstrap --variant=minbase into a temporary tree, the agent
// installed and enabled as a systemd service, mkfs.ext4 -d into a raw file converted to qcow2,
// plus the vmlinux and an initramfs to boot it. Slow (about a minute). Like BuildAppliance it
// builds in tmp/ and commits atomically.
func (s *Store) BuildFull(ctx context.Context, name string, spec FullSpec, progress Progress) (*Image, error) {
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
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("full image: %s is not installed (apt-get install debootstrap e2fsprogs qemu-utils)", tool)
		}
	}
	if spec.Agent == "" {
		return nil, fmt.Errorf("full image spec: Agent (path to a static finvirt-agent binary) is required")
	}
	agentData, err := os.ReadFile(spec.Agent)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := checkStatic(spec.Agent, agentData); err != nil {
		return nil, err
	}
	suite, mirror, diskMB := spec.Suite, spec.Mirror, spec.DiskMB
	if suite == "" {
		suite = "bookworm"
	}
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if diskMB == 0 {
		diskMB = 2048
	}
	kdir := spec.KernelDir
	if kdir == "" {
		kdir = KernelDir()
	}
	k, err := FindKernel(kdir)
	if err != nil {
		return nil, err
	}
	vmlinux, err := CachedVmlinux(filepath.Join(s.dir, "kernels"), k.Vmlinuz)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "full-"+name+"-")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	root := filepath.Join(tmp, "rootfs")
	include := append([]string{"systemd-sysv", "udev"}, spec.Include...)
	progress(5, "debootstrap "+suite)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(include, ","), suite, root, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("debootstrap %s from %s: %v\n%s", suite, mirror, err, tail(out, 2000))
	}
	progress(70, "installing the agent")
	if err := installAgent(root, agentData, spec.Binaries); err != nil {
		return nil, err
	}
	progress(75, "mkfs.ext4")
	raw := filepath.Join(tmp, "disk.raw")
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", root, raw, strconv.Itoa(diskMB)+"M").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkfs.ext4 -d: %v\n%s", err, tail(out, 2000))
	}
	os.RemoveAll(root)
	progress(85, "qemu-img convert")
	if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-O", "qcow2", raw, filepath.Join(tmp, diskFile)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-img convert: %v\n%s", err, tail(out, 2000))
	}
	os.Remove(raw)
	progress(90, "boot files")
	if err := linkOrCopy(vmlinux, filepath.Join(tmp, vmlinuxFile)); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(tmp, initrdFile))
	if err != nil {
		return nil, err
	}
	contents, err := buildInitramfs(f, ApplianceSpec{Agent: spec.Agent}, k)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	vi, err := hashFile(filepath.Join(tmp, vmlinuxFile))
	if err != nil {
		return nil, err
	}
	ii, err := hashFile(filepath.Join(tmp, initrdFile))
	if err != nil {
		return nil, err
	}
	di, err := hashFile(filepath.Join(tmp, diskFile))
	if err != nil {
		return nil, err
	}
	im := &Image{
		ID: computeID(KindFull, vi, ii, di), Name: name, Kind: KindFull, Created: time.Now().UTC(),
		KernelVersion: k.Version, Vmlinux: *vi, Initrd: ii, Disk: di, Contents: contents,
		BuildSeconds: time.Since(start).Seconds(),
	}
	committed = true
	out, err := s.commit(tmp, im)
	if err != nil {
		return nil, err
	}
	progress(100, "done")
	return out, nil
}

// installAgent puts the agent and its systemd unit into a debootstrapped tree.
func installAgent(root string, agentData []byte, binaries []string) error {
	bin := filepath.Join(root, "usr/local/bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bin, "finvirt-agent"), agentData, 0o755); err != nil {
		return err
	}
	for _, b := range binaries {
		data, err := os.ReadFile(b)
		if err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		if err := os.WriteFile(filepath.Join(bin, filepath.Base(b)), data, 0o755); err != nil {
			return err
		}
	}
	unitDir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(filepath.Join(unitDir, "multi-user.target.wants"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(unitDir, "finvirt-agent.service"), []byte(agentUnit), 0o644); err != nil {
		return err
	}
	if err := os.Symlink("../finvirt-agent.service", filepath.Join(unitDir, "multi-user.target.wants", "finvirt-agent.service")); err != nil && !os.IsExist(err) {
		return err
	}
	// The root is /dev/vda, mounted read-write by the initramfs; no fstab entries needed.
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("# root mounted by the finvirt initramfs\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("finvirt\n"), 0o644)
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
