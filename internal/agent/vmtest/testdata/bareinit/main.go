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
	out.WriteString("FINVIRT-BARE-READY\n")
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
