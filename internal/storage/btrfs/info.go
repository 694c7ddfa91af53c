package btrfs

import (
	"context"
	"fmt"
	"strconv"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
)

// Info reports capacity (statfs of the mounted filesystem: btrfs accounts for the profile),
// provisioned and overcommit, and per-device size, used, error counters and health.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	vols, err := p.ListVolumes(ctx)
	if err != nil {
		return storage.PoolInfo{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	obj := fmt.Sprintf("pool %q", p.cfg.Name)
	total, free, err := fsutil.Statfs(p.cfg.Path)
	if err != nil {
		return storage.PoolInfo{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot stat the filesystem")
	}
	info := storage.PoolInfo{Name: p.cfg.Name, Driver: DriverName, Path: p.cfg.Path, Profile: p.cfg.Profile,
		Capacity: total, Allocated: total - free, Volumes: len(vols), Degraded: p.degraded}
	for _, v := range vols {
		info.Provisioned += v.Size
	}
	if total > 0 {
		info.Overcommit = float64(info.Provisioned) / float64(total)
	}
	show, err := run(ctx, "btrfs", "filesystem", "show", "--raw", p.cfg.Path)
	if err != nil {
		return storage.PoolInfo{}, storage.Wrap(storage.ErrInvalid, obj, err, "", "btrfs filesystem show failed")
	}
	stats, _ := run(ctx, "btrfs", "device", "stats", p.cfg.Path)
	errs := parseStats(stats)
	for _, d := range parseShow(show) {
		d.Errors = errs[d.Path]
		switch {
		case d.Missing:
			d.Health = "missing"
			info.Degraded = true
		case d.Errors > 0:
			d.Health = "errors"
		default:
			d.Health = "ok"
		}
		info.Devices = append(info.Devices, d)
	}
	return info, nil
}

// Extend adds a device to the pool (btrfs device add), optionally rebalancing existing data
// over it. The device is checked like a new pool's devices.
func (p *Pool) Extend(ctx context.Context, device string, opts storage.ExtendOpts) error {
	if err := storage.CheckDevice(ctx, device, opts.Force); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	obj := fmt.Sprintf("pool %q", p.cfg.Name)
	if _, err := run(ctx, "btrfs", "device", "add", "-f", device, p.cfg.Path); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "btrfs device add failed")
	}
	p.cfg.Devices = append(append([]string(nil), p.cfg.Devices...), device)
	if err := p.writePoolMeta(); err != nil {
		return err
	}
	if opts.Balance {
		if _, err := run(ctx, "btrfs", "balance", "start", "--full-balance", p.cfg.Path); err != nil {
			return storage.Wrap(storage.ErrInvalid, obj, err, "run btrfs balance start again later; the device is added", "balance failed")
		}
	}
	return nil
}

var _ storage.Extender = (*Pool)(nil)

// Replace rebuilds a member onto a new device (btrfs replace start -B), then converts any chunk
// written with a lesser profile while degraded back to the pool's profile (balance with the
// soft filter, which skips chunks already right). old is a member path or a device id.
func (p *Pool) Replace(ctx context.Context, old, device string, opts storage.ExtendOpts) error {
	if err := storage.CheckDevice(ctx, device, opts.Force); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	obj := fmt.Sprintf("pool %q", p.cfg.Name)
	show, err := run(ctx, "btrfs", "filesystem", "show", "--raw", p.cfg.Path)
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "btrfs filesystem show failed")
	}
	var member *storage.DeviceInfo
	for _, d := range parseShow(show) {
		d := d
		if d.Path == old || strconv.Itoa(d.ID) == old {
			member = &d
		}
	}
	if member == nil {
		return storage.Errorf(storage.ErrNotFound, fmt.Sprintf("device %q", old), "use a path or device id from the pool's device list", "is not a member of pool %q", p.cfg.Name)
	}
	if _, err := run(ctx, "btrfs", "replace", "start", "-B", "-f", strconv.Itoa(member.ID), device, p.cfg.Path); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "check dmesg; the pool is unchanged if the replace did not start", "btrfs replace failed")
	}
	if p.cfg.Profile != "single" {
		conv := "convert=" + p.cfg.Profile + ",soft"
		if _, err := run(ctx, "btrfs", "balance", "start", "-d"+conv, "-m"+conv, p.cfg.Path); err != nil {
			return storage.Wrap(storage.ErrInvalid, obj, err, "run btrfs balance again later; the device is replaced", "profile restore balance failed")
		}
	}
	// The member list is now what btrfs reports (the replaced or missing member is gone).
	show, err = run(ctx, "btrfs", "filesystem", "show", "--raw", p.cfg.Path)
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "btrfs filesystem show failed")
	}
	var devs []string
	for _, d := range parseShow(show) {
		if !d.Missing {
			devs = append(devs, d.Path)
		}
	}
	p.cfg.Devices = devs
	p.degraded = false
	return p.writePoolMeta()
}

var _ storage.Replacer = (*Pool)(nil)
