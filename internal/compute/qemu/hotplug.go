package qemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/qmp"
	"github.com/finvirt/finvirt/internal/revert"
)

// unplugTimeout bounds the wait for the guest to release a device (PCIe native hot-unplug
// gives the guest a 5 s grace period; TCG is slow).
const unplugTimeout = 90 * time.Second

// hotplugTarget checks that name can take a device change now. It returns the QMP client when
// the instance runs (a live change), nil when it is stopped (the change applies at next boot).
func (d *Driver) hotplugTarget(in *instance, what string) (*qmp.Client, error) {
	st, _, c := in.snapshot()
	switch st {
	case compute.StateStopped, compute.StateError:
		return nil, nil
	case compute.StateRunning, compute.StatePaused:
	default:
		return nil, fmt.Errorf("%w: instance %q is %s; wait until it runs or stops to change its %s", compute.ErrState, in.name, st, what)
	}
	if in.spec.Profile == compute.ProfileAppliance {
		return nil, fmt.Errorf("%w: instance %q is an appliance (microvm has no hot-plug bus): stop it, change its %s, and start it again, or use profile full", compute.ErrNotSupported, in.name, what)
	}
	return c, nil
}

// diskIndex is the position of disk id in the spec (caller holds in.op).
func (in *instance) diskIndex(id string) (int, error) {
	for i, x := range in.spec.Disks {
		if x.ID == id {
			return i, nil
		}
	}
	return -1, fmt.Errorf("%w: instance %q has no disk %q", compute.ErrNotFound, in.name, id)
}

func (in *instance) idTaken(id string) bool {
	for _, x := range in.spec.Disks {
		if x.ID == id {
			return true
		}
	}
	for _, x := range in.spec.NICs {
		if x.ID == id {
			return true
		}
	}
	return false
}

// setDisks and setNICs change the spec under in.mu: Info may read it without the op lock.
// Caller holds in.op.
func (in *instance) setDisks(d []compute.DiskSpec) {
	in.mu.Lock()
	in.spec.Disks = d
	in.mu.Unlock()
}

func (in *instance) setNICs(n []compute.NICSpec) {
	in.mu.Lock()
	in.spec.NICs = n
	in.mu.Unlock()
}

// ports reads which spare root port each hot-plugged device uses.
func (in *instance) ports() map[string]string {
	m := map[string]string{}
	if b, err := os.ReadFile(in.l.Ports); err == nil {
		json.Unmarshal(b, &m)
	}
	return m
}

