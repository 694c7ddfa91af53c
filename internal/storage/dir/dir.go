// Package dir is the directory storage driver: every volume is a chain of qcow2 files in one
// directory. Snapshots are external: taking one freezes the active file and starts a new qcow2
// overlay on it, so snapshots, restores and clones are all O(1) (a new overlay), and a clone is
// an overlay whose backing file is the source's frozen layer.
//
// Layout under PoolConfig.Path:
//
//	pool.json            pool identity
//	volumes/<name>.json  volume metadata: size, layers it owns (id -> parent), snapshots, key
//	layers/<id>.qcow2    image files; the backing file of each is recorded relative (<id>.qcow2)
//	templates/<vol id>.qcow2  empty LUKS qcow2 copied to make encrypted layers (template.go)
//	.tmp-*               operations in progress (removed by Recover)
package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
)

// DriverName is the registry name.
const DriverName = "dir"

func init() { storage.Register(DriverName, Driver{}) }

// Driver implements storage.Driver.
type Driver struct{}

type poolMeta struct {
	Name      string    `json:"name"`
	Driver    string    `json:"driver"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

// Pool is an open dir pool.
type Pool struct {
	cfg storage.PoolConfig
	mu  sync.Mutex // serialises every operation: metadata is read-modify-write
}

func checkConfig(cfg storage.PoolConfig) error {
	if err := storage.ValidateName("pool", cfg.Name); err != nil {
		return err
	}
	if cfg.Path == "" || !filepath.IsAbs(cfg.Path) {
		return storage.Errorf(storage.ErrInvalid, fmt.Sprintf("pool %q", cfg.Name), "set source to an absolute directory path", "path %q is not absolute", cfg.Path)
	}
	if len(cfg.Devices) > 0 {
		return storage.Errorf(storage.ErrInvalid, fmt.Sprintf("pool %q", cfg.Name), "use the btrfs driver for device pools", "the dir driver takes a directory, not devices")
	}
	return nil
}

// Create makes the pool directory layout. The directory may exist but must be empty.
func (Driver) Create(ctx context.Context, cfg storage.PoolConfig) (storage.Pool, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	cfg.Driver = DriverName
	obj := fmt.Sprintf("pool %q", cfg.Name)
	if _, err := os.Stat(filepath.Join(cfg.Path, "pool.json")); err == nil {
		return nil, storage.Errorf(storage.ErrExists, obj, "open it instead, or choose another path", "directory %s already holds a pool", cfg.Path)
	}
	created := false
	if ents, err := os.ReadDir(cfg.Path); err == nil {
		if len(ents) > 0 {
			return nil, storage.Errorf(storage.ErrInUse, obj, "give an empty or new directory", "directory %s is not empty", cfg.Path)
		}
	} else if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "check the parent directory", "cannot create %s", cfg.Path)
		}
		created = true
	} else {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot read %s", cfg.Path)
	}
	fail := func(err error) (storage.Pool, error) {
		os.RemoveAll(filepath.Join(cfg.Path, "volumes"))
		os.RemoveAll(filepath.Join(cfg.Path, "layers"))
		os.RemoveAll(filepath.Join(cfg.Path, "templates"))
		if created {
			os.Remove(cfg.Path)
		}
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot create pool layout")
	}
	for _, d := range []string{"volumes", "layers", "templates"} {
		if err := os.Mkdir(filepath.Join(cfg.Path, d), 0o700); err != nil {
			return fail(err)
		}
	}
	// pool.json last: its presence means the layout is complete.
	if err := fsutil.WriteJSONAtomic(filepath.Join(cfg.Path, "pool.json"), poolMeta{Name: cfg.Name, Driver: DriverName, Version: 1, CreatedAt: time.Now().UTC()}); err != nil {
		return fail(err)
	}
	return &Pool{cfg: cfg}, nil
}

// Open opens an existing pool and removes leftovers of interrupted operations.
func (Driver) Open(ctx context.Context, cfg storage.PoolConfig) (storage.Pool, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	cfg.Driver = DriverName
	var pm poolMeta
	if err := fsutil.ReadJSON(filepath.Join(cfg.Path, "pool.json"), &pm); err != nil {
		return nil, storage.Wrap(storage.ErrNotFound, fmt.Sprintf("pool %q", cfg.Name), err, "create the pool first", "no pool at %s", cfg.Path)
	}
	if pm.Name != cfg.Name || pm.Driver != DriverName {
		return nil, storage.Errorf(storage.ErrInvalid, fmt.Sprintf("pool %q", cfg.Name), "check the pool path", "directory %s holds %s pool %q", cfg.Path, pm.Driver, pm.Name)
	}
	p := &Pool{cfg: cfg}
	if _, err := p.Recover(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pool) Name() string               { return p.cfg.Name }
func (p *Pool) Driver() string             { return DriverName }
func (p *Pool) Config() storage.PoolConfig { return p.cfg }
func (p *Pool) Close() error               { return nil }

func (p *Pool) volDir() string   { return filepath.Join(p.cfg.Path, "volumes") }
func (p *Pool) layerDir() string { return filepath.Join(p.cfg.Path, "layers") }
func (p *Pool) layerPath(id string) string {
	return filepath.Join(p.layerDir(), id+".qcow2")
}

// Info reports capacity from the filesystem holding the directory.
func (p *Pool) Info(ctx context.Context) (storage.PoolInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	total, _, err := fsutil.Statfs(p.cfg.Path)
	if err != nil {
		return storage.PoolInfo{}, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot stat %s", p.cfg.Path)
	}
	vols, err := p.loadAll()
	if err != nil {
		return storage.PoolInfo{}, err
	}
	info := storage.PoolInfo{Name: p.cfg.Name, Driver: DriverName, Path: p.cfg.Path, Capacity: total, Volumes: len(vols),
		Allocated: fsutil.DirAllocated(p.layerDir())}
	for _, v := range vols {
		info.Provisioned += v.Size
	}
	if total > 0 {
		info.Overcommit = float64(info.Provisioned) / float64(total)
	}
	return info, nil
}

// Delete removes the pool layout; refused while volumes exist.
func (p *Pool) Delete(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	vols, err := p.loadAll()
	if err != nil {
		return err
	}
	if len(vols) > 0 {
		names := make([]string, 0, len(vols))
		for n := range vols {
			names = append(names, n)
		}
		sort.Strings(names)
		return &storage.Error{Kind: storage.ErrInUse, Object: fmt.Sprintf("pool %q", p.cfg.Name), Msg: "still has volumes", Dependents: names, Fix: "delete the volumes first"}
	}
	os.Remove(filepath.Join(p.cfg.Path, "pool.json"))
	for _, d := range []string{"volumes", "layers", "templates"} {
		if err := os.RemoveAll(filepath.Join(p.cfg.Path, d)); err != nil {
			return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot remove %s", d)
		}
	}
	os.Remove(p.cfg.Path) // only if empty: the directory may have been given to us
	return nil
}

// Recover removes temporaries of interrupted operations and layer files that no volume
// references (an import or clone that crashed between writing the file and its metadata).
func (p *Pool) Recover(ctx context.Context) (storage.RecoverReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rep storage.RecoverReport
	for _, d := range []string{p.cfg.Path, p.volDir(), p.layerDir()} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return rep, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot read %s", d)
		}
		for _, e := range ents {
			if fsutil.IsTemp(e.Name()) {
				path := filepath.Join(d, e.Name())
				if err := os.RemoveAll(path); err == nil {
					rep.Removed = append(rep.Removed, path)
				}
			}
		}
	}
	vols, err := p.loadAll()
	if err != nil {
		return rep, err
	}
	used := map[string]bool{}
	ids := map[string]bool{}
	for _, v := range vols {
		ids[v.ID] = true
		for id := range v.Layers {
			used[id] = true
		}
	}
	p.removeOrphanTemplates(ids, &rep)
	ents, _ := os.ReadDir(p.layerDir())
	for _, e := range ents {
		id, ok := cutSuffix(e.Name(), ".qcow2")
		if ok && !used[id] {
			path := filepath.Join(p.layerDir(), e.Name())
			if err := os.Remove(path); err == nil {
				rep.Removed = append(rep.Removed, path)
			}
		}
	}
	return rep, nil
}

func cutSuffix(s, suf string) (string, bool) {
	if len(s) > len(suf) && s[len(s)-len(suf):] == suf {
		return s[:len(s)-len(suf)], true
	}
	return "", false
}
