package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/keys"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// volMeta is volumes/<name>.json. A volume owns the layers in Layers; a layer's parent may be
// owned by another volume (a clone's base belongs to its source), which is what makes the
// source undeletable while the clone exists.
type volMeta struct {
	ID         string               `json:"id"`
	Name       string               `json:"name"`
	Size       uint64               `json:"size"`
	Encrypted  bool                 `json:"encrypted"`
	WrappedKey string               `json:"wrapped_key,omitempty"`
	Cache      storage.CachePolicy  `json:"cache"`
	Active     string               `json:"active"`
	Layers     map[string]layerMeta `json:"layers"`
	Snapshots  []snapMeta           `json:"snapshots"`
	Origin     string               `json:"origin,omitempty"`
	CreatedAt  time.Time            `json:"created_at"`
}

type layerMeta struct {
	Parent string `json:"parent,omitempty"`
}

type snapMeta struct {
	Name      string    `json:"name"`
	Layer     string    `json:"layer"`
	Size      uint64    `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

func (v *volMeta) snapshot(name string) (int, *snapMeta) {
	for i := range v.Snapshots {
		if v.Snapshots[i].Name == name {
			return i, &v.Snapshots[i]
		}
	}
	return -1, nil
}

func (p *Pool) metaPath(name string) string { return filepath.Join(p.volDir(), name+".json") }

func (p *Pool) loadAll() (map[string]*volMeta, error) {
	ents, err := os.ReadDir(p.volDir())
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("pool %q", p.cfg.Name), err, "", "cannot read volume metadata")
	}
	out := map[string]*volMeta{}
	for _, e := range ents {
		name, ok := cutSuffix(e.Name(), ".json")
		if !ok || fsutil.IsTemp(e.Name()) {
			continue
		}
		var m volMeta
		if err := fsutil.ReadJSON(filepath.Join(p.volDir(), e.Name()), &m); err != nil {
			return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "restore volumes/"+e.Name()+" from backup", "metadata is unreadable")
		}
		out[name] = &m
	}
	return out, nil
}

func (p *Pool) load(name string) (*volMeta, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return nil, err
	}
	var m volMeta
	if err := fsutil.ReadJSON(p.metaPath(name), &m); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, storage.NotFound("volume", name)
		}
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "", "metadata is unreadable")
	}
	return &m, nil
}

func (p *Pool) save(m *volMeta) error {
	if err := fsutil.WriteJSONAtomic(p.metaPath(m.Name), m); err != nil {
		return storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", m.Name), err, "check free space", "cannot write metadata")
	}
	return nil
}

// index maps every layer id to its owner and parent, across all volumes.
type index struct {
	owner    map[string]string
	parent   map[string]string
	children map[string][]string
}

func buildIndex(vols map[string]*volMeta) index {
	ix := index{owner: map[string]string{}, parent: map[string]string{}, children: map[string][]string{}}
	for _, v := range vols {
		for id, l := range v.Layers {
			ix.owner[id] = v.Name
			ix.parent[id] = l.Parent
			if l.Parent != "" {
				ix.children[l.Parent] = append(ix.children[l.Parent], id)
			}
		}
	}
	return ix
}

// foreignDependents lists the other volumes that have a layer on top of one of layers.
func (ix index) foreignDependents(owner string, layers ...string) []string {
	seen := map[string]bool{}
	for _, id := range layers {
		for _, c := range ix.children[id] {
			if o := ix.owner[c]; o != owner {
				seen[o] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for o := range seen {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// chain is the layer ids from top down to the base.
func (ix index) chain(top string) []string {
	var out []string
	for id := top; id != "" && len(out) < 10000; id = ix.parent[id] {
		out = append(out, id)
	}
	return out
}

// inUse asks the daemon's hook whether something holds the volume.
func (p *Pool) inUse(name, op string) error { return poolkit.InUse(p.cfg.InUse, name, op) }

func (p *Pool) master() (*keys.Master, error) { return poolkit.Master(p.cfg.MasterKeyFile) }

// volumeKey unwraps the key of an encrypted volume.
func (p *Pool) volumeKey(m *volMeta) ([]byte, error) {
	if !m.Encrypted {
		return nil, nil
	}
	return poolkit.UnwrapKey(p.cfg.MasterKeyFile, m.Name, m.ID, m.WrappedKey)
}

// access builds the Access for a layer chain of m (top = m.Active unless given).
func (p *Pool) access(m *volMeta, ix index, top string, key []byte) storage.Access {
	a := storage.Access{Pool: p.cfg.Name, Volume: m.Name, Size: m.Size, Cache: m.Cache, Key: key}
	for _, id := range ix.chain(top) {
		a.Chain = append(a.Chain, storage.Layer{Path: p.layerPath(id), Format: storage.FormatQcow2, Encrypted: m.Encrypted})
	}
	return a
}

// newLayer creates a qcow2 file for a new layer under a temporary name and renames it into
// place; it returns the id. backing is a parent layer id or "". Encrypted layers are copies of
// the volume's LUKS template (see template.go), which takes milliseconds where creating a LUKS
// header takes seconds.
func (p *Pool) newLayer(ctx context.Context, m *volMeta, key []byte, backing string, size uint64) (string, error) {
	id := fsutil.RandomID(8)
	tmp := fsutil.TempName(p.layerDir(), "layer")
	var err error
	if m.Encrypted {
		err = p.layerFromTemplate(ctx, m, key, tmp, backing, size)
	} else {
		o := qemuimg.CreateOpts{Path: tmp, Format: "qcow2", Size: size, Options: []string{"cluster_size=65536"}}
		if backing != "" {
			o.Backing, o.BackingFormat = backing+".qcow2", "qcow2"
		}
		err = qemuimg.Create(ctx, o)
	}
	if err != nil {
		os.Remove(tmp)
		return "", storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", m.Name), err, "check free space in "+p.cfg.Path, "cannot create image layer")
	}
	if err := os.Rename(tmp, p.layerPath(id)); err != nil {
		os.Remove(tmp)
		return "", storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", m.Name), err, "", "cannot place image layer")
	}
	return id, nil
}

// gc drops from m the layers nothing needs any more (not active, not a snapshot, no child)
// and returns their files, which the caller removes after saving m: a crash in between leaves
// unreferenced files, which Recover removes, never metadata pointing at missing files.
func (p *Pool) gc(m *volMeta, vols map[string]*volMeta) []string {
	vols[m.Name] = m
	var files []string
	for {
		ix := buildIndex(vols)
		keep := map[string]bool{m.Active: true}
		for _, s := range m.Snapshots {
			keep[s.Layer] = true
		}
		removed := false
		for id := range m.Layers {
			if !keep[id] && len(ix.children[id]) == 0 {
				delete(m.Layers, id)
				files = append(files, p.layerPath(id))
				removed = true
			}
		}
		if !removed {
			return files
		}
	}
}

func describe(m *volMeta, allocated uint64) storage.Volume {
	return storage.Volume{Name: m.Name, Format: storage.FormatQcow2, Size: m.Size, Allocated: allocated, Encrypted: m.Encrypted,
		Cache: m.Cache, Origin: m.Origin, Snapshots: len(m.Snapshots), CreatedAt: m.CreatedAt}
}

func (p *Pool) allocated(m *volMeta) uint64 {
	var n uint64
	for id := range m.Layers {
		n += fsutil.Allocated(p.layerPath(id))
	}
	return n
}

func removeFiles(files []string) {
	for _, f := range files {
		os.Remove(f)
	}
}

func objName(kind, name string) string {
	return fmt.Sprintf("%s %q", kind, strings.TrimSpace(name))
}
