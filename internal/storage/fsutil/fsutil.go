// Package fsutil holds the crash-safety helpers of the storage drivers: atomic file writes and
// temporary names that Recover can recognise and remove.
package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TempPrefix starts every name an operation builds before renaming it into place. Recover
// deletes whatever still carries it: the operation that made it did not finish.
const TempPrefix = ".tmp-"

// RandomID returns n random bytes as hex.
func RandomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// TempName is a fresh temporary name for op in dir.
func TempName(dir, op string) string {
	return filepath.Join(dir, TempPrefix+op+"-"+RandomID(6))
}

// IsTemp tells whether a base name is a leftover temporary.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteFileAtomic writes data to path via a synced temporary file and a rename, then syncs the
// directory, so a crash leaves either the old or the new content, never a torn file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp := TempName(dir, "write")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// WriteJSONAtomic marshals v (indented, for humans reading a pool by hand) and writes it atomically.
func WriteJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// ReadJSON reads a JSON file into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// SyncDir fsyncs a directory so renames in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Allocated returns the bytes a file occupies on disk (st_blocks * 512).
func Allocated(path string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return uint64(st.Blocks) * 512
}

// DirAllocated sums Allocated over the regular files under root.
func DirAllocated(root string) uint64 {
	var total uint64
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			total += Allocated(p)
		}
		return nil
	})
	return total
}

// Statfs returns total and free bytes of the filesystem holding path.
func Statfs(path string) (total, free uint64, err error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return 0, 0, err
	}
	return s.Blocks * uint64(s.Bsize), s.Bavail * uint64(s.Bsize), nil
}

// SyncFile fsyncs a file: qemu-img convert writes with cache=unsafe by default (fast), so the
// drivers make the data durable themselves before renaming it into place.
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
