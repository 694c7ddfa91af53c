// Package btrfs is the btrfs storage driver: one btrfs filesystem over one or more devices
// (mkfs.btrfs -d/-m single|raid1|raid10), mounted at PoolConfig.Path. Every volume is a
// subvolume holding one image file (disk.raw, or disk.qcow2 when encrypted) and its meta.json;
// snapshots are read-only btrfs snapshots of that subvolume and clones are writable ones, so
// both are O(1) and a clone shares extents with its source without depending on it.
//
// Layout inside the filesystem:
//
//	pool.json                     pool identity, profile, devices
//	volumes/<vol>/                subvolume: disk.raw|disk.qcow2, meta.json
//	snapshots/<vol>/<snap>/       read-only snapshot subvolumes (meta.json as at snapshot time)
//	volumes/.tmp-*, snapshots/<vol>/.tmp-*   operations in progress (Recover deletes them)
package btrfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
)

// DriverName is the registry name.
const DriverName = "btrfs"

func init() { storage.Register(DriverName, Driver{}) }

// Driver implements storage.Driver.
type Driver struct{}

type poolMeta struct {
	Name      string    `json:"name"`
	Driver    string    `json:"driver"`
	Profile   string    `json:"profile"`
	Devices   []string  `json:"devices"`
	CreatedAt time.Time `json:"created_at"`
}

// Pool is an open btrfs pool.
type Pool struct {
	mu       sync.Mutex
	cfg      storage.PoolConfig
	degraded bool // mounted with -o degraded
}

var profiles = map[string]int{"single": 1, "raid1": 2, "raid10": 2}

func checkConfig(cfg *storage.PoolConfig, creating bool) error {
	obj := fmt.Sprintf("pool %q", cfg.Name)
	if err := storage.ValidateName("pool", cfg.Name); err != nil {
		return err
	}
	if cfg.Path == "" || !filepath.IsAbs(cfg.Path) {
		return storage.Errorf(storage.ErrInvalid, obj, "set the mount path to an absolute directory", "mount path %q is not absolute", cfg.Path)
	}
	cfg.Path = filepath.Clean(cfg.Path)
	if len(cfg.Devices) == 0 {
		return storage.Errorf(storage.ErrInvalid, obj, "give one or more block devices", "no devices")
	}
	seen := map[string]bool{}
	for _, d := range cfg.Devices {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			if creating {
				return storage.Errorf(storage.ErrNotFound, fmt.Sprintf("device %q", d), "check the device path", "does not exist")
			}
			continue // may be the missing member of a degraded pool
		}
		if seen[real] {
			return storage.Errorf(storage.ErrInvalid, obj, "list each device once", "device %s is listed twice", d)
		}
		seen[real] = true
	}
	if cfg.Profile == "" {
		cfg.Profile = "single"
	}
	min, ok := profiles[cfg.Profile]
	if !ok {
		return storage.Errorf(storage.ErrInvalid, obj, "use single, raid1 or raid10", "profile %q is unknown", cfg.Profile)
	}
	if creating && len(cfg.Devices) < min {
		return storage.Errorf(storage.ErrInvalid, obj, fmt.Sprintf("give at least %d devices", min), "profile %s needs %d devices, got %d", cfg.Profile, min, len(cfg.Devices))
	}
	return nil
}

