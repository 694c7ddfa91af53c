package compute

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Limits bound what Validate accepts; drivers fill them from the host.
type Limits struct {
	HostCPUs      int
	HostMemoryMiB int
}

// Fixed bounds. MaxVCPUs keeps TCG guests (one host thread per vCPU) from swamping a host;
// MinMemoryMiB is about what a 6.1 kernel plus initramfs needs to reach /init.
const (
	MaxVCPUs       = 64
	VCPUsPerCPU    = 4
	MinMemoryMiB   = 64
	MaxTBSizeMiB   = 2048
	MinCPUWeight   = 2
	MaxCPUWeight   = 262144
	maxSerialBytes = 20 // virtio-blk serial field size
	maxCPUSetRange = 8192
)

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	devIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,19}$`)
	serialRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,20}$`)
	tapRe    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
)

// MaxVCPUsFor is the vCPU cap for a host with hostCPUs CPUs.
func MaxVCPUsFor(hostCPUs int) int {
	m := hostCPUs * VCPUsPerCPU
	if m > MaxVCPUs || m <= 0 {
		m = MaxVCPUs
	}
	return m
}

func invalid(name, format string, a ...any) error {
	return fmt.Errorf("%w: instance %q: %s", ErrInvalid, name, fmt.Sprintf(format, a...))
}

// ValidateName checks an instance name (it becomes a directory and cgroup name).
func ValidateName(name string) error {
	if !nameRe.MatchString(name) {
		return invalid(name, "name must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	return nil
}

// Validate checks spec against the fixed bounds and the host limits. It does not touch the
// file system; drivers check that referenced files exist.
func Validate(spec Spec, lim Limits) error {
	n := spec.Name
	if err := ValidateName(n); err != nil {
		return err
	}
	switch spec.Profile {
	case ProfileAppliance:
		if spec.Kernel == "" {
			return invalid(n, "profile appliance needs kernel (an uncompressed vmlinux); set kernel")
		}
		if spec.Firmware != "" || spec.FirmwareVars != "" {
			return invalid(n, "profile appliance boots the kernel directly and takes no firmware; remove firmware or use profile full")
		}
		if spec.TPM != nil {
			return invalid(n, "profile appliance has no TPM; remove tpm or use profile full")
		}
	case ProfileFull:
		if spec.Kernel != "" && spec.Firmware != "" {
			return invalid(n, "set either kernel (direct boot) or firmware (UEFI), not both")
		}
		if spec.TPM != nil && spec.TPM.Model != "" && spec.TPM.Model != "tpm-tis" && spec.TPM.Model != "tpm-crb" {
			return invalid(n, "tpm model %q is unknown; use tpm-tis or tpm-crb", spec.TPM.Model)
		}
	case "":
		return invalid(n, "profile is empty; use appliance or full")
	default:
		return invalid(n, "profile %q is unknown; use appliance or full", spec.Profile)
	}
	if spec.Kernel == "" && (spec.Initrd != "" || spec.Cmdline != "") {
		return invalid(n, "initrd and cmdline need a kernel; set kernel or remove them")
	}
	for _, p := range []struct{ what, path string }{{"kernel", spec.Kernel}, {"initrd", spec.Initrd}, {"firmware", spec.Firmware}, {"firmware_vars", spec.FirmwareVars}, {"serial_log", spec.SerialLog}} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			return invalid(n, "%s path %q must be absolute", p.what, p.path)
		}
	}

	maxCPU := MaxVCPUsFor(lim.HostCPUs)
	switch {
	case spec.VCPUs < 1:
		return invalid(n, "vcpus %d: at least 1 vCPU is needed", spec.VCPUs)
	case spec.VCPUs > maxCPU:
		return invalid(n, "vcpus %d exceeds the limit %d (%d per host CPU on %d host CPUs, at most %d); lower vcpus", spec.VCPUs, maxCPU, VCPUsPerCPU, lim.HostCPUs, MaxVCPUs)
	}
	switch {
	case spec.MemoryMiB < MinMemoryMiB:
		return invalid(n, "memory_mib %d is below the minimum %d MiB; raise memory_mib", spec.MemoryMiB, MinMemoryMiB)
	case lim.HostMemoryMiB > 0 && spec.MemoryMiB > lim.HostMemoryMiB:
		return invalid(n, "memory_mib %d exceeds host memory %d MiB; lower memory_mib", spec.MemoryMiB, lim.HostMemoryMiB)
	}
	if spec.TBSizeMiB < 0 || spec.TBSizeMiB > MaxTBSizeMiB {
		return invalid(n, "tb_size_mib %d out of range 0..%d (0 = default 32)", spec.TBSizeMiB, MaxTBSizeMiB)
	}
	if spec.CPUWeight != 0 && (spec.CPUWeight < MinCPUWeight || spec.CPUWeight > MaxCPUWeight) {
		return invalid(n, "cpu_weight %d out of range %d..%d (0 = default 1024)", spec.CPUWeight, MinCPUWeight, MaxCPUWeight)
	}
	if spec.CPUSet != "" {
		if _, err := ParseCPUSet(spec.CPUSet, lim.HostCPUs); err != nil {
			return invalid(n, "cpuset %q: %v", spec.CPUSet, err)
		}
	}

	ids := map[string]bool{}
	for i, d := range spec.Disks {
		if err := ValidateDisk(n, d); err != nil {
			return err
		}
		if ids[d.ID] {
			return invalid(n, "disk %d: id %q is used twice; give each disk a unique id", i, d.ID)
		}
		ids[d.ID] = true
	}
	for i, nic := range spec.NICs {
		if err := ValidateNIC(n, nic); err != nil {
			return err
		}
		if ids[nic.ID] {
			return invalid(n, "nic %d: id %q is already used by another disk or nic; ids must be unique", i, nic.ID)
		}
		ids[nic.ID] = true
	}
	return nil
}

