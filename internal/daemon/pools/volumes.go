package pools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/quota"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/store"
)

func poolVolumeName(project, name string) string { return project + "_" + name }

func volumeKey(project, name string) string { return volumePrefix + project + "/" + name }

// volumeRoutes are project-scoped (?project=P). Deleting a volume, deleting a snapshot and
// restoring one are four-eyes destructive in protected projects.
func (s *subsystem) volumeRoutes() []*daemon.Route {
	q := daemon.QueryProject
	tgt := func(r *http.Request) string { p, _ := q(nil, r); return "volume/" + p + "/" + r.PathValue("name") }
	return []*daemon.Route{
		{Method: "GET", Path: "/1.0/volumes", Summary: "List a project's volumes (provisioned vs allocated)", Perm: auth.PermProjectRead, Project: q, Reply: []api.Volume{}, Handler: s.handleVolumeList},
		{Method: "POST", Path: "/1.0/volumes", Summary: "Create a thin volume (optionally encrypted)", Perm: auth.PermProjectWrite, Project: q, Action: "volume.create", Body: api.VolumesPost{}, Reply: api.Volume{}, Status: 201, Handler: s.handleVolumeCreate},
		{Method: "POST", Path: "/1.0/volumes/import", Summary: "Import a raw, qcow2, VMDK, VHD/VHDX or OVA disk (body: the file; ?name=&pool=) as an operation", Perm: auth.PermProjectWrite, Project: q, Action: "volume.import", StreamBody: true, Reply: api.Operation{}, Status: 202, Handler: s.handleVolumeImport},
		{Method: "GET", Path: "/1.0/volumes/{name}", Summary: "Show a volume", Perm: auth.PermProjectRead, Project: q, Reply: api.Volume{}, Handler: s.handleVolumeGet},
		{Method: "DELETE", Path: "/1.0/volumes/{name}", Summary: "Delete a volume and its snapshots (refused while attached or cloned from)", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.delete", Destructive: daemon.Always, Handler: s.handleVolumeDelete},
		{Method: "POST", Path: "/1.0/volumes/{name}/resize", Summary: "Grow a volume (or shrink it above its used data)", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.resize", Body: api.VolumeResize{}, Reply: api.Volume{}, Handler: s.handleVolumeResize},
		{Method: "POST", Path: "/1.0/volumes/{name}/clone", Summary: "Clone a volume or a snapshot in O(1) (copy-on-write)", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.clone", Body: api.VolumeClone{}, Reply: api.Volume{}, Status: 201, Handler: s.handleVolumeClone},
		{Method: "GET", Path: "/1.0/volumes/{name}/export", Summary: "Export a volume's data (?format=qcow2|raw)", Perm: auth.PermProjectWrite, Project: q, Handler: s.handleVolumeExport},
		{Method: "GET", Path: "/1.0/volumes/{name}/snapshots", Summary: "List a volume's snapshots", Perm: auth.PermProjectRead, Project: q, Reply: []api.VolumeSnapshot{}, Handler: s.handleSnapshotList},
		{Method: "POST", Path: "/1.0/volumes/{name}/snapshots", Summary: "Snapshot a volume", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.snapshot", Body: api.VolumeSnapshotsPost{}, Reply: api.VolumeSnapshot{}, Status: 201, Handler: s.handleSnapshotCreate},
		{Method: "DELETE", Path: "/1.0/volumes/{name}/snapshots/{snapshot}", Summary: "Delete a snapshot", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.snapshot-delete", Destructive: daemon.Always, Handler: s.handleSnapshotDelete},
		{Method: "POST", Path: "/1.0/volumes/{name}/restore", Summary: "Restore a snapshot into its volume (data exactly as at snapshot time)", Perm: auth.PermProjectWrite, Project: q, Target: tgt, Action: "volume.restore", Destructive: daemon.Always, Body: api.VolumeRestore{}, Reply: api.Volume{}, Handler: s.handleVolumeRestore},
	}
}

func (s *subsystem) volumeRecord(ctx context.Context, project, name string) (volumeRecord, store.Entry, error) {
	var v volumeRecord
	e, err := s.d.Store().Get(ctx, volumeKey(project, name))
	if errors.Is(err, store.ErrNotFound) {
		return v, e, daemon.NotFound("volume %s not found in project %s: see 'finvirt storage volume list --project %s'", name, project, project)
	}
	if err != nil {
		return v, e, err
	}
	return v, e, json.Unmarshal(e.Value, &v)
}

// volumeInPool reads a volume's record and its open pool.
func (s *subsystem) volumeInPool(ctx context.Context, project, name string) (volumeRecord, store.Entry, storage.Pool, error) {
	rec, e, err := s.volumeRecord(ctx, project, name)
	if err != nil {
		return rec, e, nil, err
	}
	p, err := s.pool(rec.Pool)
	return rec, e, p, err
}

func (s *subsystem) view(ctx context.Context, rec volumeRecord, rev int64) (api.Volume, error) {
	out := api.Volume{Name: rec.Name, Project: rec.Project, Pool: rec.Pool, Size: rec.Size, AttachedTo: rec.AttachedTo, CreatedAt: rec.CreatedAt, Revision: rev}
	p, err := s.pool(rec.Pool)
	if err != nil {
		return out, err
	}
	v, err := p.GetVolume(ctx, poolVolumeName(rec.Project, rec.Name))
	if err != nil {
		return out, storageErr(err, poolVolumeName(rec.Project, rec.Name), rec.Name)
	}
	out.Format, out.Size, out.Allocated, out.Encrypted, out.Cache, out.Snapshots = string(v.Format), v.Size, v.Allocated, v.Encrypted, string(v.Cache), v.Snapshots
	if v.Origin != "" {
		out.Origin = strings.TrimPrefix(v.Origin, rec.Project+"_")
	}
	return out, nil
}

func (s *subsystem) handleVolumeList(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	entries, err := d.Store().List(r.Context(), volumePrefix+rq.Project()+"/")
	if err != nil {
		return err
	}
	out := make([]api.Volume, 0, len(entries))
	for _, e := range entries {
		var rec volumeRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return err
		}
		v, err := s.view(r.Context(), rec, e.ModRev)
		if err != nil {
			v.Format = "unavailable: " + err.Error()
		}
		out = append(out, v)
	}
	sortedVolumes(out)
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) handleVolumeGet(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	rec, e, err := s.volumeRecord(r.Context(), rq.Project(), r.PathValue("name"))
	if err != nil {
		return err
	}
	v, err := s.view(r.Context(), rec, e.ModRev)
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, v)
}

// precheckQuota refuses early (before any disk work) a volume that cannot fit; the
// authoritative check is AdjustUsage in the committing transaction.
func (s *subsystem) precheckQuota(ctx context.Context, project string, size uint64) error {
	p, err := s.d.GetProject(ctx, project)
	if err != nil {
		return err
	}
	if err := quota.Check(p, api.ProjectUsage{Disk: int64(size)}); err != nil {
		return daemon.Conflict("%v", err)
	}
	return nil
}

// commitNew records a volume the pool already holds, with its quota, or removes it again.
func (s *subsystem) commitNew(ctx context.Context, r *http.Request, rq *daemon.Request, p storage.Pool, rec volumeRecord) (api.Volume, error) {
	var rev int64
	err := s.d.Commit(ctx, r, rq, http.StatusCreated, func(tx store.Tx) error {
		if _, err := daemon.AdjustUsage(tx, rec.Project, api.ProjectUsage{Disk: int64(rec.Size)}); err != nil {
			return err
		}
		b, _ := json.Marshal(rec)
		if err := tx.Create(volumeKey(rec.Project, rec.Name), b); err != nil {
			if errors.Is(err, store.ErrExists) {
				return daemon.Conflict("volume %s already exists in project %s", rec.Name, rec.Project)
			}
			return err
		}
		rev = tx.Rev()
		return nil
	})
	if err != nil {
		p.DeleteVolume(context.Background(), poolVolumeName(rec.Project, rec.Name))
		return api.Volume{}, err
	}
	s.d.Lifecycle(rq, "volume-created", rec.Project, "/1.0/volumes/"+rec.Name+"?project="+rec.Project)
	return s.view(ctx, rec, rev)
}

func (s *subsystem) handleVolumeCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.VolumesPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	project := rq.Project()
	rq.SetTarget("volume/" + project + "/" + req.Name)
	if err := daemon.ValidName("volume", req.Name); err != nil {
		return err
	}
	if req.Size <= 0 {
		return daemon.BadRequest("volume %s: size must be positive (e.g. 20GiB)", req.Name)
	}
	cache, err := storage.ParseCachePolicy(req.Cache)
	if err != nil {
		return storageErr(err, "", "")
	}
	if _, _, err := s.volumeRecord(r.Context(), project, req.Name); err == nil {
		return daemon.Conflict("volume %s already exists in project %s", req.Name, project)
	}
	p, err := s.pool(req.Pool)
	if err != nil {
		return err
	}
	if err := s.precheckQuota(r.Context(), project, uint64(req.Size)); err != nil {
		return err
	}
	v, err := p.CreateVolume(r.Context(), poolVolumeName(project, req.Name), uint64(req.Size), storage.VolumeOpts{Encrypted: req.Encrypted, Cache: cache})
	if err != nil {
		return storageErr(err, poolVolumeName(project, req.Name), req.Name)
	}
	out, err := s.commitNew(r.Context(), r, rq, p, volumeRecord{Name: req.Name, Project: project, Pool: req.Pool, Size: v.Size, CreatedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusCreated, out)
}

func (s *subsystem) handleVolumeDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	rec, e, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	if rec.AttachedTo != "" {
		return daemon.Conflict("volume %s is attached to instance %s: detach it first ('finvirt storage volume detach %s %s --project %s')", name, rec.AttachedTo, name, rec.AttachedTo, project)
	}
	// The pool refuses first (clones depend on it); only then does the record go.
	if err := p.DeleteVolume(r.Context(), poolVolumeName(project, name)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		if cur, err := tx.Get(volumeKey(project, name)); err != nil || cur.ModRev != e.ModRev {
			return daemon.Conflict("volume %s changed while it was being deleted: retry", name)
		}
		if err := tx.Delete(volumeKey(project, name)); err != nil {
			return err
		}
		_, err := daemon.AdjustUsage(tx, project, api.ProjectUsage{Disk: -int64(rec.Size)})
		return err
	})
	if err != nil {
		return err
	}
	d.Lifecycle(rq, "volume-deleted", project, "/1.0/volumes/"+name+"?project="+project)
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (s *subsystem) handleVolumeResize(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	var req api.VolumeResize
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	if req.Size <= 0 {
		return daemon.BadRequest("volume %s: size must be positive", name)
	}
	rec, _, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	delta := req.Size - int64(rec.Size)
	if delta > 0 {
		if err := s.precheckQuota(r.Context(), project, uint64(delta)); err != nil {
			return err
		}
	}
	if err := p.ResizeVolume(r.Context(), poolVolumeName(project, name), uint64(req.Size)); err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	rec.Size = uint64(req.Size)
	var rev int64
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		if _, err := daemon.AdjustUsage(tx, project, api.ProjectUsage{Disk: delta}); err != nil {
			return err
		}
		b, _ := json.Marshal(rec)
		rev = tx.Rev()
		return tx.Put(volumeKey(project, name), b)
	})
	if err != nil {
		// Quota lost a race after the grow: shrink back (nothing was written beyond).
		p.ResizeVolume(context.Background(), poolVolumeName(project, name), uint64(req.Size-delta))
		return err
	}
	out, err := s.view(r.Context(), rec, rev)
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) handleVolumeClone(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	var req api.VolumeClone
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	if err := daemon.ValidName("volume", req.Name); err != nil {
		return err
	}
	rec, _, err := s.volumeRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	if _, _, err := s.volumeRecord(r.Context(), project, req.Name); err == nil {
		return daemon.Conflict("volume %s already exists in project %s", req.Name, project)
	}
	p, err := s.pool(rec.Pool)
	if err != nil {
		return err
	}
	if err := s.precheckQuota(r.Context(), project, rec.Size); err != nil {
		return err
	}
	src := poolVolumeName(project, name)
	if req.Snapshot != "" {
		src += "@" + req.Snapshot
	}
	v, err := p.CloneVolume(r.Context(), src, poolVolumeName(project, req.Name))
	if err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	out, err := s.commitNew(r.Context(), r, rq, p, volumeRecord{Name: req.Name, Project: project, Pool: rec.Pool, Size: v.Size, CreatedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusCreated, out)
}

func (s *subsystem) handleVolumeExport(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	format := storage.FormatQcow2
	if f := r.URL.Query().Get("format"); f != "" {
		var err error
		if format, err = storage.ParseFormat(f); err != nil {
			return storageErr(err, "", "")
		}
	}
	_, _, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	// Export to a temporary file first, so a failure is an HTTP error and not a truncated
	// stream that looks like a complete disk.
	tmp, err := os.MkdirTemp(filepath.Join(d.Config().StateDir), ".export-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, name+"."+string(format))
	if err := p.ExportVolumeFile(r.Context(), poolVolumeName(project, name), format, path, nil); err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, _ := f.Stat()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+"."+string(format)))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, f)
	return err
}

