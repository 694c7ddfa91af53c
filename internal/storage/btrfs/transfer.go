package btrfs

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/revert"
	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/diskimage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// ExportVolumeFile converts the (decrypted) volume to a standalone image at path, through a
// temporary name. It reads a private read-only snapshot, so the export is consistent even
// while the volume is in use.
func (p *Pool) ExportVolumeFile(ctx context.Context, name string, format storage.Format, path string, progress storage.ProgressFunc) error {
	if _, err := storage.ParseFormat(string(format)); err != nil {
		return err
	}
	obj := fmt.Sprintf("volume %q", name)
	p.mu.Lock()
	m, err := p.load(name)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	key, err := p.volumeKey(m)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	snap := fsutil.TempName(p.cfg.Path, "export")
	err = subvolSnapshot(ctx, p.volPath(name), snap, true)
	p.mu.Unlock()
	if err != nil {
		return storage.Wrap(storage.ErrInvalid, obj, err, "", "cannot snapshot for export")
	}
	defer subvolDelete(context.Background(), snap)
	a := p.access(snap, m, key)
	a.ReadOnly = true
	return poolkit.ExportFile(ctx, obj, poolkit.ToolImage(a), format, path, progress)
}

// ExportVolume exports to a temporary file, then streams it to w.
func (p *Pool) ExportVolume(ctx context.Context, name string, format storage.Format, w io.Writer, progress storage.ProgressFunc) error {
	return poolkit.ExportStream(fmt.Sprintf("volume %q", name), p.cfg.Path, format, w, func(tmp string) error {
		return p.ExportVolumeFile(ctx, name, format, tmp, progress)
	})
}

// ImportVolume validates the image and converts it into a temporary subvolume, renamed into
// place when complete.
func (p *Pool) ImportVolume(ctx context.Context, path, name string, opts storage.ImportOpts) (storage.Volume, error) {
	if err := storage.ValidateName("volume", name); err != nil {
		return storage.Volume{}, err
	}
	if err := checkOpts(name, &opts.VolumeOpts); err != nil {
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
	tmp, err := p.tempSubvol(ctx, r, "import")
	if err != nil {
		return storage.Volume{}, err
	}
	co := qemuimg.ConvertOpts{Src: img.Source(), Dst: filepath.Join(tmp, diskName(m.Format)), DstFormat: string(m.Format),
		Progress: opts.Progress, IterTimeMs: p.cfg.LUKSIterTimeMs}
	if m.Encrypted {
		a := storage.Access{Pool: p.cfg.Name, Volume: name, Key: key}
		co.DstSecret, co.DstSecretID = a.SecretObjectArg(), a.SecretID()
	}
	if err := qemuimg.Convert(ctx, co); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("image %q", path), err, "check the image and free space", "conversion failed")
	}
	if err := fsutil.SyncFile(co.Dst); err != nil {
		return storage.Volume{}, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("volume %q", name), err, "check the disk", "cannot flush imported data")
	}
	if err := writeMeta(tmp, m); err != nil {
		return storage.Volume{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.checkFree(name); err != nil {
		return storage.Volume{}, err
	}
	if err := p.place(tmp, name); err != nil {
		return storage.Volume{}, err
	}
	r.Success()
	return describe(m, fsutil.DirAllocated(p.volPath(name)), 0), nil
}
