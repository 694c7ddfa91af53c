// Package image builds and stores finvirt guest images.
//
// An appliance image is a kernel (the uncompressed PVH vmlinux extracted from a Debian cloud
// kernel) plus a newc initramfs whose /init is the finvirt guest agent, the virtio modules it
// loads and any extra static binaries. Images live in a Store keyed by a content hash; names
// are references to that hash, so two names for identical content share one copy.
//
// Store layout:
//
//	<dir>/images/<id>/{metadata.json,vmlinux,initrd[,disk.qcow2]}
//	<dir>/refs/<name>        JSON {name,id,created}
//	<dir>/kernels/<sha256 of vmlinuz>/vmlinux   extraction cache
//	<dir>/tmp/               builds and imports in progress (renamed into images/ when complete)
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Image kinds.
const (
	KindAppliance = "appliance"
	KindFull      = "full"
)

// File names inside an image directory.
const (
	metadataFile = "metadata.json"
	vmlinuxFile  = "vmlinux"
	initrdFile   = "initrd"
	diskFile     = "disk.qcow2"
)

// ErrNotFound is returned (wrapped) when no image has the requested name or id.
var ErrNotFound = errors.New("image not found")

// FileInfo describes one file of an image.
type FileInfo struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Image is the metadata of one stored image.
type Image struct {
	ID            string    `json:"id"` // sha256 over kind and file hashes
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	Created       time.Time `json:"created"`
	KernelVersion string    `json:"kernel_version"`
	Vmlinux       FileInfo  `json:"vmlinux"`
	Initrd        *FileInfo `json:"initrd,omitempty"`
	Disk          *FileInfo `json:"disk,omitempty"`
	Contents      []Entry   `json:"contents,omitempty"` // initramfs files (appliance)
	// BuildSeconds is how long the build took (0 for imports).
	BuildSeconds float64 `json:"build_seconds,omitempty"`

	dir string
}

// VmlinuxPath is the kernel to pass to QEMU -kernel.
func (im *Image) VmlinuxPath() string { return filepath.Join(im.dir, vmlinuxFile) }

// InitrdPath is the base initramfs to pass to QEMU -initrd (see WriteInstanceInitrd).
func (im *Image) InitrdPath() string { return filepath.Join(im.dir, initrdFile) }

// DiskPath is the root disk of a full image ("" for appliances).
func (im *Image) DiskPath() string {
	if im.Disk == nil {
		return ""
	}
	return filepath.Join(im.dir, diskFile)
}

// Size is the total bytes of the image files.
func (im *Image) Size() int64 {
	n := im.Vmlinux.Size
	if im.Initrd != nil {
		n += im.Initrd.Size
	}
	if im.Disk != nil {
		n += im.Disk.Size
	}
	return n
}

