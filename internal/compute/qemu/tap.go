package qemu

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/finvirt/finvirt/internal/network"
)

// openTap opens the existing tap device name inside the network namespace at nsPath and
// returns the queue's file, for QEMU's -netdev tap,fd=N. The flags match how the network
// layer creates taps (no packet info, virtio-net header), so QEMU uses the vnet header as it
// would when opening the tap by name. network.NetNS.Do switches a locked thread into the
// namespace; the file stays bound to the device after the thread leaves.
func openTap(nsPath, name string) (*os.File, error) {
	ns := network.NetNS{Path: nsPath}
	// TUNSETIFF on a name that does not exist would create a new, unbridged tap and the guest
	// would boot cut off: the tap must already be there, made by the network layer.
	h, err := ns.Netlink()
	if err != nil {
		return nil, fmt.Errorf("tap %s: netlink in %s: %w", name, nsPath, err)
	}
	l, err := h.LinkByName(name)
	h.Close()
	if err != nil {
		return nil, fmt.Errorf("tap %s does not exist in network namespace %s (was the NIC detached?): %w", name, nsPath, err)
	}
	if t, ok := l.(*netlink.Tuntap); !ok || t.Mode != netlink.TUNTAP_MODE_TAP {
		return nil, fmt.Errorf("%s in network namespace %s is a %s device, not a tap", name, nsPath, l.Type())
	}
	var f *os.File
	err = ns.Do(func() (err error) {
		f, err = tunAttach(name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tap %s in %s: %w", name, nsPath, err)
	}
	return f, nil
}

// tunAttach attaches a new file to the tap device name of the current namespace.
func tunAttach(name string) (*os.File, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name %q is too long", name)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var ifr [unix.IFNAMSIZ + 64]byte
	copy(ifr[:], name)
	*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("attach to tap (TUNSETIFF): %w (does the tap exist in that namespace?)", errno)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil
}