// Create checks every device, makes the filesystem, mounts it and lays out the pool. On any
// failure the filesystem is unmounted and the new signatures wiped again.
func (Driver) Create(ctx context.Context, cfg storage.PoolConfig) (storage.Pool, error) {
	if err := checkConfig(&cfg, true); err != nil {
		return nil, err
	}
	cfg.Driver = DriverName
	obj := fmt.Sprintf("pool %q", cfg.Name)
	if isMountpoint(cfg.Path) {
		return nil, storage.Errorf(storage.ErrInUse, obj, "choose another mount path or open the pool", "%s is already a mounted btrfs", cfg.Path)
	}
	for _, d := range cfg.Devices {
		if err := storage.CheckDevice(ctx, d, cfg.Force); err != nil {
			return nil, err
		}
	}
	r := revert.New()
	defer r.Fail()
	if _, err := os.Stat(cfg.Path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot create mount path")
		}
		r.Add(func() { os.Remove(cfg.Path) })
	} else if ents, _ := os.ReadDir(cfg.Path); len(ents) > 0 {
		return nil, storage.Errorf(storage.ErrInUse, obj, "give an empty directory as mount path", "mount path %s is not empty", cfg.Path)
	}
	args := []string{"-q", "-f", "-L", "finvirt-" + cfg.Name, "-d", cfg.Profile, "-m", cfg.Profile}
	if _, err := run(ctx, "mkfs.btrfs", append(args, cfg.Devices...)...); err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, obj, err, "check the devices", "mkfs.btrfs failed")
	}
	r.Add(func() {
		for _, d := range cfg.Devices {
			wipe(context.Background(), d)
			run(context.Background(), "btrfs", "device", "scan", "--forget", d)
		}
	})
	p := &Pool{cfg: cfg}
	if err := p.mount(ctx); err != nil {
		return nil, err
	}
	r.Add(func() { umount(context.Background(), cfg.Path) })
	for _, d := range []string{"volumes", "snapshots"} {
		if err := os.Mkdir(filepath.Join(cfg.Path, d), 0o700); err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot lay out the pool")
		}
	}
	if err := p.writePoolMeta(); err != nil {
		return nil, err
	}
	r.Success()
	return p, nil
}

func (p *Pool) writePoolMeta() error {
	err := fsutil.WriteJSONAtomic(filepath.Join(p.cfg.Path, "pool.json"), poolMeta{Name: p.cfg.Name, Driver: DriverName,
		Profile: p.cfg.Profile, Devices: p.cfg.Devices, CreatedAt: time.Now().UTC()})
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot write pool.json")
	}
	return nil
}

// mount mounts the filesystem, naming every member that still exists. If a normal mount fails
// because members are missing, it mounts with -o degraded (the data of raid1/raid10 is still
// complete) and Info reports the pool degraded until the device is replaced.
func (p *Pool) mount(ctx context.Context) error {
	var present []string
	for _, d := range p.cfg.Devices {
		if storage.Signature(ctx, d) == "btrfs" {
			present = append(present, d)
		}
	}
	obj := fmt.Sprintf("pool %q", p.cfg.Name)
	if len(present) == 0 {
		return storage.Errorf(storage.ErrNotFound, obj, "check that the pool's devices are attached", "none of the devices %v carries its btrfs filesystem", p.cfg.Devices)
	}
	opts := make([]string, 0, len(present))
	for _, d := range present {
		opts = append(opts, "device="+d)
	}
	if err := os.MkdirAll(p.cfg.Path, 0o700); err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot create mount path")
	}
	_, err := run(ctx, "mount", "-t", "btrfs", "-o", strings.Join(opts, ","), present[0], p.cfg.Path)
	if err == nil {
		return nil
	}
	if _, derr := run(ctx, "mount", "-t", "btrfs", "-o", strings.Join(append(opts, "degraded"), ","), present[0], p.cfg.Path); derr != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "check the devices (btrfs device scan) and dmesg", "cannot mount, not even degraded")
	}
	p.degraded = true
	return nil
}