func (s *subsystem) handleSnapshotList(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	_, _, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	snaps, err := p.ListSnapshots(r.Context(), poolVolumeName(project, name))
	if err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	out := make([]api.VolumeSnapshot, 0, len(snaps))
	for _, sn := range snaps {
		out = append(out, api.VolumeSnapshot{Name: sn.Name, Size: sn.Size, CreatedAt: sn.CreatedAt})
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) handleSnapshotCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	var req api.VolumeSnapshotsPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	if err := daemon.ValidName("snapshot", req.Name); err != nil {
		return err
	}
	rec, _, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	var sn storage.Snapshot
	if ls, live := p.(storage.LiveSnapshotter); live && rec.AttachedTo != "" && s.holderRunning(project, rec.AttachedTo) {
		// The holder's QEMU has the active layer open: it must switch to the new overlay.
		sn, err = s.liveSnapshot(r.Context(), p, ls, rec, req.Name)
		if err != nil {
			return err
		}
	} else {
		sn, err = p.CreateSnapshot(r.Context(), poolVolumeName(project, name), req.Name)
		if err != nil {
			return storageErr(err, poolVolumeName(project, name), name)
		}
	}
	err = d.Commit(r.Context(), r, rq, http.StatusCreated, func(tx store.Tx) error { return nil })
	if err != nil {
		return err
	}
	d.Lifecycle(rq, "volume-snapshot-created", project, "/1.0/volumes/"+name+"/snapshots/"+req.Name+"?project="+project)
	return daemon.WriteJSON(w, http.StatusCreated, api.VolumeSnapshot{Name: sn.Name, Size: sn.Size, CreatedAt: sn.CreatedAt})
}