// ValidateDisk checks one disk of instance name.
func ValidateDisk(name string, d DiskSpec) error {
	if !devIDRe.MatchString(d.ID) {
		return invalid(name, "disk id %q must be 1-20 characters of a-z, 0-9 and '-'", d.ID)
	}
	if !filepath.IsAbs(d.Path) {
		return invalid(name, "disk %q: path %q must be absolute", d.ID, d.Path)
	}
	switch d.Format {
	case FormatQcow2, FormatRaw:
	default:
		return invalid(name, "disk %q: format %q is unknown; use qcow2 or raw", d.ID, d.Format)
	}
	if d.Serial != "" && !serialRe.MatchString(d.Serial) {
		return invalid(name, "disk %q: serial %q must be 1-%d characters of A-Z a-z 0-9 . _ -", d.ID, d.Serial, maxSerialBytes)
	}
	switch d.Cache {
	case "", CacheNone, CacheWritethrough, CacheWriteback:
	default:
		return invalid(name, "disk %q: cache %q is unknown; use none, writethrough or writeback", d.ID, d.Cache)
	}
	switch d.AIO {
	case "", "threads", "io_uring":
	case "native":
		if d.Cache != "" && d.Cache != CacheNone {
			return invalid(name, "disk %q: aio native needs cache none (O_DIRECT)", d.ID)
		}
	default:
		return invalid(name, "disk %q: aio %q is unknown; use threads, native or io_uring", d.ID, d.AIO)
	}
	if d.Secret != nil {
		if !devIDRe.MatchString(d.Secret.ID) {
			return invalid(name, "disk %q: secret id %q must be 1-20 characters of a-z, 0-9 and '-'", d.ID, d.Secret.ID)
		}
		if len(d.Secret.Key) == 0 {
			return invalid(name, "disk %q: secret %q has an empty key", d.ID, d.Secret.ID)
		}
	}
	return validateBacking(name, d)
}

