// Command bareinit is the /init of the bare-boot benchmark baseline: it prints a marker on the
// console and powers off, so the time to the marker is the cost of QEMU + kernel alone.
package main

import (
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	out := os.Stdout
	if f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		out = f
	}
	// Mounting /proc costs nothing measurable and gives the guest-side time for comparisons.
	os.Mkdir("/proc", 0o755)
	unix.Mount("proc", "/proc", "proc", 0, "")
	up, _ := os.ReadFile("/proc/uptime")
	out.WriteString("FINVIRT-BARE-READY uptime " + string(up))
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