func (in *instance) freePort(ports map[string]string) (string, error) {
	used := map[string]bool{}
	for _, p := range ports {
		used[p] = true
	}
	for i := 0; i < HotplugPorts; i++ {
		if p := fmt.Sprintf("hp%d", i); !used[p] {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: instance %q: all %d hot-plug ports are in use; detach a device or restart the instance (devices move to their own ports at boot)", compute.ErrState, in.name, HotplugPorts)
}

func (in *instance) savePorts(m map[string]string) error {
	b, _ := json.Marshal(m)
	return writeFileAtomic(in.l.Ports, b, 0o600)
}

func qmpDo(ctx context.Context, c *qmp.Client, cmd string, args any) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.Execute(cctx, cmd, args)
	return err
}

// plugStep is one QMP command of a hot-plug and the command that undoes it.
type plugStep struct {
	cmd, undo      string
	args, undoArgs any
	what           string // error prefix ("add secret: "), usually empty
}

// plug hot-plugs device dev of a running instance: it takes a spare root port, runs the steps
// the port gives (registering each undo with r) and records the port. obj names the device
// in errors ("disk d1").
func (in *instance) plug(ctx context.Context, c *qmp.Client, r *revert.Reverter, obj, dev string, steps func(port string) []plugStep) error {
	ports := in.ports()
	port, err := in.freePort(ports)
	if err != nil {
		return err
	}
	for _, st := range steps(port) {
		if err := qmpDo(ctx, c, st.cmd, st.args); err != nil {
			return fmt.Errorf("instance %q: %s: %s%w", in.name, obj, st.what, err)
		}
		r.Add(func() { qmpDo(context.Background(), c, st.undo, st.undoArgs) })
	}
	ports[dev] = port
	return in.savePorts(ports)
}

// releasePort forgets the root port of an unplugged device.
func (in *instance) releasePort(dev string) {
	ports := in.ports()
	delete(ports, dev)
	in.savePorts(ports)
}

// AttachDisk implements compute.Driver: blockdev-add of the file and format nodes (LUKS keys
// through a QMP secret object, base64, never on a command line), then device_add of a
// virtio-blk-pci with the disk's serial on a spare PCIe root port.
func (d *Driver) AttachDisk(ctx context.Context, name string, disk compute.DiskSpec) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := compute.ValidateDisk(name, disk); err != nil {
		return err
	}
	if in.idTaken(disk.ID) {
		return fmt.Errorf("%w: instance %q already has a disk or nic %q; pick another id", compute.ErrInvalid, name, disk.ID)
	}
	if _, err := os.Stat(disk.Path); err != nil {
		return fmt.Errorf("%w: instance %q: disk %s: %v", compute.ErrInvalid, name, disk.ID, err)
	}
	c, err := d.hotplugTarget(in, "disks")
	if err != nil {
		return err
	}
	r := revert.New()
	defer r.Fail()
	if c != nil {
		err := in.plug(ctx, c, r, "disk "+disk.ID, "disk-"+disk.ID, func(port string) []plugStep {
			var steps []plugStep
			if disk.Secret != nil {
				steps = append(steps, plugStep{cmd: "object-add", args: map[string]any{"qom-type": "secret", "id": secretID(disk),
					"format": "base64", "data": base64.StdEncoding.EncodeToString(disk.Secret.Key)},
					undo: "object-del", undoArgs: map[string]any{"id": secretID(disk)}, what: "add secret: "})
			}
			file, format := diskNodes(disk)
			wc := "on"
			if disk.Cache == compute.CacheWritethrough {
				wc = "off"
			}
			return append(steps,
				plugStep{cmd: "blockdev-add", args: file, undo: "blockdev-del", undoArgs: map[string]any{"node-name": "file-" + disk.ID}},
				plugStep{cmd: "blockdev-add", args: format, undo: "blockdev-del", undoArgs: map[string]any{"node-name": "drive-" + disk.ID}},
				plugStep{cmd: "device_add", args: map[string]any{"driver": "virtio-blk-pci", "id": "disk-" + disk.ID,
					"drive": "drive-" + disk.ID, "serial": serialOf(disk), "write-cache": wc, "bus": port},
					undo: "device_del", undoArgs: map[string]any{"id": "disk-" + disk.ID}})
		})
		if err != nil {
			return err
		}
	}
	old := in.spec.Disks
	in.setDisks(append(append([]compute.DiskSpec(nil), old...), disk))
	if err := in.saveSpec(); err != nil {
		in.setDisks(old)
		return err
	}
	r.Success()
	return nil
}

// unplug removes device id from a running guest and waits for the guest to let go of it
// (DEVICE_DELETED); only then may its backend be deleted.
func unplug(ctx context.Context, c *qmp.Client, name, id string) error {
	sub := c.Subscribe("DEVICE_DELETED")
	defer sub.Close()
	if err := qmpDo(ctx, c, "device_del", map[string]any{"id": id}); err != nil {
		return fmt.Errorf("instance %q: %w", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, unplugTimeout)
	defer cancel()
	_, err := sub.Wait(wctx, func(ev qmp.Event) bool {
		var data struct {
			Device string `json:"device"`
		}
		json.Unmarshal(ev.Data, &data)
		return data.Device == id
	})
	if err != nil {
		return fmt.Errorf("instance %q: guest did not release %s within %s (does the guest OS handle PCIe hot-unplug?): %w", name, id, unplugTimeout, err)
	}
	return nil
}

// DetachDisk implements compute.Driver: device_del, wait for DEVICE_DELETED, blockdev-del.
func (d *Driver) DetachDisk(ctx context.Context, name, diskID string) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := in.diskIndex(diskID)
	if err != nil {
		return err
	}
	disk := in.spec.Disks[idx]
	c, err := d.hotplugTarget(in, "disks")
	if err != nil {
		return err
	}
	if c != nil {
		if err := unplug(ctx, c, name, "disk-"+diskID); err != nil {
			return err
		}
		// Live-snapshot overlays sit above the disk's own nodes: delete them newest first.
		overlays, err := overlayNodes(ctx, c, diskID)
		if err != nil {
			return fmt.Errorf("instance %q: disk %s: %w", name, diskID, err)
		}
		var nodes []string
		for _, o := range overlays {
			nodes = append(nodes, o.name)
		}
		for _, node := range append(nodes, "drive-"+diskID, "file-"+diskID) {
			if err := qmpDo(ctx, c, "blockdev-del", map[string]any{"node-name": node}); err != nil {
				return fmt.Errorf("instance %q: disk %s: %w", name, diskID, err)
			}
		}
		if disk.Secret != nil {
			qmpDo(ctx, c, "object-del", map[string]any{"id": secretID(disk)})
		}
		in.releasePort("disk-" + diskID)
	}
	in.setDisks(append(append([]compute.DiskSpec(nil), in.spec.Disks[:idx]...), in.spec.Disks[idx+1:]...))
	return in.saveSpec()
}

