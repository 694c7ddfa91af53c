package dir

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/diskimage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// ExportVolumeFile converts the volume (its whole chain, decrypted) to a standalone image at
// path, built under a temporary name beside it and renamed into place.
func (p *Pool) ExportVolumeFile(ctx context.Context, name string, format storage.Format, path string, progress storage.ProgressFunc) error {
	if _, err := storage.ParseFormat(string(format)); err != nil {
		return err
	}
	p.mu.Lock()
	m, err := p.load(name)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	vols, err := p.loadAll()
	if err != nil {
		p.mu.Unlock()
		return err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	a := p.access(m, buildIndex(vols), m.Active, key)
	p.mu.Unlock()
	// The layers exported are not changed by other operations except restore/delete; holding
	// the lock for a long copy would block the pool, so the daemon serialises per volume.
	return poolkit.ExportFile(ctx, objName("volume", name), poolkit.ToolImage(a), format, path, progress)
}

// ExportVolume exports to a temporary file in the pool, then streams it to w.
func (p *Pool) ExportVolume(ctx context.Context, name string, format storage.Format, w io.Writer, progress storage.ProgressFunc) error {
	return poolkit.ExportStream(objName("volume", name), p.cfg.Path, format, w, func(tmp string) error {
		return p.ExportVolumeFile(ctx, name, format, tmp, progress)
	})
}

// ImportVolume validates the image, converts it into a new qcow2 layer under a temporary name,
// renames it into place and only then writes the volume metadata.
func (p *Pool) ImportVolume(ctx context.Context, path, name string, opts storage.ImportOpts) (storage.Volume, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return storage.Volume{}, err
	}
	if err := p.checkOpts(name, &opts.VolumeOpts); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	err := p.checkFree(name)
	p.mu.Unlock()
	if err != nil {
		return storage.Volume{}, err
	}
	img, err := diskimage.Probe(ctx, path, opts.SourceFormat)
	if err != nil {
		return storage.Volume{}, err
	}
	size := (img.VirtualSize + 511) &^ 511
	if err := storage.ValidateSize(name, size); err != nil {
		return storage.Volume{}, err
	}
	m, key, err := p.newMeta(name, size, opts.VolumeOpts)
	if err != nil {
		return storage.Volume{}, err
	}
	r := revert.New()
	defer r.Fail()
	tmp := fsutil.TempName(p.layerDir(), "import")
	r.Add(func() { os.Remove(tmp) })
	co := qemuimg.ConvertOpts{Src: img.Source(), Dst: tmp, DstFormat: "qcow2", Progress: opts.Progress,
		IterTimeMs: p.cfg.LUKSIterTimeMs, DstOptions: []string{"cluster_size=65536"}}
	if m.Encrypted {
		a := storage.Access{Pool: p.cfg.Name, Volume: name, Key: key}
		co.DstSecret, co.DstSecretID = a.SecretObjectArg(), a.SecretID()
	}
	if err := qemuimg.Convert(ctx, co); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, objName("image", path), err, "check the image and free space", "conversion failed")
	}
	if err := fsutil.SyncFile(tmp); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, objName("volume", name), err, "check the disk", "cannot flush imported data")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkFree(name); err != nil { // taken while converting
		return storage.Volume{}, err
	}
	id := fsutil.RandomID(8)
	if err := os.Rename(tmp, p.layerPath(id)); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, objName("volume", name), err, "", "cannot place imported layer")
	}
	r.Add(func() { os.Remove(p.layerPath(id)) })
	m.Active = id
	m.Layers[id] = layerMeta{}
	m.CreatedAt = time.Now().UTC()
	if err := p.save(m); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return describe(m, p.allocated(m)), nil
}