// Open mounts the pool when needed and runs Recover.
func (Driver) Open(ctx context.Context, cfg storage.PoolConfig) (storage.Pool, error) {
	if err := checkConfig(&cfg, false); err != nil {
		return nil, err
	}
	cfg.Driver = DriverName
	p := &Pool{cfg: cfg}
	if !isMountpoint(cfg.Path) {
		if err := p.mount(ctx); err != nil {
			return nil, err
		}
	}
	var pm poolMeta
	if err := fsutil.ReadJSON(filepath.Join(cfg.Path, "pool.json"), &pm); err != nil {
		return nil, storage.Wrap(storage.ErrNotFound, fmt.Sprintf("pool %q", cfg.Name), err, "create the pool first", "no pool on %v", cfg.Devices)
	}
	if pm.Name != cfg.Name {
		return nil, storage.Errorf(storage.ErrInvalid, fmt.Sprintf("pool %q", cfg.Name), "check the devices", "the filesystem holds pool %q", pm.Name)
	}
	p.cfg.Profile = pm.Profile
	if _, err := p.Recover(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pool) Name() string               { return p.cfg.Name }
func (p *Pool) Driver() string             { return DriverName }
func (p *Pool) Config() storage.PoolConfig { p.mu.Lock(); defer p.mu.Unlock(); return p.cfg }

// Close unmounts the pool and makes the kernel forget its devices.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := umount(context.Background(), p.cfg.Path); err != nil {
		return storage.Wrap(storage.ErrInUse, fmt.Sprintf("pool %q", p.cfg.Name), err, "stop what uses files under "+p.cfg.Path, "cannot unmount")
	}
	for _, d := range p.cfg.Devices {
		run(context.Background(), "btrfs", "device", "scan", "--forget", d)
	}
	return nil
}

// Delete destroys the pool: refused while volumes exist; unmounts and wipes the devices.
func (p *Pool) Delete(ctx context.Context) error {
	vols, err := p.ListVolumes(ctx)
	if err != nil {
		return err
	}
	if len(vols) > 0 {
		names := make([]string, len(vols))
		for i, v := range vols {
			names[i] = v.Name
		}
		return &storage.Error{Kind: storage.ErrInUse, Object: fmt.Sprintf("pool %q", p.cfg.Name), Msg: "still has volumes", Dependents: names, Fix: "delete the volumes first"}
	}
	if err := p.Close(); err != nil {
		return err
	}
	for _, d := range p.cfg.Devices {
		if err := wipe(ctx, d); err != nil {
			return storage.Wrap(storage.ErrInUse, fmt.Sprintf("device %q", d), err, "wipe it by hand (wipefs -a) once it is free", "pool deleted but the device could not be wiped")
		}
	}
	os.Remove(p.cfg.Path)
	return nil
}

// Recover deletes temporary subvolumes and files of interrupted operations, and snapshot
// directories of volumes that no longer exist (a delete interrupted half way).
func (p *Pool) Recover(ctx context.Context) (storage.RecoverReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rep storage.RecoverReport
	remove := func(path string) {
		if isSubvolume(path) {
			if subvolDelete(ctx, path) == nil {
				rep.Removed = append(rep.Removed, path)
				return
			}
		}
		if os.RemoveAll(path) == nil {
			rep.Removed = append(rep.Removed, path)
		}
	}
	vdir := filepath.Join(p.cfg.Path, "volumes")
	ents, err := os.ReadDir(vdir)
	if err != nil {
		return rep, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot read volumes")
	}
	live := map[string]bool{}
	for _, e := range ents {
		if fsutil.IsTemp(e.Name()) {
			remove(filepath.Join(vdir, e.Name()))
		} else {
			live[e.Name()] = true
		}
	}
	root, _ := os.ReadDir(p.cfg.Path)
	for _, e := range root {
		if fsutil.IsTemp(e.Name()) {
			remove(filepath.Join(p.cfg.Path, e.Name()))
		}
	}
	sdir := filepath.Join(p.cfg.Path, "snapshots")
	vols, _ := os.ReadDir(sdir)
	for _, v := range vols {
		snaps, _ := os.ReadDir(filepath.Join(sdir, v.Name()))
		for _, s := range snaps {
			path := filepath.Join(sdir, v.Name(), s.Name())
			if fsutil.IsTemp(s.Name()) || !live[v.Name()] {
				remove(path)
			} else {
				// A key rotation interrupted mid-rewrite may have left it writable.
				setReadOnly(ctx, path, true)
			}
		}
		if !live[v.Name()] {
			os.Remove(filepath.Join(sdir, v.Name()))
		}
	}
	sort.Strings(rep.Removed)
	return rep, nil
}

// isSubvolume: a subvolume root has inode number 256 on btrfs.
func isSubvolume(path string) bool {
	var st = new(statT)
	return stat(path, st) == nil && st.Ino == 256
}
