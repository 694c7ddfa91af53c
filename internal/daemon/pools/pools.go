// Package pools is the storage subsystem of the daemon: storage pools (host
// infrastructure, administered globally) and the volumes projects keep in them, on the
// internal/storage drivers. Volume names are per project; in the pool a volume is named
// "<project>_<name>" (daemon names never contain '_', so the mapping is unambiguous).
package pools

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/storage"
	_ "github.com/finvirt/finvirt/internal/storage/btrfs" // registers the btrfs driver
	_ "github.com/finvirt/finvirt/internal/storage/dir"   // registers the dir driver
	"github.com/finvirt/finvirt/internal/store"
)

const (
	poolPrefix   = "storage-pools/"
	volumePrefix = "volumes/" // volumes/<project>/<name>
)

func init() {
	daemon.Register(func(d *daemon.Daemon) (daemon.Subsystem, error) {
		s := &subsystem{d: d, open: map[string]storage.Pool{}}
		regMu.Lock()
		registry[d] = s
		regMu.Unlock()
		return s, nil
	})
}

type subsystem struct {
	d *daemon.Daemon

	createMu sync.Mutex
	mu       sync.Mutex
	open     map[string]storage.Pool // by pool name
	errs     map[string]string       // pools that failed to open, and why

	hooksMu sync.Mutex
	hooks   InstanceHooks // lent by the instances subsystem (SetInstanceHooks)
}

// poolRecord is what the store keeps of a pool.
type poolRecord struct {
	Name      string    `json:"name"`
	Driver    string    `json:"driver"`
	Path      string    `json:"path"`
	Source    []string  `json:"source,omitempty"`
	Profile   string    `json:"profile,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// volumeRecord is what the store keeps of a volume; sizes and allocation come live from
// the pool.
type volumeRecord struct {
	Name       string    `json:"name"`
	Project    string    `json:"project"`
	Pool       string    `json:"pool"`
	AttachedTo string    `json:"attached_to,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	Size       uint64    `json:"size"` // provisioned bytes, as counted in the project quota
}

func (s *subsystem) Name() string { return "storage" }

func (s *subsystem) masterKey() string {
	if p := s.d.Config().MasterKeyPath; p != "" {
		return p
	}
	return filepath.Join(s.d.Config().StateDir, "keys", "master.key")
}

func (s *subsystem) config(rec poolRecord) storage.PoolConfig {
	return storage.PoolConfig{
		Name: rec.Name, Driver: rec.Driver, Path: rec.Path, Devices: rec.Source, Profile: rec.Profile,
		MasterKeyFile: s.masterKey(), InUse: s.inUse(rec.Name),
	}
}

// inUse tells the drivers which volumes an instance holds, so they refuse destructive
// operations on them.
func (s *subsystem) inUse(pool string) func(volume string) string {
	return func(poolVolume string) string {
		project, name, ok := strings.Cut(poolVolume, "_")
		if !ok {
			return ""
		}
		e, err := s.d.Store().Get(context.Background(), volumePrefix+project+"/"+name)
		if err != nil {
			return ""
		}
		var v volumeRecord
		if json.Unmarshal(e.Value, &v) == nil && v.Pool == pool && v.AttachedTo != "" && s.holderRunning(project, v.AttachedTo) {
			return "instance " + v.AttachedTo
		}
		return ""
	}
}

// Start opens every known pool (mounting multi-device ones) and removes pool volumes that
// no record names: the remains of a create, clone or import the daemon was killed in.
func (s *subsystem) Start(ctx context.Context) error {
	recs, err := s.pools(ctx)
	if err != nil {
		return err
	}
	s.errs = map[string]string{}
	for _, rec := range recs {
		drv, err := storage.Load(rec.Driver)
		if err != nil {
			s.errs[rec.Name] = err.Error()
			continue
		}
		p, err := drv.Open(ctx, s.config(rec))
		if err != nil {
			// A pool whose disks are gone must not stop the daemon; it shows as unavailable.
			s.errs[rec.Name] = err.Error()
			s.d.Logger().Error("storage pool unavailable", "pool", rec.Name, "err", err)
			continue
		}
		s.open[rec.Name] = p
		if err := s.removeOrphans(ctx, p); err != nil {
			s.d.Logger().Warn("storage orphan cleanup", "pool", rec.Name, "err", err)
		}
	}
	return nil
}

func (s *subsystem) removeOrphans(ctx context.Context, p storage.Pool) error {
	vols, err := p.ListVolumes(ctx)
	if err != nil {
		return err
	}
	for _, v := range vols {
		project, name, ok := strings.Cut(v.Name, "_")
		if !ok {
			continue
		}
		if _, err := s.d.Store().Get(ctx, volumePrefix+project+"/"+name); errors.Is(err, store.ErrNotFound) {
			if err := p.DeleteVolume(ctx, v.Name); err == nil {
				s.d.AuditEvent(ctx, "volume.orphan-removed", "volume/"+project+"/"+name, project, api.OutcomeSuccess,
					"pool "+p.Name()+" held a volume no record names (an interrupted create, clone or import)")
			}
		}
	}
	return nil
}

