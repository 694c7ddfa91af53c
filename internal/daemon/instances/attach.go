package instances

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/daemon/networks"
	"github.com/finvirt/finvirt/internal/daemon/pools"
	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/store"
)

// Volumes and NICs of instances: the glue between this subsystem, the storage subsystem
// (pools.Attach/Detach: the volume record's attached_to) and the network subsystem
// (networks.AttachInstanceNIC: tap, MAC, address). Appliances (microvm) have no hot-plug bus:
// their disks and NICs change only while they are stopped, and apply at the next boot.

func (s *Subsystem) attachRoutes() []*daemon.Route {
	P := daemon.QueryProject
	const n = "/1.0/instances/{name}"
	return []*daemon.Route{
		{Method: "POST", Path: n + "/volumes", Summary: "Attach a project volume (hot-plug on a running full instance; appliances: while stopped)", Perm: auth.PermProjectWrite, Project: P, Action: "instance.volume-attach", Body: api.InstanceVolume{}, Reply: api.Instance{}, Handler: s.handleVolumeAttach},
		{Method: "DELETE", Path: n + "/volumes/{volume}", Summary: "Detach a volume (hot-unplug on a running full instance; appliances: while stopped)", Perm: auth.PermProjectWrite, Project: P, Action: "instance.volume-detach", Reply: api.Instance{}, Handler: s.handleVolumeDetach},
	}
}

// validateAttachments checks the volumes and networks of a launch request (names, duplicate
// entries, mountpoints) before anything is stored; whether they exist and are free is
// checked when they are attached.
func validateAttachments(name string, vols []api.InstanceVolume, nets []string) ([]api.InstanceVolume, error) {
	seen, mounts := map[string]bool{}, map[string]bool{}
	out := make([]api.InstanceVolume, 0, len(vols))
	for _, v := range vols {
		if err := daemon.ValidName("volume", v.Volume); err != nil {
			return nil, daemon.BadRequest("instance %s: %v", name, err)
		}
		if seen[v.Volume] {
			return nil, daemon.BadRequest("instance %s: volume %s is listed twice", name, v.Volume)
		}
		seen[v.Volume] = true
		if v.Mountpoint != "" {
			if !path.IsAbs(v.Mountpoint) || path.Clean(v.Mountpoint) != v.Mountpoint || v.Mountpoint == "/" {
				return nil, daemon.BadRequest("instance %s: volume %s: mountpoint %q must be a clean absolute path other than / (e.g. /mnt/data)", name, v.Volume, v.Mountpoint)
			}
			if mounts[v.Mountpoint] {
				return nil, daemon.BadRequest("instance %s: mountpoint %s is used twice", name, v.Mountpoint)
			}
			mounts[v.Mountpoint] = true
		}
		out = append(out, api.InstanceVolume{Volume: v.Volume, Mountpoint: v.Mountpoint, Serial: pools.Serial(v.Volume)})
	}
	nseen := map[string]bool{}
	for _, n := range nets {
		if err := daemon.ValidName("network", n); err != nil {
			return nil, daemon.BadRequest("instance %s: %v", name, err)
		}
		if nseen[n] {
			return nil, daemon.BadRequest("instance %s: network %s is listed twice: an instance gets one NIC per network", name, n)
		}
		nseen[n] = true
	}
	return out, nil
}

// attachAll attaches the volumes of in and a NIC on each network; rv undoes it all. It
// returns the disks for the spec; in.NICs is filled.
func (s *Subsystem) attachAll(ctx context.Context, in *api.Instance, nets []string, rv *revert.Reverter) ([]compute.DiskSpec, error) {
	var disks []compute.DiskSpec
	for _, v := range in.Volumes {
		ds, err := pools.Attach(ctx, s.d, in.Project, v.Volume, in.Name)
		if err != nil {
			return nil, fmt.Errorf("attach volume %s: %w", v.Volume, err)
		}
		vol := v.Volume
		rv.Add(func() { pools.Detach(context.Background(), s.d, in.Project, vol, in.Name) })
		disks = append(disks, ds)
	}
	for i, n := range nets {
		nic, err := s.attachNIC(ctx, in, n, i)
		if err != nil {
			return nil, err
		}
		id := nic.ID
		rv.Add(func() { networks.DetachInstanceNIC(context.Background(), s.d, in.Project, id) })
		in.NICs = append(in.NICs, nic)
	}
	return disks, nil
}