// maxBackingDepth bounds a disk's chain: every layer is an open file and a node in QEMU.
const maxBackingDepth = 128

func validateBacking(name string, d DiskSpec) error {
	if len(d.Backing) == 0 {
		return nil
	}
	if len(d.Backing) > maxBackingDepth {
		return invalid(name, "disk %q: backing chain of %d layers is deeper than %d; flatten the volume (delete old snapshots)", d.ID, len(d.Backing), maxBackingDepth)
	}
	if d.Format != FormatQcow2 {
		return invalid(name, "disk %q: a %s image cannot have a backing chain; only qcow2 can", d.ID, d.Format)
	}
	for i, l := range d.Backing {
		if !filepath.IsAbs(l.Path) {
			return invalid(name, "disk %q: backing layer %d path %q must be absolute", d.ID, i+1, l.Path)
		}
		switch l.Format {
		case FormatQcow2:
		case FormatRaw:
			if i != len(d.Backing)-1 {
				return invalid(name, "disk %q: backing layer %d is raw but has layers below it; only the base may be raw", d.ID, i+1)
			}
		default:
			return invalid(name, "disk %q: backing layer %d format %q is unknown; use qcow2 or raw", d.ID, i+1, l.Format)
		}
		if l.Encrypted && d.Secret == nil {
			return invalid(name, "disk %q: backing layer %d is encrypted but the disk has no secret", d.ID, i+1)
		}
	}
	return nil
}

// ValidateNIC checks one NIC of instance name.
func ValidateNIC(name string, nic NICSpec) error {
	if !devIDRe.MatchString(nic.ID) {
		return invalid(name, "nic id %q must be 1-20 characters of a-z, 0-9 and '-'", nic.ID)
	}
	if !tapRe.MatchString(nic.Tap) {
		return invalid(name, "nic %q: tap %q is not a valid interface name (1-15 characters, no '/' or spaces)", nic.ID, nic.Tap)
	}
	mac, err := net.ParseMAC(nic.MAC)
	if err != nil || len(mac) != 6 {
		return invalid(name, "nic %q: mac %q is not a 48-bit MAC like 52:54:00:12:34:56", nic.ID, nic.MAC)
	}
	if mac[0]&1 != 0 {
		return invalid(name, "nic %q: mac %q is a multicast address; the first octet must be even", nic.ID, nic.MAC)
	}
	if nic.NetNS != "" && !filepath.IsAbs(nic.NetNS) {
		return invalid(name, "nic %q: network namespace %q must be an absolute path like /run/netns/NAME", nic.ID, nic.NetNS)
	}
	return nil
}

// ParseCPUSet parses a cpuset list ("0-2,5") and checks every CPU is below hostCPUs (when > 0).
func ParseCPUSet(s string, hostCPUs int) ([]int, error) {
	var cpus []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%q is not a CPU number or range like 0-3", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%q is not a CPU range like 0-3", part)
			}
		}
		if b-a >= maxCPUSetRange {
			return nil, fmt.Errorf("%q spans more than %d CPUs", part, maxCPUSetRange)
		}
		for c := a; c <= b; c++ {
			if hostCPUs > 0 && c >= hostCPUs {
				return nil, fmt.Errorf("CPU %d does not exist (host has CPUs 0-%d)", c, hostCPUs-1)
			}
			if !seen[c] {
				seen[c] = true
				cpus = append(cpus, c)
			}
		}
	}
	return cpus, nil
}

// Redacted returns a copy of spec with secret keys removed, for Info and logs.
func (s Spec) Redacted() Spec {
	out := s
	out.Disks = make([]DiskSpec, len(s.Disks))
	for i, d := range s.Disks {
		if d.Secret != nil {
			sec := *d.Secret
			sec.Key = nil
			d.Secret = &sec
		}
		out.Disks[i] = d
	}
	out.NICs = append([]NICSpec(nil), s.NICs...)
	return out
}