// Stop leaves pools mounted: instances keep running across daemon restarts and hold
// their volumes open.
func (s *subsystem) Stop() {}

func (s *subsystem) pools(ctx context.Context) ([]poolRecord, error) {
	entries, err := s.d.Store().List(ctx, poolPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]poolRecord, 0, len(entries))
	for _, e := range entries {
		var r poolRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *subsystem) pool(name string) (storage.Pool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.open[name]; ok {
		return p, nil
	}
	if why, ok := s.errs[name]; ok {
		return nil, daemon.Errorf(http.StatusServiceUnavailable, "storage pool %s is unavailable: %s", name, why)
	}
	return nil, daemon.NotFound("storage pool %s not found: see 'finvirt storage pool list'", name)
}

// storageErr maps the storage package's typed errors to HTTP statuses, naming the
// project's volume rather than its internal pool name.
func storageErr(err error, poolVolume, name string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if poolVolume != "" {
		msg = strings.ReplaceAll(msg, poolVolume, name)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return daemon.NotFound("%s", msg)
	case errors.Is(err, storage.ErrExists), errors.Is(err, storage.ErrInUse):
		return daemon.Conflict("%s", msg)
	case errors.Is(err, storage.ErrInvalid):
		return daemon.BadRequest("%s", msg)
	case errors.Is(err, storage.ErrUnsupported):
		return daemon.Errorf(http.StatusNotImplemented, "%s", msg)
	}
	return err
}

func (s *subsystem) Routes() []*daemon.Route {
	poolTarget := daemon.PathTarget("storage-pool", "pool")
	return append([]*daemon.Route{
		{Method: "GET", Path: "/1.0/storage-pools", Summary: "List storage pools with capacity, allocation and overcommit", Perm: auth.PermAuthenticated, Reply: []api.StoragePool{}, Handler: s.handlePoolList},
		{Method: "POST", Path: "/1.0/storage-pools", Summary: "Create a storage pool over a directory or several devices", Perm: auth.PermAdmin, Action: "storage-pool.create", Body: api.StoragePoolsPost{}, Reply: api.StoragePool{}, Status: 201, Handler: s.handlePoolCreate},
		{Method: "GET", Path: "/1.0/storage-pools/{pool}", Summary: "Show a pool: per-device usage and health", Perm: auth.PermAuthenticated, Reply: api.StoragePool{}, Handler: s.handlePoolGet},
		{Method: "DELETE", Path: "/1.0/storage-pools/{pool}", Summary: "Delete an empty pool", Perm: auth.PermAdmin, Action: "storage-pool.delete", Target: poolTarget, Handler: s.handlePoolDelete},
		{Method: "POST", Path: "/1.0/storage-pools/{pool}/extend", Summary: "Grow a multi-device pool by a device", Perm: auth.PermAdmin, Action: "storage-pool.extend", Target: poolTarget, Body: api.StoragePoolExtend{}, Reply: api.StoragePool{}, Handler: s.handlePoolExtend},
	}, s.volumeRoutes()...)
}

func (s *subsystem) poolView(ctx context.Context, rec poolRecord) api.StoragePool {
	out := api.StoragePool{Name: rec.Name, Driver: rec.Driver, Path: rec.Path, Source: rec.Source, Profile: rec.Profile, CreatedAt: rec.CreatedAt, Status: "online"}
	p, err := s.pool(rec.Name)
	if err != nil {
		out.Status, out.StatusError = "unavailable", err.Error()
		return out
	}
	info, err := p.Info(ctx)
	if err != nil {
		out.Status, out.StatusError = "unavailable", err.Error()
		return out
	}
	out.Profile = info.Profile
	out.Capacity, out.Allocated, out.Provisioned, out.Overcommit = info.Capacity, info.Allocated, info.Provisioned, info.Overcommit
	out.Volumes, out.Degraded = info.Volumes, info.Degraded
	for _, dv := range info.Devices {
		out.Devices = append(out.Devices, api.StorageDevice{ID: dv.ID, Path: dv.Path, Size: dv.Size, Used: dv.Used, Missing: dv.Missing, Errors: dv.Errors, Health: dv.Health})
	}
	if info.Degraded {
		out.Status = "degraded"
	}
	return out
}

func (s *subsystem) handlePoolList(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	recs, err := s.pools(r.Context())
	if err != nil {
		return err
	}
	out := make([]api.StoragePool, 0, len(recs))
	for _, rec := range recs {
		out = append(out, s.poolView(r.Context(), rec))
	}
	return daemon.WriteJSON(w, http.StatusOK, out)
}

