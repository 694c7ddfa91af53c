// Package cgroup places processes into cgroup v1 groups (the hierarchy this host has: one
// mount per controller under /sys/fs/cgroup/<controller>) to pin CPUs (cpuset) and weigh CPU
// time (cpu.shares). A process must be moved before it runs its workload: the QEMU driver starts
// QEMU with vCPUs stopped (-S), moves it, then continues it.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Root is where the v1 controllers are mounted.
var Root = "/sys/fs/cgroup"

// Config is what a group enforces; zero values leave the controller alone.
type Config struct {
	CPUSet string // cpuset.cpus list, e.g. "0-1"
	Shares int    // cpu.shares
}

// Group is a cgroup of the same relative path under each controller it uses.
type Group struct {
	rel         string   // <parent>/<name>
	controllers []string // controllers the group was created in
}

// Available tells whether the v1 cpu and cpuset controllers are mounted and writable.
func Available() error {
	for _, c := range []string{"cpu", "cpuset"} {
		st, err := os.Stat(filepath.Join(Root, c, "cgroup.procs"))
		if err != nil {
			return fmt.Errorf("cgroup v1 controller %s is not mounted at %s/%s: %w", c, Root, c, err)
		}
		if st.Mode().Perm()&0o200 == 0 {
			return fmt.Errorf("cgroup v1 controller %s at %s/%s is read-only", c, Root, c)
		}
	}
	return nil
}

func write(path, val string) error {
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("cgroup: write %q to %s: %w", val, path, err)
	}
	return nil
}

func read(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// ensureCpuset creates dir under the cpuset hierarchy with cpus/mems inherited from its
// parent: a v1 cpuset with empty cpus or mems refuses tasks.
func ensureCpuset(rel string) error {
	base := filepath.Join(Root, "cpuset")
	cur := base
	for _, part := range strings.Split(rel, "/") {
		parent := cur
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup: %w", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if read(filepath.Join(cur, f)) == "" {
				if err := write(filepath.Join(cur, f), read(filepath.Join(parent, f))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// New creates (or reuses) the group parent/name and applies cfg. Only the controllers cfg needs
// are touched.
func New(parent, name string, cfg Config) (*Group, error) {
	if name == "" || strings.ContainsAny(name, "/.") {
		return nil, fmt.Errorf("cgroup: bad group name %q", name)
	}
	g := &Group{rel: filepath.Join(parent, name)}
	ok := false
	defer func() {
		if !ok {
			g.Remove()
		}
	}()
	if cfg.CPUSet != "" {
		if err := ensureCpuset(g.rel); err != nil {
			return nil, err
		}
		g.controllers = append(g.controllers, "cpuset")
		if err := write(filepath.Join(Root, "cpuset", g.rel, "cpuset.cpus"), cfg.CPUSet); err != nil {
			return nil, err
		}
	}
	if cfg.Shares != 0 {
		dir := filepath.Join(Root, "cpu", g.rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		g.controllers = append(g.controllers, "cpu")
		if err := write(filepath.Join(dir, "cpu.shares"), strconv.Itoa(cfg.Shares)); err != nil {
			return nil, err
		}
	}
	ok = true
	return g, nil
}

// Path is the group's directory under controller.
func (g *Group) Path(controller string) string { return filepath.Join(Root, controller, g.rel) }

// Add moves pid (all its threads: cgroup.procs) into the group.
func (g *Group) Add(pid int) error {
	for _, c := range g.controllers {
		if err := write(filepath.Join(g.Path(c), "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the group directories; they must be empty (the process has exited).
func (g *Group) Remove() error {
	var errs []error
	for _, c := range g.controllers {
		if err := os.Remove(g.Path(c)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes parent/name under every controller, ignoring absent ones (for groups left
// by a previous daemon).
func Cleanup(parent, name string) {
	for _, c := range []string{"cpu", "cpuset"} {
		os.Remove(filepath.Join(Root, c, parent, name))
	}
}