func computeID(kind string, files ...*FileInfo) string {
	h := sha256.New()
	fmt.Fprintf(h, "finvirt-image-v1\nkind=%s\n", kind)
	for _, f := range files {
		if f != nil {
			fmt.Fprintf(h, "%s %d\n", f.SHA256, f.Size)
		} else {
			fmt.Fprintf(h, "-\n")
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

type ref struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName checks an image name: lower-case letters, digits, '.', '_' and '-', 1-63
// characters, starting with a letter or digit (so it is a safe file name).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("image name %q is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Store is a directory of images.
type Store struct {
	dir string
	mu  sync.Mutex // serialises mutations within the process; flock across processes
}

// OpenStore opens (creating if needed) the image store at dir.
func OpenStore(dir string) (*Store, error) {
	for _, d := range []string{"images", "refs", "kernels", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("image store %s: %w", dir, err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

// lock takes the store lock; the returned func releases it.
func (s *Store) lock() (func(), error) {
	s.mu.Lock()
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		s.mu.Unlock()
		return nil, err
	}
	return func() { f.Close(); s.mu.Unlock() }, nil
}

func (s *Store) refPath(name string) string { return filepath.Join(s.dir, "refs", name) }
func (s *Store) imageDir(id string) string  { return filepath.Join(s.dir, "images", id) }

func (s *Store) readRef(name string) (ref, error) {
	var r ref
	b, err := os.ReadFile(s.refPath(name))
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

func (s *Store) load(r ref) (*Image, error) {
	dir := s.imageDir(r.ID)
	b, err := os.ReadFile(filepath.Join(dir, metadataFile))
	if err != nil {
		return nil, fmt.Errorf("image %s: metadata: %w", r.Name, err)
	}
	im := &Image{}
	if err := json.Unmarshal(b, im); err != nil {
		return nil, fmt.Errorf("image %s: metadata: %w", r.Name, err)
	}
	im.Name, im.Created, im.dir = r.Name, r.Created, dir
	return im, nil
}

// List returns all images sorted by name.
func (s *Store) List() ([]*Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "refs"))
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := s.readRef(e.Name())
		if err != nil {
			return nil, fmt.Errorf("image ref %s: %w", e.Name(), err)
		}
		im, err := s.load(r)
		if err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns the image with the given name, or with an id (or unique id prefix of at least
// 12 hex digits).
func (s *Store) Get(nameOrID string) (*Image, error) {
	if ValidateName(nameOrID) == nil {
		if r, err := s.readRef(nameOrID); err == nil {
			return s.load(r)
		}
	}
	if len(nameOrID) >= 12 {
		all, err := s.List()
		if err != nil {
			return nil, err
		}
		var hit *Image
		for _, im := range all {
			if strings.HasPrefix(im.ID, nameOrID) {
				if hit != nil && hit.ID != im.ID {
					return nil, fmt.Errorf("image id prefix %q is ambiguous (%s, %s): give more digits", nameOrID, hit.ID[:16], im.ID[:16])
				}
				if hit == nil {
					hit = im
				}
			}
		}
		if hit != nil {
			return hit, nil
		}
	}
	return nil, fmt.Errorf("%w: no image named or with id %q (see image list)", ErrNotFound, nameOrID)
}

// Delete removes the name; the files go when no other name refers to the same content.
func (s *Store) Delete(name string) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := s.readRef(name)
	if err != nil {
		return fmt.Errorf("%w: no image named %q", ErrNotFound, name)
	}
	if err := os.Remove(s.refPath(name)); err != nil {
		return err
	}
	if !s.referenced(r.ID) {
		return os.RemoveAll(s.imageDir(r.ID))
	}
	return nil
}

func (s *Store) referenced(id string) bool {
	ents, _ := os.ReadDir(filepath.Join(s.dir, "refs"))
	for _, e := range ents {
		if r, err := s.readRef(e.Name()); err == nil && r.ID == id {
			return true
		}
	}
	return false
}

// commit moves a completed build/import directory into place and adds the name, under the
// store lock. tmpDir is consumed (moved or removed) in every case.
func (s *Store) commit(tmpDir string, im *Image) (*Image, error) {
	defer os.RemoveAll(tmpDir)
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(s.refPath(im.Name)); err == nil {
		return nil, fmt.Errorf("image %q already exists: delete it first or choose another name", im.Name)
	}
	stored := *im
	stored.Name, stored.Created = "", time.Time{}
	js, err := json.MarshalIndent(&stored, "", "  ")
	if err != nil {
		return nil, err
	}
	dst := s.imageDir(im.ID)
	movedHere := false
	if _, err := os.Stat(dst); os.IsNotExist(err) {
		if err := os.WriteFile(filepath.Join(tmpDir, metadataFile), js, 0o644); err != nil {
			return nil, err
		}
		if err := os.Rename(tmpDir, dst); err != nil {
			return nil, err
		}
		movedHere = true
	}
	rb, _ := json.Marshal(ref{Name: im.Name, ID: im.ID, Created: im.Created})
	if err := writeFileAtomic(s.refPath(im.Name), rb, 0o644); err != nil {
		if movedHere {
			os.RemoveAll(dst)
		}
		return nil, err
	}
	out := *im
	out.dir = dst
	return &out, nil
}

// hashFile returns the size and sha256 of p.
func hashFile(p string) (*FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	return &FileInfo{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// linkOrCopy hard-links src to dst (same filesystem), copying when linking is impossible.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
