package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/finvirt/finvirt/internal/agent"
)

// InstanceArchive returns a newc cpio holding only /etc/finvirt/instance.json for cfg.
func InstanceArchive(cfg agent.Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	a := newArchive()
	if err := a.file(agent.ConfigPath, 0o600, append(js, '\n')); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := a.write(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteInstanceInitrd writes dst = base initrd + a second cpio carrying cfg as
// /etc/finvirt/instance.json. Linux unpacks concatenated archives in order, so one base image
// boots many instances with different configurations. dst is replaced atomically.
func WriteInstanceInitrd(baseInitrdPath string, cfg agent.Config, dstPath string) error {
	extra, err := InstanceArchive(cfg)
	if err != nil {
		return fmt.Errorf("instance config: %w", err)
	}
	src, err := os.Open(baseInitrdPath)
	if err != nil {
		return fmt.Errorf("base initrd: %w", err)
	}
	defer src.Close()
	f, err := os.CreateTemp(filepath.Dir(dstPath), ".tmp-initrd-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, src)
	if err != nil {
		return err
	}
	// The kernel expects each archive to start 4-byte aligned; pad with zeros, which it skips.
	if pad := (4 - n%4) % 4; pad != 0 {
		if _, err := f.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if _, err := f.Write(extra); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dstPath); err != nil {
		return err
	}
	ok = true
	return nil
}
