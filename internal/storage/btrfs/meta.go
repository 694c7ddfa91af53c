package btrfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/keys"
)

// volMeta is volumes/<vol>/meta.json. It lives inside the subvolume so that snapshots carry
// the size, format and key the data had at snapshot time.
type volMeta struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Size       uint64              `json:"size"`
	Format     storage.Format      `json:"format"`
	Encrypted  bool                `json:"encrypted"`
	WrappedKey string              `json:"wrapped_key,omitempty"`
	Cache      storage.CachePolicy `json:"cache"`
	Origin     string              `json:"origin,omitempty"`
	CreatedAt  time.Time           `json:"created_at"`
	// SnapshotAt is set in snapshot copies only.
	SnapshotAt time.Time `json:"snapshot_at,omitempty"`
}

func (p *Pool) volPath(name string) string { return filepath.Join(p.cfg.Path, "volumes", name) }
func (p *Pool) snapDir(vol string) string  { return filepath.Join(p.cfg.Path, "snapshots", vol) }
func (p *Pool) snapPath(vol, snap string) string {
	return filepath.Join(p.snapDir(vol), snap)
}

func diskName(f storage.Format) string { return "disk." + string(f) }

func readMeta(dir string) (*volMeta, error) {
	var m volMeta
	if err := fsutil.ReadJSON(filepath.Join(dir, "meta.json"), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func (p *Pool) load(name string) (*volMeta, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return nil, err
	}
	m, err := readMeta(p.volPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, storage.NotFound("volume", name)
	}
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "", "metadata is unreadable")
	}
	return m, nil
}

func (p *Pool) loadSnap(vol, snap string) (*volMeta, error) {
	if err := storage.ValidateName("snapshot", snap); err != nil {
		return nil, err
	}
	if _, err := p.load(vol); err != nil {
		return nil, err
	}
	m, err := readMeta(p.snapPath(vol, snap))
	if errors.Is(err, os.ErrNotExist) {
		return nil, storage.NotFound("snapshot", vol+"@"+snap)
	}
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("snapshot %q", vol+"@"+snap), err, "", "metadata is unreadable")
	}
	return m, nil
}

func writeMeta(dir string, m *volMeta) error {
	if err := fsutil.WriteJSONAtomic(filepath.Join(dir, "meta.json"), m); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", m.Name), err, "check free space", "cannot write metadata")
	}
	return nil
}

func (p *Pool) inUse(name, op string) error { return poolkit.InUse(p.cfg.InUse, name, op) }

func (p *Pool) master() (*keys.Master, error) { return poolkit.Master(p.cfg.MasterKeyFile) }

func (p *Pool) volumeKey(m *volMeta) ([]byte, error) {
	if !m.Encrypted {
		return nil, nil
	}
	return poolkit.UnwrapKey(p.cfg.MasterKeyFile, m.Name, m.ID, m.WrappedKey)
}

// access describes the image in dir (a volume or snapshot subvolume).
func (p *Pool) access(dir string, m *volMeta, key []byte) storage.Access {
	return storage.Access{Pool: p.cfg.Name, Volume: m.Name, Size: m.Size, Cache: m.Cache, Key: key,
		Chain: []storage.Layer{{Path: filepath.Join(dir, diskName(m.Format)), Format: m.Format, Encrypted: m.Encrypted}}}
}

func describe(m *volMeta, allocated uint64, snaps int) storage.Volume {
	return storage.Volume{Name: m.Name, Format: m.Format, Size: m.Size, Allocated: allocated, Encrypted: m.Encrypted,
		Cache: m.Cache, Origin: m.Origin, Snapshots: snaps, CreatedAt: m.CreatedAt}
}

func (p *Pool) countSnaps(vol string) int {
	n := 0
	ents, _ := os.ReadDir(p.snapDir(vol))
	for _, e := range ents {
		if !fsutil.IsTemp(e.Name()) {
			n++
		}
	}
	return n
}
