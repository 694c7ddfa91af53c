// Command testinit is the /init of the compute test appliances: it prints a marker on the
// console, optionally a tick counter every 100 ms, obeys line commands on the console and
// powers off on the ACPI power button. It is built static (CGO_ENABLED=0) by testvm.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const marker = "FINVIRT-TESTINIT-READY"

func main() {
	os.Mkdir("/proc", 0o755)
	os.Mkdir("/sys", 0o755)
	os.Mkdir("/dev", 0o755)
	syscall.Mount("proc", "/proc", "proc", 0, "")
	syscall.Mount("sysfs", "/sys", "sysfs", 0, "")
	syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	start := time.Now()
	// Modules and the power button first: the marker promises the guest reacts to ACPI.
	loadModules()
	watchPowerButton()
	fmt.Printf("\n%s\n", marker)

	cmdline, _ := os.ReadFile("/proc/cmdline")
	if strings.Contains(string(cmdline), "finvirt.ticks=1") {
		go func() {
			for n := 1; ; n++ {
				time.Sleep(100 * time.Millisecond)
				fmt.Printf("tick %d %d\n", n, time.Since(start).Milliseconds())
			}
		}()
	}

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(in.Text()), " ")
		switch cmd {
		case "poweroff":
			poweroff("command")
		case "echo":
			fmt.Printf("ECHO %s\n", arg)
		case "disks":
			ents, _ := os.ReadDir("/sys/block")
			var names []string
			for _, e := range ents {
				serial, _ := os.ReadFile("/sys/block/" + e.Name() + "/serial")
				names = append(names, e.Name()+"="+strings.TrimSpace(string(serial)))
			}
			fmt.Printf("DISKS [%s]\n", strings.Join(names, " "))
		case "uptime":
			fmt.Printf("UPTIME %d\n", time.Since(start).Milliseconds())
		}
	}
	select {}
}

// loadModules inserts /lib/m/*.ko in name order (the builder numbers them in dependency order).
func loadModules() {
	mods, _ := filepath.Glob("/lib/m/*.ko")
	sort.Strings(mods)
	for _, m := range mods {
		f, err := os.Open(m)
		if err != nil {
			continue
		}
		empty := []byte{0}
		_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafePtr(empty)), 0)
		if e != 0 && e != syscall.EEXIST {
			fmt.Printf("module %s: %v\n", filepath.Base(m), e)
		}
		f.Close()
	}
}

// watchPowerButton reads every input device; it returns once one exists (the ACPI button
// registers while button.ko loads) or after 5 s, and keeps scanning in the background.
func watchPowerButton() {
	seen := map[string]bool{}
	scan := func() int {
		evs, _ := filepath.Glob("/dev/input/event*")
		for _, ev := range evs {
			if !seen[ev] {
				seen[ev] = true
				go readEvents(ev)
			}
		}
		return len(seen)
	}
	for i := 0; i < 50 && scan() == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	go func() {
		for i := 0; i < 600; i++ {
			scan()
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func readEvents(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	buf := make([]byte, 24) // struct input_event on x86_64
	for {
		if _, err := f.Read(buf); err != nil {
			return
		}
		typ := binary.LittleEndian.Uint16(buf[16:])
		code := binary.LittleEndian.Uint16(buf[18:])
		val := int32(binary.LittleEndian.Uint32(buf[20:]))
		if typ == 1 && code == 116 && val == 1 { // EV_KEY, KEY_POWER, press
			poweroff("power button")
		}
	}
}

func poweroff(why string) {
	fmt.Printf("POWEROFF %s\n", why)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
