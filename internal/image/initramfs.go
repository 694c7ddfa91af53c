package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	"github.com/cavaliergopher/cpio"
)

// Paths inside an appliance initramfs.
const (
	InitPath       = "/init"
	ModulesDirPath = "/lib/modules"
	// ModulesListPath lists the modules to load, one path per line, in load order.
	ModulesListPath = "/etc/finvirt/modules"
	// ImageInfoPath records the kernel version the image was built for.
	ImageInfoPath = "/etc/finvirt/image"
)

// Entry is one file of an initramfs as recorded in image metadata.
type Entry struct {
	Path string `json:"path"`
	Mode uint32 `json:"mode"`
	Size int64  `json:"size"`
}

type cpioFile struct {
	name string
	mode uint32 // permission bits
	dir  bool
	link string
	data []byte
}

// cpioArchive accumulates files and writes a newc archive with parent directories first.
type cpioArchive struct {
	files map[string]*cpioFile
}

func newArchive() *cpioArchive { return &cpioArchive{files: map[string]*cpioFile{}} }

func (a *cpioArchive) addDirs(p string) {
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		if _, ok := a.files[d]; !ok {
			a.files[d] = &cpioFile{name: d, mode: 0o755, dir: true}
		}
	}
}

func (a *cpioArchive) dir(p string, mode uint32) {
	a.addDirs(p)
	a.files[p] = &cpioFile{name: p, mode: mode, dir: true}
}

func (a *cpioArchive) file(p string, mode uint32, data []byte) error {
	if _, ok := a.files[p]; ok {
		return fmt.Errorf("initramfs: %s added twice (two binaries with the same name?)", p)
	}
	a.addDirs(p)
	a.files[p] = &cpioFile{name: p, mode: mode, data: data}
	return nil
}

func (a *cpioArchive) symlink(p, target string) {
	a.addDirs(p)
	a.files[p] = &cpioFile{name: p, mode: 0o777, link: target}
}

// write emits the archive; it returns the listing of regular files.
func (a *cpioArchive) write(w io.Writer) ([]Entry, error) {
	names := make([]string, 0, len(a.files))
	for n := range a.files {
		names = append(names, n)
	}
	sort.Strings(names) // parents sort before children
	cw := cpio.NewWriter(w)
	var list []Entry
	for i, n := range names {
		f := a.files[n]
		h := &cpio.Header{Name: strings.TrimPrefix(n, "/"), Links: 1, Inode: int64(i + 1), Mode: cpio.FileMode(f.mode)}
		switch {
		case f.dir:
			h.Mode |= cpio.TypeDir
			h.Links = 2
		case f.link != "":
			h.Mode |= cpio.TypeSymlink
			h.Size = int64(len(f.link))
		default:
			h.Mode |= cpio.TypeReg
			h.Size = int64(len(f.data))
			list = append(list, Entry{Path: n, Mode: f.mode, Size: h.Size})
		}
		if err := cw.WriteHeader(h); err != nil {
			return nil, err
		}
		var body []byte
		if f.link != "" {
			body = []byte(f.link)
		} else {
			body = f.data
		}
		if _, err := cw.Write(body); err != nil {
			return nil, err
		}
	}
	return list, cw.Close()
}

// checkStatic rejects binaries that cannot run in an initramfs without a libc.
func checkStatic(name string, data []byte) error {
	if bytes.HasPrefix(data, []byte("#!")) {
		return nil // a script: its interpreter must be one of the binaries
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("binary %s is neither an ELF executable nor a #! script", name)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("binary %s is built for %v; appliances run x86-64", name, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s is dynamically linked (it needs an ELF interpreter and a libc the appliance does not have); rebuild it statically (Go: CGO_ENABLED=0; C: -static) or use a *-static package such as busybox-static", name)
		}
	}
	return nil
}

// busyboxApplets lists the applets of a busybox binary (busybox --list); "sh" at least.
func busyboxApplets(bin string) []string {
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return []string{"sh"}
	}
	var apps []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			apps = append(apps, a)
		}
	}
	return apps
}

// ApplianceSpec says what goes into an appliance image.
type ApplianceSpec struct {
	// Agent is the static finvirt-agent binary that becomes /init. Required.
	Agent string
	// Binaries are extra static executables placed at /bin/<basename>.
	Binaries []string
	// KernelDir holds boot/vmlinuz-* and lib/modules (default KernelDir()).
	KernelDir string
	// ExtraModules are loaded after the standard virtio set.
	ExtraModules []string
	// Init overrides /init with a different program (used by the bare-boot benchmark); when set,
	// Agent may be empty.
	Init string
}

// buildInitramfs writes the appliance initramfs for spec and kernel k to w.
func buildInitramfs(w io.Writer, spec ApplianceSpec, k Kernel) ([]Entry, error) {
	a := newArchive()
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/mnt", "/root", "/etc/finvirt", "/bin"} {
		a.dir(d, 0o755)
	}
	a.files["/tmp"].mode = 0o1777
	initSrc := spec.Agent
	if spec.Init != "" {
		initSrc = spec.Init
	}
	if initSrc == "" {
		return nil, fmt.Errorf("appliance spec: Agent (path to a static finvirt-agent binary) is required")
	}
	data, err := os.ReadFile(initSrc)
	if err != nil {
		return nil, fmt.Errorf("init binary: %w", err)
	}
	if err := checkStatic(initSrc, data); err != nil {
		return nil, err
	}
	if err := a.file(InitPath, 0o755, data); err != nil {
		return nil, err
	}
	busybox := ""
	for _, b := range spec.Binaries {
		data, err := os.ReadFile(b)
		if err != nil {
			return nil, fmt.Errorf("binary: %w", err)
		}
		if err := checkStatic(b, data); err != nil {
			return nil, err
		}
		if err := a.file("/bin/"+path.Base(b), 0o755, data); err != nil {
			return nil, err
		}
		if path.Base(b) == "busybox" {
			busybox = b
		}
	}
	if busybox != "" {
		// Link the applets (sh, cat, ...) as a busybox install would; named binaries win.
		for _, app := range busyboxApplets(busybox) {
			p := "/bin/" + app
			if _, taken := a.files[p]; !taken {
				a.symlink(p, "busybox")
			}
		}
	}
	ms, err := OpenModules(k.ModulesDir)
	if err != nil {
		return nil, err
	}
	mods, err := ms.Resolve(append(append([]string{}, RequiredModules...), spec.ExtraModules...), OptionalModules)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", k.Version, err)
	}
	var order strings.Builder
	for _, m := range mods {
		data, err := ms.read(m.Name)
		if err != nil {
			return nil, err
		}
		p := ModulesDirPath + "/" + m.Name + ".ko"
		if err := a.file(p, 0o644, data); err != nil {
			return nil, err
		}
		order.WriteString(p + "\n")
	}
	if err := a.file(ModulesListPath, 0o644, []byte(order.String())); err != nil {
		return nil, err
	}
	// No image name here: identical content under two names must hash the same.
	info := fmt.Sprintf("kernel=%s\n", k.Version)
	if err := a.file(ImageInfoPath, 0o644, []byte(info)); err != nil {
		return nil, err
	}
	return a.write(w)
}
