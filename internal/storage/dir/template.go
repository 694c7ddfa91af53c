package dir

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/fsutil"
	"github.com/finvirt/finvirt/internal/storage/internal/poolkit"
	"github.com/finvirt/finvirt/internal/storage/qemuimg"
)

// LUKS templates. qemu-img spends ~2 s benchmarking PBKDF for every LUKS header it creates
// (more on a loaded host), which would make each snapshot, restore and clone of an encrypted
// volume take seconds. Instead each encrypted volume has one empty 1 MiB LUKS qcow2,
// templates/<volume id>.qcow2, made once; a new layer is a copy of it with its backing file name
// and size set (qemu-img rebase -u, resize: ~0.1 s). Consequence, documented in
// docs/storage.md: the layers of a volume (and its clones) share one LUKS data key, as btrfs
// snapshots of a LUKS file do.

func (p *Pool) templateDir() string           { return filepath.Join(p.cfg.Path, "templates") }
func (p *Pool) templatePath(id string) string { return filepath.Join(p.templateDir(), id+".qcow2") }

func (p *Pool) secret(m *volMeta, key []byte) storage.Access {
	return storage.Access{Pool: p.cfg.Name, Volume: m.Name, Key: key}
}

// ensureTemplate creates the volume's template if it does not exist yet.
func (p *Pool) ensureTemplate(ctx context.Context, m *volMeta, key []byte) (string, error) {
	path := p.templatePath(m.ID)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(p.templateDir(), 0o700); err != nil {
		return "", err
	}
	tmp := fsutil.TempName(p.templateDir(), "template")
	a := p.secret(m, key)
	err := qemuimg.Create(ctx, qemuimg.CreateOpts{Path: tmp, Format: "qcow2", Size: storage.MinVolumeSize,
		Secret: a.SecretObjectArg(), SecretID: a.SecretID(), IterTimeMs: p.cfg.LUKSIterTimeMs, Options: []string{"cluster_size=65536"}})
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// copyTemplate gives a clone its source's template (same passphrase, so it stays valid).
func (p *Pool) copyTemplate(src, dst *volMeta) {
	if _, err := os.Stat(p.templatePath(src.ID)); err == nil {
		tmp := fsutil.TempName(p.templateDir(), "template")
		if copyFile(p.templatePath(src.ID), tmp) == nil && os.Rename(tmp, p.templatePath(dst.ID)) == nil {
			return
		}
		os.Remove(tmp)
	}
}

// layerFromTemplate writes an encrypted layer at path: a copy of the template, pointed at its
// backing file and grown to size. The header is edited with an explicit json spec whose
// "backing" is null, so qemu neither opens the backing chain nor zeroes the grown area (which
// it does when an overlay is grown over a longer backing file).
func (p *Pool) layerFromTemplate(ctx context.Context, m *volMeta, key []byte, path, backing string, size uint64) error {
	tpl, err := p.ensureTemplate(ctx, m, key)
	if err != nil {
		return err
	}
	if err := copyFile(tpl, path); err != nil {
		return err
	}
	a := p.secret(m, key)
	a.Chain = []storage.Layer{{Path: path, Format: storage.FormatQcow2, Encrypted: true}}
	img := poolkit.ToolImage(a)
	if backing != "" {
		if err := qemuimg.RebaseUnsafe(ctx, img, backing+".qcow2", "qcow2"); err != nil {
			return err
		}
	}
	if size != storage.MinVolumeSize {
		return qemuimg.Resize(ctx, img, size, false)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// removeOrphanTemplates deletes templates of volumes that no longer exist.
func (p *Pool) removeOrphanTemplates(ids map[string]bool, rep *storage.RecoverReport) {
	ents, err := os.ReadDir(p.templateDir())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	for _, e := range ents {
		id, ok := cutSuffix(e.Name(), ".qcow2")
		if fsutil.IsTemp(e.Name()) || ok && !ids[id] {
			path := filepath.Join(p.templateDir(), e.Name())
			if os.Remove(path) == nil {
				rep.Removed = append(rep.Removed, path)
			}
		}
	}
}