func (s *Subsystem) attachNIC(ctx context.Context, in *api.Instance, network string, i int) (api.InstanceNIC, error) {
	subnet, gw, err := networks.InstanceNetwork(ctx, s.d, in.Project, network)
	if err != nil {
		return api.InstanceNIC{}, fmt.Errorf("network %s: %w", network, err)
	}
	id := fmt.Sprintf("%s.%d", in.ID, i)
	tap, mac, ip, err := networks.AttachInstanceNIC(ctx, s.d, in.Project, network, in.Name, id)
	if err != nil {
		return api.InstanceNIC{}, fmt.Errorf("attach NIC on network %s: %w", network, err)
	}
	nic := api.InstanceNIC{Network: network, ID: id, Tap: tap, MAC: mac, Gateway: gw}
	if pfx, err := netip.ParsePrefix(subnet); err == nil && ip != "" && ip != "invalid IP" {
		nic.Address = fmt.Sprintf("%s/%d", ip, pfx.Bits())
	}
	return nic, nil
}

// releaseAll detaches the volumes and NICs of a deleted instance (errors are logged: the
// instance is gone either way).
func (s *Subsystem) releaseAll(ctx context.Context, in api.Instance) {
	for _, v := range in.Volumes {
		if err := pools.Detach(ctx, s.d, in.Project, v.Volume, in.Name); err != nil {
			s.log.Warn("detach volume of deleted instance", "instance", in.Name, "volume", v.Volume, "err", err)
		}
	}
	for _, n := range in.NICs {
		if err := networks.DetachInstanceNIC(ctx, s.d, in.Project, n.ID); err != nil {
			s.log.Warn("detach NIC of deleted instance", "instance", in.Name, "nic", n.ID, "err", err)
		}
	}
}

// currentDisks asks the storage subsystem for the disks of in's volumes as they are now.
func (s *Subsystem) currentDisks(ctx context.Context, in api.Instance) ([]compute.DiskSpec, error) {
	var out []compute.DiskSpec
	for _, v := range in.Volumes {
		ds, err := pools.DiskSpec(ctx, s.d, in.Project, v.Volume, in.Name)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Volume, err)
		}
		out = append(out, ds)
	}
	return out, nil
}

// refreshDisks gives a stopped VM the current image of each volume (a snapshot or restore
// moves a volume's active layer).
func (s *Subsystem) refreshDisks(ctx context.Context, in api.Instance) error {
	disks, err := s.currentDisks(ctx, in)
	if err != nil {
		return err
	}
	for _, ds := range disks {
		if err := s.drv.DetachDisk(ctx, in.ID, ds.ID); err != nil && !errors.Is(err, compute.ErrNotFound) {
			s.log.Debug("detach disk before refresh", "instance", in.Name, "disk", ds.ID, "err", err)
		}
		if err := s.drv.AttachDisk(ctx, in.ID, ds); err != nil {
			return fmt.Errorf("volume disk %s: %w", ds.ID, err)
		}
	}
	return nil
}

// guestConfig adds volume mounts and static NIC settings to the agent config.
func guestConfig(cfg *agent.Config, in api.Instance) {
	for _, v := range in.Volumes {
		if v.Mountpoint != "" {
			cfg.Volumes = append(cfg.Volumes, agent.Volume{Serial: pools.Serial(v.Volume), MountPoint: v.Mountpoint, FSType: "ext4"})
		}
	}
	gw := false
	for _, n := range in.NICs {
		nic := agent.NIC{MAC: n.MAC, Address: n.Address}
		if n.Address == "" {
			nic.DHCP = true
		} else if n.Gateway != "" && !gw {
			nic.Gateway, gw = n.Gateway, true
		}
		cfg.NICs = append(cfg.NICs, nic)
	}
}

// nicSpecs are the VM's NICs; when the network subsystem works in another namespace the
// driver opens the taps there and QEMU inherits them.
func (s *Subsystem) nicSpecs(in api.Instance) []compute.NICSpec {
	var out []compute.NICSpec
	ns := networks.NetNSPath(s.d)
	for i, n := range in.NICs {
		out = append(out, compute.NICSpec{ID: fmt.Sprintf("net%d", i), Tap: n.Tap, MAC: n.MAC, NetNS: ns})
	}
	return out
}

