package dir

import (
	"context"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/keys"
)

// RotateMasterKey re-wraps the key of every encrypted volume with the master key in
// newMasterKeyFile (created if missing). Each volume's metadata is rewritten atomically.
func (p *Pool) RotateMasterKey(ctx context.Context, newMasterKeyFile string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, err := p.master()
	if err != nil {
		return 0, err
	}
	nm, err := keys.LoadOrCreate(newMasterKeyFile)
	if err != nil {
		return 0, storage.Wrap(storage.ErrInvalid, "master key "+newMasterKeyFile, err, "check the path", "cannot be loaded")
	}
	vols, err := p.loadAll()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range vols {
		if !m.Encrypted {
			continue
		}
		w, changed, err := keys.Rewrap(old, nm, m.WrappedKey, poolkit.KeyAAD(m.ID))
		if err != nil {
			return n, storage.Wrap(storage.ErrInvalid, objName("volume", m.Name), err, "run the rotation again with the original master key configured", "cannot re-wrap its key")
		}
		if !changed {
			continue
		}
		m.WrappedKey = w
		if err := p.save(m); err != nil {
			return n, err
		}
		n++
	}
	p.cfg.MasterKeyFile = newMasterKeyFile
	return n, nil
}

var _ storage.KeyRotator = (*Pool)(nil)
