package image

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RequiredModules are the virtio drivers every appliance loads; the agent cannot reach the host
// or its disks without them.
//
// The order is the load order: virtio_console first because the agent's channel needs it and
// boot-to-ready waits for it; virtio_pci last because -M microvm has no PCI bus (the agent
// skips PCI modules there).
var RequiredModules = []string{
	"virtio_mmio", "virtio_console", "virtio_blk", "virtio_net", "virtio_balloon", "virtio_pci",
}

// OptionalModules are loaded when the kernel has them: evdev and button expose the ACPI power
// button as /dev/input/eventN so the agent can power off on system_powerdown.
var OptionalModules = []string{"evdev", "button"}

// Module is one kernel module to put into the initramfs.
type Module struct {
	Name string // normalised name (underscores), e.g. virtio_pci
	Path string // absolute path of the .ko (possibly .ko.xz/.ko.zst) on the host
	Rel  string // path relative to lib/modules/<ver>
}

// ModuleSet indexes the modules of one kernel tree.
type ModuleSet struct {
	dir     string
	byName  map[string]string // name -> relative path
	builtin map[string]bool
	deps    map[string][]string // from modules.dep when present
}

func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// OpenModules indexes lib/modules/<ver>. modules.dep is used when present; otherwise (the
// Debian package ships without it, depmod runs at install time) dependencies come from each
// module's own .modinfo "depends=" field.
func OpenModules(dir string) (*ModuleSet, error) {
	m := &ModuleSet{dir: dir, byName: map[string]string{}, builtin: map[string]bool{}}
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			rel, _ := filepath.Rel(dir, p)
			m.byName[modName(p)] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules %s: %w", dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			m.builtin[modName(l)] = true
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.dep")); err == nil {
		m.deps = parseModulesDep(b)
	}
	return m, nil
}

// parseModulesDep parses depmod's "path: dep1 dep2" lines into name -> dependency names.
func parseModulesDep(b []byte) map[string][]string {
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var ds []string
		for _, d := range strings.Fields(v) {
			ds = append(ds, modName(d))
		}
		deps[modName(k)] = ds
	}
	return deps
}

// Has reports whether the tree has the module (as a file or built in).
func (m *ModuleSet) Has(name string) bool {
	name = modName(name)
	_, ok := m.byName[name]
	return ok || m.builtin[name]
}

func (m *ModuleSet) depsOf(name string) ([]string, error) {
	if m.deps != nil {
		if d, ok := m.deps[name]; ok {
			return d, nil
		}
	}
	data, err := m.read(name)
	if err != nil {
		return nil, err
	}
	return modinfoDepends(data)
}

// modinfoDepends returns the depends= field of a module's .modinfo section.
func modinfoDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, fmt.Errorf("not an ELF module: %v", err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("module has no .modinfo section")
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, modName(d))
				}
			}
		}
	}
	return deps, nil
}

// read returns the uncompressed bytes of a module. finit_module needs plain ELF unless the
// guest kernel has CONFIG_MODULE_DECOMPRESS, so compressed modules are expanded at build time.
func (m *ModuleSet) read(name string) ([]byte, error) {
	rel, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("module %s not found under %s", name, m.dir)
	}
	p := filepath.Join(m.dir, rel)
	var tool string
	switch {
	case strings.HasSuffix(p, ".ko"):
		return os.ReadFile(p)
	case strings.HasSuffix(p, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".ko.zst"):
		tool = "zstd"
	case strings.HasSuffix(p, ".ko.gz"):
		tool = "gzip"
	default:
		return nil, fmt.Errorf("module %s: unknown compression of %s", name, p)
	}
	out, err := exec.Command(tool, "-dc", p).Output()
	if err != nil {
		return nil, fmt.Errorf("module %s: decompressing %s with %s (install it): %v", name, p, tool, err)
	}
	return out, nil
}

// Resolve returns the modules needed for names, dependencies first, each once. Built-in
// modules are skipped. Names in optional are included only when the tree has them.
func (m *ModuleSet) Resolve(names, optional []string) ([]Module, error) {
	var out []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, n), " -> "))
		}
		if m.builtin[n] {
			state[n] = 2
			return nil
		}
		rel, ok := m.byName[n]
		if !ok {
			if len(chain) > 0 {
				return fmt.Errorf("module %s (needed by %s) is missing from %s", n, chain[len(chain)-1], m.dir)
			}
			return fmt.Errorf("module %s is neither in %s nor built into the kernel", n, m.dir)
		}
		state[n] = 1
		deps, err := m.depsOf(n)
		if err != nil {
			return fmt.Errorf("module %s: %w", n, err)
		}
		for _, d := range deps {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, Module{Name: n, Path: filepath.Join(m.dir, rel), Rel: rel})
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n), nil); err != nil {
			return nil, err
		}
	}
	for _, n := range optional {
		if m.Has(n) {
			if err := visit(modName(n), nil); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
