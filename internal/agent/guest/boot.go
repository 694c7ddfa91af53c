package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mount is one filesystem PID 1 mounts before anything else.
type mount struct {
	src, dst, fstype string
	flags            uintptr
	data             string
}

var earlyMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// MountEarly mounts /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run and /tmp.
// Filesystems that are already mounted (EBUSY) are fine.
func MountEarly() error {
	var errs []error
	for _, m := range earlyMounts {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && err != unix.EBUSY {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err))
		}
	}
	// /dev/fd and friends, which shells expect.
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		os.Symlink(target, name)
	}
	return errors.Join(errs...)
}

// LoadModules loads the modules listed in listPath (one .ko path per line) in order with
// finit_module. Already-loaded modules are skipped; failures are collected, not fatal, so
// that one missing optional driver does not keep the agent from starting.
func LoadModules(listPath string) (loaded int, err error) {
	f, err := os.Open(listPath)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var errs []error
	noPCI := !hasPCI()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if noPCI && strings.HasPrefix(filepath.Base(p), "virtio_pci") {
			continue // -M microvm: no PCI bus, loading the PCI transport only costs boot time
		}
		if err := loadModule(p); err != nil {
			errs = append(errs, err)
			continue
		}
		loaded++
	}
	return loaded, errors.Join(errs...)
}

// hasPCI reports whether the machine has any PCI device (q35/pc do; microvm does not).
func hasPCI() bool {
	ents, err := os.ReadDir("/sys/bus/pci/devices")
	return err == nil && len(ents) > 0
}

func loadModule(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("module %s: %w", p, err)
	}
	defer unix.Close(fd)
	if err := unix.FinitModule(fd, "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("module %s: finit_module: %w", filepath.Base(p), err)
	}
	return nil
}

// PortPath waits until the virtio-serial port named name exists and returns its device path.
// Without udev nobody creates /dev/virtio-ports/<name>, so it is linked here from sysfs.
func PortPath(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		if p, err := findPort(name); err == nil {
			return p, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("virtio-serial port %q did not appear within %v: is virtio_console loaded and the port wired as -device virtserialport,name=%s?", name, timeout, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findPort(name string) (string, error) {
	link := filepath.Join("/dev/virtio-ports", name)
	if _, err := os.Stat(link); err == nil {
		return link, nil
	}
	ents, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, e := range ents {
		b, err := os.ReadFile(e)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		dev := filepath.Base(filepath.Dir(e)) // vportNpM
		devPath := filepath.Join("/dev", dev)
		if _, err := os.Stat(devPath); err != nil {
			return "", err // devtmpfs has not created the node yet
		}
		os.MkdirAll("/dev/virtio-ports", 0o755)
		os.Symlink("../"+dev, link)
		return devPath, nil
	}
	return "", os.ErrNotExist
}

// ServePort serves the virtio-serial port at path forever.
//
// A read of 0 bytes means no host is connected (the port returns EOF at once while the host
// side is closed, and may do so briefly around connection changes). That is not the end of the
// stream: the port reader waits and reads on, and the decoder keeps any partial frame, so a
// momentary EOF loses nothing. Host sessions are delimited by hello, not by EOF: a new host
// always starts with a resync preamble and hello, which cancels what the previous host started.
func (s *Server) ServePort(path string) error {
	// Blocking mode on purpose: the port's poll reports HUP while no host is connected, which
	// does not mix well with edge-triggered netpolling; a blocking fd keeps the semantics plain.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	port := os.NewFile(uintptr(fd), path)
	defer port.Close()
	return s.ServeConn(&portRW{f: port, logf: s.Logf})
}

// portRW turns the port's EOF-while-disconnected into waiting.
type portRW struct {
	f         *os.File
	logf      func(string, ...any)
	connected bool
}

func (p *portRW) Read(b []byte) (int, error) {
	idle := 0
	for {
		n, err := p.f.Read(b)
		if n > 0 {
			if !p.connected {
				p.connected = true
			}
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		if p.connected && idle == 1 {
			p.connected = false
			p.logf("host disconnected from %s", p.f.Name())
		}
		// Host away: poll at 20 ms rising to 200 ms, quiet for an idle guest yet quick to
		// notice the next connection.
		idle++
		time.Sleep(time.Duration(min(20*idle, 200)) * time.Millisecond)
	}
}

func (p *portRW) Write(b []byte) (int, error) { return p.f.Write(b) }
