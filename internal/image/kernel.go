package image

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultKernelDir is where setup unpacks the Debian cloud kernel package.
const DefaultKernelDir = "/var/cache/finvirt/kernel"

// KernelDir returns $FINVIRT_KERNEL_DIR or DefaultKernelDir.
func KernelDir() string {
	if d := os.Getenv("FINVIRT_KERNEL_DIR"); d != "" {
		return d
	}
	return DefaultKernelDir
}

// Kernel is a kernel package unpacked on the host.
type Kernel struct {
	Version    string // e.g. 6.1.0-57-cloud-amd64
	Vmlinuz    string // path to boot/vmlinuz-<Version>
	ModulesDir string // path to lib/modules/<Version>
}

// FindKernel locates the newest vmlinuz-* under dir/boot that has a matching lib/modules tree.
func FindKernel(dir string) (Kernel, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	sort.Sort(sort.Reverse(sort.StringSlice(matches)))
	for _, m := range matches {
		ver := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		mod := filepath.Join(dir, "lib", "modules", ver)
		if st, err := os.Stat(mod); err == nil && st.IsDir() {
			return Kernel{Version: ver, Vmlinuz: m, ModulesDir: mod}, nil
		}
	}
	if len(matches) > 0 {
		return Kernel{}, fmt.Errorf("kernel dir %s: %s has no lib/modules/<version> tree beside it; unpack the whole linux-image package there", dir, matches[0])
	}
	return Kernel{}, fmt.Errorf("kernel dir %s: no boot/vmlinuz-* found; unpack linux-image-*-cloud-amd64 there (scripts/setup.sh) or set FINVIRT_KERNEL_DIR", dir)
}

// ExtractVmlinux decompresses the LZ4 payload of a bzImage and returns the ELF vmlinux, after
// checking that it carries a PVH entry note (so QEMU can boot it directly with -M microvm).
func ExtractVmlinux(bz []byte) ([]byte, error) {
	// Linux boot protocol: setup header at 0x1f1; "HdrS" at 0x202; payload_offset/length at
	// 0x248/0x24c, relative to the protected-mode code at (setup_sects+1)*512.
	if len(bz) < 0x264 || string(bz[0x202:0x206]) != "HdrS" {
		return nil, errors.New("vmlinuz: not a bzImage (no HdrS boot header)")
	}
	if v := binary.LittleEndian.Uint16(bz[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("vmlinuz: boot protocol %#x is older than 2.08 and has no payload fields", v)
	}
	setupSects := int(bz[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	base := (setupSects + 1) * 512
	off := int(binary.LittleEndian.Uint32(bz[0x248:]))
	n := int(binary.LittleEndian.Uint32(bz[0x24c:]))
	if n < 8 || base+off+n > len(bz) || base+off < 0 {
		return nil, fmt.Errorf("vmlinuz: payload [%d,+%d) lies outside the %d-byte file (truncated?)", base+off, n, len(bz))
	}
	payload := bz[base+off : base+off+n]
	if !bytes.HasPrefix(payload, []byte{0x02, 0x21, 0x4c, 0x18}) {
		return nil, fmt.Errorf("vmlinuz: payload is not LZ4 legacy (starts %x, want 02214c18); only LZ4 kernels such as Debian's cloud kernel are supported", payload[:4])
	}
	// The kernel build appends the uncompressed size after the compressed stream.
	size := int(binary.LittleEndian.Uint32(payload[n-4:]))
	out, err := decodeLZ4Legacy(payload[:n-4], size)
	if err != nil {
		return nil, fmt.Errorf("vmlinuz: %w", err)
	}
	if err := checkPVH(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkPVH verifies b is an x86-64 ELF with a Xen ELFNOTE PHYS32_ENTRY (type 18) note.
func checkPVH(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("vmlinux: decompressed payload is not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("vmlinux: ELF machine is %v, want x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			continue
		}
		if hasNote(data, "Xen", 18) {
			return nil
		}
	}
	return errors.New("vmlinux: ELF has no PVH entry note (Xen ELFNOTE type 18); the kernel needs CONFIG_PVH=y for direct boot")
}

// hasNote scans an ELF note segment for a note with the given owner and type.
func hasNote(data []byte, owner string, typ uint32) bool {
	for len(data) >= 12 {
		namesz := binary.LittleEndian.Uint32(data[0:])
		descsz := binary.LittleEndian.Uint32(data[4:])
		t := binary.LittleEndian.Uint32(data[8:])
		nameEnd := 12 + align4(uint64(namesz))
		end := nameEnd + align4(uint64(descsz))
		if end > uint64(len(data)) {
			return false
		}
		name := strings.TrimRight(string(data[12:12+namesz]), "\x00")
		if name == owner && t == typ {
			return true
		}
		data = data[end:]
	}
	return false
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// CachedVmlinux returns the path of the vmlinux extracted from vmlinuzPath, extracting it into
// cacheDir/<sha256 of vmlinuz>/vmlinux on first use. The second result is the vmlinux sha256.
func CachedVmlinux(cacheDir, vmlinuzPath string) (string, error) {
	bz, err := os.ReadFile(vmlinuzPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bz)
	dir := filepath.Join(cacheDir, hex.EncodeToString(sum[:]))
	dst := filepath.Join(dir, "vmlinux")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	out, err := ExtractVmlinux(bz)
	if err != nil {
		return "", fmt.Errorf("%s: %w", vmlinuzPath, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := writeFileAtomic(dst, out, 0o644); err != nil {
		return "", err
	}
	return dst, nil
}

// writeFileAtomic writes data to a temporary file beside p and renames it over p, so readers
// never see a partial file.
func writeFileAtomic(p string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
