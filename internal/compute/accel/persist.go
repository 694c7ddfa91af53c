package accel

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// bootIDFile changes on every host boot: a verdict never outlives the boot it was made on
// (a kernel update, a changed kvm module parameter or a new host all come with a reboot).
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// persisted is the probe cache file: the verdict and the key of everything that decided it.
type persisted struct {
	Key      string    `json:"key"`
	Inputs   []string  `json:"inputs"` // the key's parts, for a human reading the file
	Result   Result    `json:"result"`
	ProbedAt time.Time `json:"probed_at"`
}

// cacheKey identifies what a probe's verdict depends on: the QEMU binary (resolved path, size,
// mtime), the device node (its device number), the probe kernel and initrd (path, size, mtime),
// the marker, the deadline and the host boot. Any change makes the persisted verdict stale.
func cacheKey(o Options) (string, []string) {
	bin := o.Binary
	if p, err := exec.LookPath(bin); err == nil {
		bin = p
	}
	parts := []string{
		"binary=" + fileStamp(bin),
		"device=" + devStamp(o.Device),
		"kernel=" + fileStamp(o.Kernel),
		"initrd=" + fileStamp(o.Initrd),
		"marker=" + o.Marker,
		"deadline=" + o.Deadline.String(),
		"boot=" + readTrim(bootIDFile),
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return hex.EncodeToString(h[:]), parts
}

func fileStamp(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	fi, err := os.Stat(p)
	if err != nil {
		return p + ":missing"
	}
	return fmt.Sprintf("%s:%d:%d", p, fi.Size(), fi.ModTime().UnixNano())
}

func devStamp(p string) string {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return p + ":missing"
	}
	return fmt.Sprintf("%s:%d:%d", p, st.Rdev, st.Ino)
}

func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadPersisted returns the verdict stored in file for key, if any.
func loadPersisted(file, key string) (persisted, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return persisted{}, false
	}
	var p persisted
	if json.Unmarshal(b, &p) != nil || p.Key != key || (p.Result.Accel != KVM && p.Result.Accel != TCG) {
		return persisted{}, false
	}
	return p, true
}

// savePersisted writes the verdict atomically (temp file, fsync, rename). Failing to save only
// costs the next start a probe, so the error is returned for logging, not acted on.
func savePersisted(file string, p persisted) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