// AttachNIC implements compute.Driver: netdev_add tap + device_add virtio-net-pci.
func (d *Driver) AttachNIC(ctx context.Context, name string, nic compute.NICSpec) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := compute.ValidateNIC(name, nic); err != nil {
		return err
	}
	if in.idTaken(nic.ID) {
		return fmt.Errorf("%w: instance %q already has a disk or nic %q; pick another id", compute.ErrInvalid, name, nic.ID)
	}
	c, err := d.hotplugTarget(in, "nics")
	if err != nil {
		return err
	}
	if c != nil && nic.NetNS != "" {
		// Handing QEMU a descriptor at run time needs SCM_RIGHTS over QMP (getfd), which this
		// driver does not do; at boot the tap fd is inherited instead.
		return fmt.Errorf("%w: instance %q: hot-plug of a NIC whose tap is in network namespace %s; stop the instance, attach, start", compute.ErrNotSupported, name, nic.NetNS)
	}
	r := revert.New()
	defer r.Fail()
	if c != nil {
		err := in.plug(ctx, c, r, "nic "+nic.ID, "nic-"+nic.ID, func(port string) []plugStep {
			return []plugStep{
				{cmd: "netdev_add", args: map[string]any{"type": "tap", "id": "net-" + nic.ID, "ifname": nic.Tap,
					"script": "no", "downscript": "no"}, undo: "netdev_del", undoArgs: map[string]any{"id": "net-" + nic.ID}},
				{cmd: "device_add", args: map[string]any{"driver": "virtio-net-pci", "id": "nic-" + nic.ID,
					"netdev": "net-" + nic.ID, "mac": nic.MAC, "bus": port}, undo: "device_del", undoArgs: map[string]any{"id": "nic-" + nic.ID}},
			}
		})
		if err != nil {
			return err
		}
	}
	old := in.spec.NICs
	in.setNICs(append(append([]compute.NICSpec(nil), old...), nic))
	if err := in.saveSpec(); err != nil {
		in.setNICs(old)
		return err
	}
	r.Success()
	return nil
}

// DetachNIC implements compute.Driver.
func (d *Driver) DetachNIC(ctx context.Context, name, nicID string) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	idx := -1
	for i, x := range in.spec.NICs {
		if x.ID == nicID {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("%w: instance %q has no nic %q", compute.ErrNotFound, name, nicID)
	}
	c, err := d.hotplugTarget(in, "nics")
	if err != nil {
		return err
	}
	if c != nil {
		if err := unplug(ctx, c, name, "nic-"+nicID); err != nil {
			return err
		}
		if err := qmpDo(ctx, c, "netdev_del", map[string]any{"id": "net-" + nicID}); err != nil {
			return fmt.Errorf("instance %q: nic %s: %w", name, nicID, err)
		}
		in.releasePort("nic-" + nicID)
	}
	in.setNICs(append(append([]compute.NICSpec(nil), in.spec.NICs[:idx]...), in.spec.NICs[idx+1:]...))
	return in.saveSpec()
}
