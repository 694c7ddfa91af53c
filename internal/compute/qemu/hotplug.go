package qemu

import (
	"context"

	"github.com/finvirt/finvirt/internal/compute"
)

// AttachDisk implements compute.Driver.
func (d *Driver) AttachDisk(ctx context.Context, name string, disk compute.DiskSpec) error {
	return compute.ErrNotSupported
}

// DetachDisk implements compute.Driver.
func (d *Driver) DetachDisk(ctx context.Context, name, diskID string) error {
	return compute.ErrNotSupported
}

// AttachNIC implements compute.Driver.
func (d *Driver) AttachNIC(ctx context.Context, name string, nic compute.NICSpec) error {
	return compute.ErrNotSupported
}

// DetachNIC implements compute.Driver.
func (d *Driver) DetachNIC(ctx context.Context, name, nicID string) error {
	return compute.ErrNotSupported
}
