package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/store"
)

// progressWriter counts bytes towards an expected total and reports percentages.
type progressWriter struct {
	w        io.Writer
	h        hash.Hash
	n, total int64
	report   progressFunc
	last     int
	ctx      context.Context
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.w.Write(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	if p.total > 0 {
		pct := int(p.n * 99 / p.total)
		if pct > 99 {
			pct = 99
		}
		if pct > p.last {
			p.last = pct
			p.report(pct, fmt.Sprintf("%d of ~%d bytes", p.n, p.total))
		}
	}
	return n, err
}

// handleBackupCreate writes a consistent copy of the state database into
// <state-dir>/backups/<name>.db as an operation with progress. The copy is written to a
// temporary file and renamed, so a crash never leaves a half backup under the final name.
func (d *Daemon) handleBackupCreate(w http.ResponseWriter, r *http.Request, rc *Request) error {
	var req api.BackupsPost
	if len(rc.body) > 0 {
		if err := decodeJSON(rc.body, &req); err != nil {
			return err
		}
	}
	if req.Name == "" {
		req.Name = "state-" + time.Now().UTC().Format("20060102-150405")
	}
	if err := validName("backup", req.Name); err != nil {
		return err
	}
	dir := filepath.Join(d.cfg.StateDir, "backups")
	final := filepath.Join(dir, req.Name+".db")
	if _, err := os.Stat(final); err == nil {
		return conflict("backup %s already exists at %s", req.Name, final)
	}
	var total int64
	if st, err := os.Stat(filepath.Join(d.cfg.StateDir, "state.db")); err == nil {
		total = st.Size()
	}
	op := d.startOperation("backup state database to "+final, "", map[string]string{"backup": req.Name}, func(ctx context.Context, progress progressFunc) error {
		return writeBackup(ctx, d.store, dir, final, total, progress)
	})
	w.Header().Set("Location", "/1.0/operations/"+op.ID)
	return writeJSON(w, http.StatusAccepted, op)
}

func writeBackup(ctx context.Context, st store.Store, dir, final string, total int64, progress progressFunc) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	pw := &progressWriter{w: tmp, h: sha256.New(), total: total, report: progress, ctx: ctx}
	if _, err := st.Backup(ctx, pw); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	progress(100, fmt.Sprintf("wrote %s (%d bytes, sha256 %s)", final, pw.n, hex.EncodeToString(pw.h.Sum(nil))))
	return nil
}
