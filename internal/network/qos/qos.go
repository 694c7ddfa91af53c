// Package qos limits the bandwidth of a NIC with a token bucket (TBF) qdisc set over
// netlink on the host side of the NIC: the qdisc shapes what the host sends into the
// device, that is traffic towards the instance. Traffic from the instance is not policed:
// this host kernel has neither act_police nor cls_matchall/cls_basic (probed: "Failed to
// load TC action module"), so an ingress policer cannot be installed.
package qos

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
)

// Limit is a NIC bandwidth limit.
type Limit struct {
	Mbit int
}

// Apply replaces the root qdisc of link with a TBF at l.Mbit; Mbit 0 removes the limit.
// Applying the same limit twice is a no-op in effect (QdiscReplace).
func Apply(h *netlink.Handle, link netlink.Link, l Limit) error {
	if l.Mbit < 0 {
		return fmt.Errorf("bandwidth limit %d Mbit/s on %s must not be negative", l.Mbit, link.Attrs().Name)
	}
	if l.Mbit == 0 {
		return Clear(h, link)
	}
	rate := uint64(l.Mbit) * 1000 * 1000 / 8 // bytes/s
	// Burst: enough for ~1 ms at the rate but at least a few jumbo frames, otherwise the
	// bucket cannot hold one GSO segment and throughput collapses far below the rate.
	burst := uint32(rate / 1000)
	if burst < 64*1024 {
		burst = 64 * 1024
	}
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(1, 0),
			Parent:    netlink.HANDLE_ROOT,
		},
		Rate:   rate,
		Buffer: burst,
		// Queue up to ~50 ms of traffic before dropping.
		Limit: uint32(rate/20) + burst,
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("set %d Mbit/s TBF on %s: %w", l.Mbit, link.Attrs().Name, err)
	}
	return nil
}

// Clear removes a TBF root qdisc set by Apply; no qdisc is fine.
func Clear(h *netlink.Handle, link netlink.Link) error {
	qs, err := h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("list qdiscs of %s: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		if _, ok := q.(*netlink.Tbf); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
			if err := h.QdiscDel(q); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove TBF from %s: %w", link.Attrs().Name, err)
			}
		}
	}
	return nil
}

// Current returns the TBF rate on link in Mbit/s, 0 when unlimited.
func Current(h *netlink.Handle, link netlink.Link) (int, error) {
	qs, err := h.QdiscList(link)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if t, ok := q.(*netlink.Tbf); ok && q.Attrs().Parent == netlink.HANDLE_ROOT {
			return int(t.Rate * 8 / 1000 / 1000), nil
		}
	}
	return 0, nil
}