func (s *subsystem) record(ctx context.Context, name string) (poolRecord, error) {
	var rec poolRecord
	e, err := s.d.Store().Get(ctx, poolPrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return rec, daemon.NotFound("storage pool %s not found: see 'finvirt storage pool list'", name)
	}
	if err != nil {
		return rec, err
	}
	return rec, json.Unmarshal(e.Value, &rec)
}

func (s *subsystem) handlePoolGet(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	rec, err := s.record(r.Context(), r.PathValue("pool"))
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, s.poolView(r.Context(), rec))
}

func (s *subsystem) handlePoolCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	var req api.StoragePoolsPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	rq.SetTarget("storage-pool/" + req.Name)
	if err := daemon.ValidName("storage pool", req.Name); err != nil {
		return err
	}
	if _, err := storage.Load(req.Driver); err != nil {
		return daemon.BadRequest("driver %q: use one of %s", req.Driver, strings.Join(storage.Drivers(), ", "))
	}
	for _, dev := range req.Source {
		if !filepath.IsAbs(dev) {
			return daemon.BadRequest("source %q: give absolute device paths such as /dev/sdb", dev)
		}
	}
	if req.Path == "" {
		req.Path = filepath.Join(d.Config().StateDir, "storage", req.Name)
	}
	rec := poolRecord{Name: req.Name, Driver: req.Driver, Path: req.Path, Source: req.Source, Profile: req.Profile, CreatedAt: time.Now().UTC()}
	cfg := s.config(rec)
	cfg.Force = req.Force
	// One pool create at a time: two creates racing for the same name or devices must not
	// both reach mkfs.
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if _, err := s.record(r.Context(), req.Name); err == nil {
		return daemon.Conflict("storage pool %s already exists", req.Name)
	}
	p, err := storage.CreatePool(r.Context(), cfg)
	if err != nil {
		return storageErr(err, "", "")
	}
	rec.Profile = p.Config().Profile
	err = d.Commit(r.Context(), r, rq, http.StatusCreated, func(tx store.Tx) error {
		b, _ := json.Marshal(rec)
		return tx.Create(poolPrefix+rec.Name, b)
	})
	if err != nil {
		// The record is the pool's existence for the daemon: without it, undo the pool.
		p.Delete(context.Background())
		if errors.Is(err, store.ErrExists) {
			return daemon.Conflict("storage pool %s already exists", rec.Name)
		}
		return err
	}
	s.mu.Lock()
	s.open[rec.Name] = p
	delete(s.errs, rec.Name)
	s.mu.Unlock()
	d.Lifecycle(rq, "storage-pool-created", "", "/1.0/storage-pools/"+rec.Name)
	return daemon.WriteJSON(w, http.StatusCreated, s.poolView(r.Context(), rec))
}

func (s *subsystem) handlePoolDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	name := r.PathValue("pool")
	if _, err := s.record(r.Context(), name); err != nil {
		return err
	}
	n := 0
	vols, _ := d.Store().List(r.Context(), volumePrefix)
	for _, e := range vols {
		var v volumeRecord
		if json.Unmarshal(e.Value, &v) == nil && v.Pool == name {
			n++
		}
	}
	if n > 0 {
		return daemon.Conflict("storage pool %s still holds %d volumes: delete them first", name, n)
	}
	p, err := s.pool(name)
	if err == nil {
		if err := p.Delete(r.Context()); err != nil {
			return storageErr(err, "", "")
		}
	}
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error { return tx.Delete(poolPrefix + name) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.open, name)
	delete(s.errs, name)
	s.mu.Unlock()
	d.Lifecycle(rq, "storage-pool-deleted", "", "/1.0/storage-pools/"+name)
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (s *subsystem) handlePoolExtend(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	name := r.PathValue("pool")
	var req api.StoragePoolExtend
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	rec, err := s.record(r.Context(), name)
	if err != nil {
		return err
	}
	p, err := s.pool(name)
	if err != nil {
		return err
	}
	ext, ok := p.(storage.Extender)
	if !ok {
		return daemon.BadRequest("storage pool %s (driver %s) has no devices to extend: only multi-device drivers (btrfs) grow by a device", name, rec.Driver)
	}
	if !filepath.IsAbs(req.Device) {
		return daemon.BadRequest("device %q: give an absolute device path such as /dev/sdd", req.Device)
	}
	if err := ext.Extend(r.Context(), req.Device, storage.ExtendOpts{Force: req.Force, Balance: req.Balance}); err != nil {
		return storageErr(err, "", "")
	}
	rec.Source = append(rec.Source, req.Device)
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		b, _ := json.Marshal(rec)
		return tx.Put(poolPrefix+name, b)
	})
	if err != nil {
		return err
	}
	d.Lifecycle(rq, "storage-pool-extended", "", "/1.0/storage-pools/"+name)
	return daemon.WriteJSON(w, http.StatusOK, s.poolView(r.Context(), rec))
}

func sortedVolumes(vs []api.Volume) {
	sort.Slice(vs, func(i, j int) bool { return vs[i].Name < vs[j].Name })
}