func running(in api.Instance) bool {
	switch in.Status {
	case api.InstanceStopped, api.InstanceError:
		return false
	}
	return true
}

func (s *Subsystem) handleVolumeAttach(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	var req api.InstanceVolume
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	for _, v := range in.Volumes {
		if v.Volume == req.Volume {
			return daemon.Conflict("volume %s is already attached to instance %s", req.Volume, name)
		}
	}
	if _, err := validateAttachments(name, []api.InstanceVolume{req}, nil); err != nil {
		return err
	}
	key := recordKey(project, name)
	if !s.acquire(key, "volume attach") {
		return busyErr(in, s.busyWith(key))
	}
	defer s.release(key)
	if in, err = s.getRecord(r.Context(), project, name); err != nil {
		return err
	}
	vols, err := validateAttachments(name, append(append([]api.InstanceVolume{}, in.Volumes...), req), nil)
	if err != nil {
		return err // e.g. the mountpoint is taken by another volume of the instance
	}
	live := running(in)
	if live && in.Profile != api.ImageFull {
		return daemon.Conflict("instance %s is an appliance and is %s: stop the instance first; appliances get disks at boot ('finvirt stop %s%s')", name, in.Status, name, projectFlag(project))
	}
	rv := revert.New()
	defer rv.Fail()
	ds, err := pools.Attach(r.Context(), d, project, req.Volume, name)
	if err != nil {
		return err
	}
	rv.Add(func() { pools.Detach(context.Background(), d, project, req.Volume, name) })
	if err := s.drv.AttachDisk(r.Context(), in.ID, ds); err != nil {
		return daemon.Conflict("instance %s: attach volume %s: %v", name, req.Volume, err)
	}
	rv.Add(func() { s.drv.DetachDisk(context.Background(), in.ID, ds.ID) })
	var out api.Instance
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		e, err := tx.Get(key)
		if err != nil {
			return err
		}
		cur, err := decode(e)
		if err != nil {
			return err
		}
		cur.Volumes = vols
		out = cur
		return tx.CompareAndSwap(key, encode(cur), e.ModRev)
	})
	if err != nil {
		return err
	}
	rv.Success()
	d.Lifecycle(rq, "instance-volume-attached", project, instanceSource(project, name))
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *Subsystem) handleVolumeDetach(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name, vol := rq.Project(), r.PathValue("name"), r.PathValue("volume")
	rq.SetTarget("instance/" + project + "/" + name)
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	key := recordKey(project, name)
	if !s.acquire(key, "volume detach") {
		return busyErr(in, s.busyWith(key))
	}
	defer s.release(key)
	if in, err = s.getRecord(r.Context(), project, name); err != nil {
		return err
	}
	var rest []api.InstanceVolume
	found := false
	for _, v := range in.Volumes {
		if v.Volume == vol {
			found = true
		} else {
			rest = append(rest, v)
		}
	}
	if !found {
		return daemon.NotFound("volume %s is not attached to instance %s in project %s", vol, name, project)
	}
	if running(in) && in.Profile != api.ImageFull {
		return daemon.Conflict("instance %s is an appliance and is %s: stop the instance first; appliances get disks at boot ('finvirt stop %s%s')", name, in.Status, name, projectFlag(project))
	}
	if err := s.drv.DetachDisk(r.Context(), in.ID, pools.DiskID(vol)); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return daemon.Conflict("instance %s: detach volume %s: %v", name, vol, err)
	}
	var out api.Instance
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		e, err := tx.Get(key)
		if err != nil {
			return err
		}
		cur, err := decode(e)
		if err != nil {
			return err
		}
		cur.Volumes = rest
		out = cur
		return tx.CompareAndSwap(key, encode(cur), e.ModRev)
	})
	if err != nil {
		return err
	}
	if err := pools.Detach(r.Context(), d, project, vol, name); err != nil {
		return err
	}
	d.Lifecycle(rq, "instance-volume-detached", project, instanceSource(project, name))
	return daemon.WriteJSON(w, http.StatusOK, out)
}
