// Command finvirt-agent is the finvirt guest agent. In an appliance it is /init (PID 1): it
// mounts the early filesystems, loads the virtio modules, applies the instance configuration
// (hostname, network, volumes), supervises the workloads and answers the host over the
// virtio-serial port org.finvirt.agent.0. In a full OS guest it runs as a service next to the
// guest's own init and only serves the port. Build it static: CGO_ENABLED=0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/agent/guest"
	"golang.org/x/sys/unix"
)

func main() {
	configPath := flag.String("config", agent.ConfigPath, "instance configuration file")
	portName := flag.String("port", agent.PortName, "virtio-serial port name, or a device path")
	flag.Parse()
	if os.Getpid() == 1 {
		initMain(*configPath, *portName)
		return
	}
	if err := serviceMain(*configPath, *portName); err != nil {
		fmt.Fprintln(os.Stderr, "finvirt-agent:", err)
		os.Exit(1)
	}
}

// console returns a writer to the system console. The kernel opens /dev/console as fds 0-2
// for PID 1 when it exists; when it did not, open it now that devtmpfs is mounted.
func console() io.Writer {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return os.Stdout
	}
	f, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return io.Discard
	}
	unix.Dup2(int(f.Fd()), 0)
	unix.Dup2(int(f.Fd()), 1)
	unix.Dup2(int(f.Fd()), 2)
	return f
}

func initMain(configPath, portName string) {
	start := time.Now()
	mountErr := guest.MountEarly()
	con := console()
	logf := func(format string, args ...any) {
		fmt.Fprintf(con, "finvirt-agent: "+format+"\n", args...)
	}
	if mountErr != nil {
		logf("%v", mountErr)
	}
	// Modules load in the background: the port appears as soon as virtio_console (listed
	// first) is in, and serving it does not wait for the disk and network drivers.
	modulesDone := make(chan struct{})
	go func() {
		defer close(modulesDone)
		if n, err := guest.LoadModules("/etc/finvirt/modules"); err != nil {
			logf("loaded %d modules; errors: %v", n, err)
		}
	}()
	if root := guest.RootFromCmdline(); root != "" {
		// Full image: this initramfs only loads the drivers, then the disk's init takes over.
		<-modulesDone
		err := guest.SwitchRoot(root, configPath, 30*time.Second)
		logf("switching to root %s failed: %v; carrying on as an appliance", root, err)
	}
	cfg, err := agent.LoadConfig(configPath)
	if err != nil {
		// Keep going with what parsed: the host can still reach the agent and diagnose.
		logf("%v", err)
	}
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			logf("hostname: %v", err)
		}
	}
	procs := guest.NewProcs(true)
	sup := guest.NewSupervisor(procs, con)
	srv := guest.NewServer(procs, sup)
	srv.PID1 = true
	srv.Logf = logf
	defGrace := time.Duration(cfg.ShutdownGraceMS) * time.Millisecond
	if defGrace == 0 {
		defGrace = 10 * time.Second
	}
	powerOff := func(grace time.Duration) {
		if grace <= 0 {
			grace = defGrace
		}
		guest.PowerOff(sup, grace, logf)
	}
	srv.PowerOff = powerOff

	// Signals: SIGTERM/SIGPWR from inside the guest, SIGINT for ctrl-alt-del.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	go func() { <-sigs; powerOff(0) }()
	go func() {
		// evdev nodes appear shortly after the modules load.
		<-modulesDone
		for i := 0; i < 50; i++ {
			if guest.WatchPowerButton(func() { powerOff(0) }) > 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		logf("no input devices: the ACPI power button will not work (evdev/button modules missing?)")
	}()

	go func() {
		path := portName
		if path[0] != '/' {
			path, err = guest.PortPath(portName, 60*time.Second)
			if err != nil {
				logf("%v", err)
				return
			}
		}
		logf("serving %s (%.2fs after start)", path, time.Since(start).Seconds())
		if err := srv.ServePort(path); err != nil {
			logf("%v", err)
		}
	}()

	<-modulesDone
	ctx := context.Background()
	if err := guest.ConfigureNetwork(ctx, cfg, 10*time.Second); err != nil {
		logf("network: %v", err)
	}
	if err := guest.MountVolumes(cfg.Volumes, 10*time.Second); err != nil {
		logf("volumes: %v", err)
	}
	sup.Start(cfg.Workloads)
	select {} // PID 1 must never exit
}

func serviceMain(configPath, portName string) error {
	cfg, err := agent.LoadConfig(configPath)
	if err != nil {
		return err
	}
	procs := guest.NewProcs(false)
	sup := guest.NewSupervisor(procs, os.Stdout)
	srv := guest.NewServer(procs, sup)
	srv.PowerOff = func(grace time.Duration) {
		sup.Stop(grace)
		// Let the guest's own init shut down cleanly; fall back to a hard power-off.
		if p, err := os.StartProcess("/bin/systemctl", []string{"systemctl", "poweroff"}, &os.ProcAttr{Files: []*os.File{nil, os.Stdout, os.Stderr}}); err == nil {
			p.Wait()
			return
		}
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}
	sup.Start(cfg.Workloads)
	path := portName
	if path[0] != '/' {
		path, err = guest.PortPath(portName, 5*time.Minute)
		if err != nil {
			return err
		}
	}
	return srv.ServePort(path)
}