func (s *subsystem) handleSnapshotDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name, snap := rq.Project(), r.PathValue("name"), r.PathValue("snapshot")
	_, _, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	if err := p.DeleteSnapshot(r.Context(), poolVolumeName(project, name), snap); err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error { return nil }); err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name + "@" + snap})
}

func (s *subsystem) handleVolumeRestore(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project, name := rq.Project(), r.PathValue("name")
	var req api.VolumeRestore
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	rec, e, p, err := s.volumeInPool(r.Context(), project, name)
	if err != nil {
		return err
	}
	if rec.AttachedTo != "" && s.holderRunning(project, rec.AttachedTo) {
		return daemon.Conflict("volume %s is attached to instance %s, which is running: stop the instance or detach the volume before restoring", name, rec.AttachedTo)
	}
	if err := p.RestoreSnapshot(r.Context(), poolVolumeName(project, name), req.Snapshot); err != nil {
		return storageErr(err, poolVolumeName(project, name), name)
	}
	if err := d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error { return nil }); err != nil {
		return err
	}
	d.Lifecycle(rq, "volume-restored", project, "/1.0/volumes/"+name+"?project="+project)
	out, err := s.view(r.Context(), rec, e.ModRev)
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

// handleVolumeImport stores the uploaded file under the state dir, then converts it into a
// volume in an operation (validation first: a file that lies about its format or is
// truncated is refused before anything is written into the pool).
func (s *subsystem) handleVolumeImport(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	project := rq.Project()
	q := r.URL.Query()
	name, poolName := q.Get("name"), q.Get("pool")
	rq.SetTarget("volume/" + project + "/" + name)
	if err := daemon.ValidName("volume", name); err != nil {
		return err
	}
	if _, _, err := s.volumeRecord(r.Context(), project, name); err == nil {
		return daemon.Conflict("volume %s already exists in project %s", name, project)
	}
	p, err := s.pool(poolName)
	if err != nil {
		return err
	}
	cache, err := storage.ParseCachePolicy(q.Get("cache"))
	if err != nil {
		return storageErr(err, "", "")
	}
	tmpDir := filepath.Join(d.Config().StateDir, "uploads")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	ext := filepath.Ext(q.Get("filename"))
	f, err := os.CreateTemp(tmpDir, "import-*"+ext)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r.Body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return daemon.BadRequest("upload of %s interrupted: %v", name, err)
	}
	f.Close()
	opts := storage.ImportOpts{VolumeOpts: storage.VolumeOpts{Encrypted: q.Get("encrypted") == "true", Cache: cache}, SourceFormat: q.Get("format")}
	op := d.StartOperation("import volume "+name+" into pool "+poolName, project, map[string]string{"volume": name}, func(ctx context.Context, progress daemon.ProgressFunc) error {
		defer os.Remove(f.Name())
		opts.Progress = func(pct float64) { progress(int(pct*0.98), "converting") }
		v, err := p.ImportVolume(ctx, f.Name(), poolVolumeName(project, name), opts)
		if err != nil {
			err = storageErr(err, poolVolumeName(project, name), name)
			// Name what the user sent, not the daemon's temporary copy of it.
			return errors.New(strings.ReplaceAll(err.Error(), f.Name(), fmt.Sprintf("upload %q for volume %s", q.Get("filename"), name)))
		}
		rec := volumeRecord{Name: name, Project: project, Pool: poolName, Size: v.Size, CreatedAt: time.Now().UTC()}
		_, err = s.commitNew(ctx, r, rq, p, rec)
		return err
	})
	w.Header().Set("Location", "/1.0/operations/"+op.ID)
	return daemon.WriteJSON(w, http.StatusAccepted, op)
}
