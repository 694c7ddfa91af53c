package network

import (
	"fmt"
	"runtime"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetNS names the network namespace a manager works in: Path "" is the namespace of the
// calling process (the host, for the daemon); tests pass /run/netns/<their own>.
type NetNS struct {
	Path string
}

func (ns NetNS) String() string {
	if ns.Path == "" {
		return "current netns"
	}
	return ns.Path
}

func (ns NetNS) open() (netns.NsHandle, error) {
	if ns.Path == "" {
		return netns.Get()
	}
	h, err := netns.GetFromPath(ns.Path)
	if err != nil {
		return h, fmt.Errorf("open network namespace %s: %w", ns.Path, err)
	}
	return h, nil
}

// Netlink returns a netlink handle bound to the namespace. Close it after use.
func (ns NetNS) Netlink() (*netlink.Handle, error) {
	h, err := ns.open()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", ns, err)
	}
	return nh, nil
}

// NFT returns an nftables connection bound to the namespace and a closer.
func (ns NetNS) NFT() (*nftables.Conn, func(), error) {
	h, err := ns.open()
	if err != nil {
		return nil, nil, err
	}
	// The whole ruleset goes in one batch (one sendmsg): with large sets it outgrows the
	// default socket buffer, so raise it (FORCE: root may exceed wmem_max).
	bigBuf := func(c *mdnetlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 64<<20)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting(), nftables.WithSockOptions(bigBuf))
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("nftables in %s: %w", ns, err)
	}
	return c, func() { c.CloseLasting(); h.Close() }, nil
}

// Do runs fn on an OS thread switched into the namespace, for what netlink handles cannot
// do (opening /dev/net/tun, sysctls under /proc/sys/net, binding sockets). Sockets created
// inside fn stay in the namespace after Do returns.
func (ns NetNS) Do(fn func() error) error {
	if ns.Path == "" {
		return fn()
	}
	target, err := ns.open()
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	// A fresh goroutine whose thread is thrown away if switching back fails, so no other
	// goroutine ever runs in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
