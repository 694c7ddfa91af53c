// Package vmtest boots real appliances under QEMU to test the guest agent and the image
// builder end to end, and benchmarks boot-to-agent-ready against a bare boot.
//
// The launcher here is deliberately a hand-built command line, not the finvirt QEMU driver
// (internal/compute): it is the reference for how the driver must wire the agent channel, and
// the "bare QEMU" baseline of the boot benchmark.
package vmtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// BaseCmdline makes a Debian cloud kernel boot fast under TCG with -M microvm (microvm hangs
// without tsc_early_khz; panic=-1 with -no-reboot turns a guest panic into a QEMU exit).
const BaseCmdline = "console=ttyS0 quiet tsc_early_khz=2500000 tsc=reliable no_timer_check lpj=5000000 mitigations=off nokaslr edd=off i8042.noaux i8042.nopnp cryptomgr.notests random.trust_cpu=on panic=-1"

// VMOptions configures one boot.
type VMOptions struct {
	Kernel, Initrd string
	Cmdline        string // appended to BaseCmdline
	MemoryMB       int    // default 256
	TBSizeMB       int    // TCG translation cache; default 32
	Machine        string // "microvm" (default) or "q35"
	Agent          bool   // wire the virtio-serial agent port
	QMP            bool   // add a QMP socket
	Extra          []string
}

// VM is a running QEMU.
type VM struct {
	Cmd        *exec.Cmd
	Dir        string
	AgentSock  string
	QMPSock    string
	ConsoleLog string
	Started    time.Time
	exited     chan struct{}
	waitErr    error
}

// Args returns the QEMU command line for o with state files in dir.
func Args(o VMOptions, dir string) []string {
	mem, tb := o.MemoryMB, o.TBSizeMB
	if mem == 0 {
		mem = 256
	}
	if tb == 0 {
		tb = 32
	}
	machine, serialBus := "microvm,acpi=on", "virtio-serial-device"
	if o.Machine == "q35" {
		machine, serialBus = "q35", "virtio-serial-pci"
	}
	args := []string{
		"-M", machine, "-accel", "tcg,tb-size=" + strconv.Itoa(tb),
		"-cpu", "max", "-m", strconv.Itoa(mem), "-smp", "1",
		"-nodefaults", "-no-reboot", "-display", "none", "-no-user-config",
		"-kernel", o.Kernel, "-initrd", o.Initrd,
		"-append", strings.TrimSpace(BaseCmdline + " " + o.Cmdline),
		"-serial", "file:" + filepath.Join(dir, "console.log"),
	}
	if o.Agent {
		args = append(args,
			"-device", serialBus,
			"-chardev", "socket,id=agent0,path="+filepath.Join(dir, "agent.sock")+",server=on,wait=off",
			"-device", "virtserialport,chardev=agent0,name=org.finvirt.agent.0",
		)
	}
	if o.QMP {
		args = append(args, "-qmp", "unix:"+filepath.Join(dir, "qmp.sock")+",server=on,wait=off")
	}
	return append(args, o.Extra...)
}

// Start launches QEMU in its own process group in dir.
func Start(o VMOptions, dir string) (*VM, error) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	vm := &VM{Dir: dir, AgentSock: filepath.Join(dir, "agent.sock"), QMPSock: filepath.Join(dir, "qmp.sock"),
		ConsoleLog: filepath.Join(dir, "console.log"), exited: make(chan struct{})}
	vm.Cmd = exec.Command(bin, Args(o, dir)...)
	stderr, err := os.Create(filepath.Join(dir, "qemu.stderr"))
	if err != nil {
		return nil, err
	}
	vm.Cmd.Stdout, vm.Cmd.Stderr = stderr, stderr
	// Own process group (Kill takes the whole group); Pdeathsig so that a test binary killed by
	// its timeout does not leave a QEMU spinning a core.
	vm.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	vm.Started = time.Now()
	if err := vm.Cmd.Start(); err != nil {
		stderr.Close()
		return nil, err
	}
	go func() {
		vm.waitErr = vm.Cmd.Wait()
		stderr.Close()
		close(vm.exited)
	}()
	return vm, nil
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Kill kills QEMU's whole process group and waits for it.
func (vm *VM) Kill() {
	if vm.Cmd.Process != nil {
		syscall.Kill(-vm.Cmd.Process.Pid, syscall.SIGKILL)
	}
	select {
	case <-vm.exited:
	case <-time.After(10 * time.Second):
	}
}

// WaitExit waits up to d for QEMU to exit on its own.
func (vm *VM) WaitExit(d time.Duration) error {
	select {
	case <-vm.exited:
		return nil
	case <-time.After(d):
		return fmt.Errorf("qemu still running after %v", d)
	}
}

// Console returns the serial console output so far.
func (vm *VM) Console() string {
	b, _ := os.ReadFile(vm.ConsoleLog)
	e, _ := os.ReadFile(filepath.Join(vm.Dir, "qemu.stderr"))
	if len(e) > 0 {
		return string(b) + "\n--- qemu stderr ---\n" + string(e)
	}
	return string(b)
}

// RSSKiB returns QEMU's resident set size from /proc/PID/status.
func (vm *VM) RSSKiB() (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", vm.Cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

// QMP sends one command on a fresh QMP connection and returns the raw reply line.
// (A minimal exchange for tests; the product's QMP client lives in internal/compute.)
func (vm *VM) QMP(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", vm.QMPSock, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	if _, err := c.Read(buf); err != nil { // greeting
		return "", err
	}
	for _, m := range []string{`{"execute":"qmp_capabilities"}`, fmt.Sprintf(`{"execute":%q}`, cmd)} {
		if _, err := c.Write([]byte(m + "\n")); err != nil {
			return "", err
		}
		for {
			n, err := c.Read(buf)
			if err != nil {
				return "", err
			}
			line := string(buf[:n])
			if strings.Contains(line, `"return"`) || strings.Contains(line, `"error"`) {
				if m != `{"execute":"qmp_capabilities"}` {
					return line, nil
				}
				break
			}
		}
	}
	return "", nil
}
