package dir

import (
	"context"

	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// compact merges the active layer of m into its parent while that parent is a hidden layer (no
// snapshot names it) that nothing else builds on: what deleting a snapshot, or the last clone
// of a volume, leaves behind. qemu-img commit copies the active layer's data down (usually the
// smaller side), the parent becomes the active layer, and the old active file is returned for
// removal after the metadata is saved. A crash in between is harmless: the data is in both
// files and the old chain still reads the same. Skipped while the volume is attached.
func (p *Pool) compact(ctx context.Context, m *volMeta, vols map[string]*volMeta) []string {
	if p.inUse(m.Name, "compact it") != nil {
		return nil
	}
	key, err := p.volumeKey(m)
	if err != nil {
		return nil
	}
	vols[m.Name] = m
	var files []string
	for {
		ix := buildIndex(vols)
		top := m.Active
		parent := m.Layers[top].Parent
		if _, owned := m.Layers[parent]; parent == "" || !owned || len(ix.children[parent]) != 1 {
			return files
		}
		for _, s := range m.Snapshots {
			if s.Layer == parent {
				return files
			}
		}
		if err := commit(ctx, p, m, ix, top, key); err != nil {
			return files
		}
		m.Active = parent
		delete(m.Layers, top)
		files = append(files, p.layerPath(top))
	}
}

func commit(ctx context.Context, p *Pool, m *volMeta, ix index, top string, key []byte) error {
	a := p.access(m, ix, top, key)
	a.WritableBacking = true
	return qemuimg.Commit(ctx, poolkit.ToolImage(a))
}
