package qemu

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/finvirt/finvirt/internal/compute"
)

// Layout names the files of one instance directory. Everything QEMU touches lives here, so
// /proc/PID/cmdline of a QEMU names its instance directory (used to recognise it).
type Layout struct {
	Dir       string
	Spec      string // spec.json (0600: may hold disk keys)
	Status    string // status.json
	PIDFile   string
	QMP       string
	Agent     string
	Console   string
	SerialLog string
	QEMULog   string // QEMU's own stdout/stderr
	Vars      string // per-instance UEFI variable store
	TPMDir    string
	TPMSock   string
	TPMPID    string
	Ports     string // ports.json: which spare root port each hot-plugged device uses
}

// NewLayout returns the layout of an instance directory; serialLog overrides the console log.
func NewLayout(dir, serialLog string) Layout {
	l := Layout{
		Dir: dir, Spec: dir + "/spec.json", Status: dir + "/status.json", PIDFile: dir + "/qemu.pid",
		QMP: dir + "/qmp.sock", Agent: dir + "/agent.sock", Console: dir + "/console.sock",
		SerialLog: dir + "/console.log", QEMULog: dir + "/qemu.log", Vars: dir + "/OVMF_VARS.fd",
		TPMDir: dir + "/tpm", TPMSock: dir + "/swtpm.sock", TPMPID: dir + "/swtpm.pid", Ports: dir + "/ports.json",
	}
	if serialLog != "" {
		l.SerialLog = serialLog
	}
	return l
}

// removeRuntime deletes what a QEMU run leaves: pidfile and sockets (QEMU does not unlink its
// listening sockets when it fails or is killed).
func (l Layout) removeRuntime() {
	for _, f := range []string{l.PIDFile, l.QMP, l.Console, l.Agent, l.TPMSock, l.Ports} {
		os.Remove(f)
	}
}

// Host OVMF images (Debian package ovmf). The 4M variant is the current layout.
const (
	DefaultFirmware     = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultFirmwareVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// DefaultTBSizeMiB is the TCG translation cache per instance: QEMU's default of 1 GiB would
// dominate the RSS of small appliances; 32 MiB showed no boot cost (docs/perf/compute.md).
const DefaultTBSizeMiB = 32

// HotplugPorts is the number of spare PCIe root ports of a full guest, i.e. how many disks and
// NICs can be hot-plugged at once.
const HotplugPorts = 4

// tcgCmdline are the kernel parameters a guest needs under TCG: without tsc_early_khz the
// kernel hangs on microvm calibrating the TSC; the rest skip slow calibration loops.
var tcgCmdline = []string{"tsc_early_khz=2500000", "tsc=reliable", "no_timer_check", "lpj=5000000", "quiet"}

// esc doubles commas, QEMU's escape inside option values (a path with a comma would otherwise
// start a new option).
func esc(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func onoff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// KernelCmdline returns the appliance command line: the spec's, plus console=ttyS0 and the TCG
// parameters that are not already given (a caller's value for the same key wins).
func KernelCmdline(user string, accel string) string {
	words := strings.Fields(user)
	have := map[string]bool{}
	for _, w := range words {
		k, _, _ := strings.Cut(w, "=")
		have[k] = true
	}
	add := []string{}
	if !have["console"] {
		add = append(add, "console=ttyS0")
	}
	if accel != "kvm" {
		for _, w := range tcgCmdline {
			k, _, _ := strings.Cut(w, "=")
			if !have[k] {
				add = append(add, w)
			}
		}
	}
	return strings.Join(append(add, words...), " ")
}

// diskArgs returns the -blockdev/-device arguments of a disk. The format node is named
// drive-<id> and the device disk-<id>; hot-plug uses the same names (hotplug.go).
func diskNodes(d compute.DiskSpec) (file, format map[string]any) {
	direct := d.Cache == "" || d.Cache == compute.CacheNone
	aio := d.AIO
	if aio == "" {
		aio = "threads"
	}
	file = map[string]any{
		"driver": "file", "node-name": "file-" + d.ID, "filename": d.Path, "aio": aio,
		"read-only": d.ReadOnly, "cache": map[string]any{"direct": direct, "no-flush": false},
	}
	format = map[string]any{
		"driver": string(d.Format), "node-name": "drive-" + d.ID, "file": "file-" + d.ID,
		"read-only": d.ReadOnly, "cache": map[string]any{"direct": direct, "no-flush": false},
	}
	if d.Secret != nil {
		if d.Format == compute.FormatQcow2 {
			format["encrypt"] = map[string]any{"format": "luks", "key-secret": secretID(d)}
		} else {
			// A raw image with a secret is a LUKS container: the luks driver sits on the file.
			format["driver"] = "luks"
			format["key-secret"] = secretID(d)
		}
	}
	if len(d.Backing) > 0 {
		format["backing"] = backingNode(d, 0, direct, aio)
	}
	return file, format
}

// backingNode spells out layer i of the disk's backing chain and, nested in it, every layer
// below, ending in "backing": null so QEMU opens nothing the headers name. Backing layers are
// read-only and created inline: deleting the top node releases them. Node names (bk<i>-<id>,
// bf<i>-<id>) stay under QEMU's 31-character limit for 20-character disk ids.
func backingNode(d compute.DiskSpec, i int, direct bool, aio string) map[string]any {
	l := d.Backing[i]
	cache := map[string]any{"direct": direct, "no-flush": false}
	file := map[string]any{
		"driver": "file", "node-name": fmt.Sprintf("bf%d-%s", i+1, d.ID), "filename": l.Path, "aio": aio,
		"read-only": true, "cache": cache,
	}
	n := map[string]any{
		"driver": string(l.Format), "node-name": fmt.Sprintf("bk%d-%s", i+1, d.ID), "file": file,
		"read-only": true, "cache": cache,
	}
	if l.Encrypted && d.Secret != nil {
		if l.Format == compute.FormatQcow2 {
			n["encrypt"] = map[string]any{"format": "luks", "key-secret": secretID(d)}
		} else {
			n["driver"] = "luks"
			n["key-secret"] = secretID(d)
		}
	}
	if l.Format == compute.FormatQcow2 {
		if i+1 < len(d.Backing) {
			n["backing"] = backingNode(d, i+1, direct, aio)
		} else {
			n["backing"] = nil
		}
	}
	return n
}

func secretID(d compute.DiskSpec) string { return "sec-" + d.Secret.ID }

// tapFDKey is the key of a NIC's inherited tap descriptor in BuildArgs' fd map (secret ids
// are [a-z0-9-], so "tap/" never collides with one).
func tapFDKey(nicID string) string { return "tap/" + nicID }

// blockdevArg renders a blockdev node as a -blockdev dotted key=value list, or as JSON (which
// -blockdev also accepts) when it nests a backing chain: dotted keys cannot say "backing": null.
func blockdevArg(node map[string]any) string {
	if _, nested := node["backing"]; nested {
		b, err := json.Marshal(node)
		if err != nil {
			panic(err) // maps of strings, bools and maps only
		}
		return string(b)
	}
	var parts []string
	order := []string{"driver", "node-name", "filename", "file", "aio", "read-only", "cache", "encrypt", "key-secret"}
	for _, k := range order {
		v, ok := node[k]
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			parts = append(parts, k+"="+esc(v))
		case bool:
			parts = append(parts, k+"="+onoff(v))
		case map[string]any:
			for _, sub := range []string{"direct", "no-flush", "format", "key-secret"} {
				if sv, ok := v[sub]; ok {
					switch sv := sv.(type) {
					case bool:
						parts = append(parts, k+"."+sub+"="+onoff(sv))
					case string:
						parts = append(parts, k+"."+sub+"="+esc(sv))
					}
				}
			}
		}
	}
	return strings.Join(parts, ",")
}

func serialOf(d compute.DiskSpec) string {
	if d.Serial != "" {
		return d.Serial
	}
	return d.ID
}

// diskDevice is the device property list of a disk (without the bus).
func diskDevice(model string, d compute.DiskSpec) string {
	writeCache := d.Cache != compute.CacheWritethrough
	return fmt.Sprintf("%s,drive=drive-%s,id=disk-%s,serial=%s,write-cache=%s", model, d.ID, d.ID, esc(serialOf(d)), onoff(writeCache))
}

// BuildArgs returns the QEMU argv (without the binary) for spec. It is a pure function of its
// inputs. secretFD maps a disk secret id (and tapFDKey(nic id) for taps in another network
// namespace) to the fd number QEMU inherits it on (see startProcess): keys never appear in
// argv. accel is "kvm" or "tcg".
func BuildArgs(spec compute.Spec, l Layout, accel string, secretFD map[string]int) ([]string, error) {
	microvm := spec.Profile == compute.ProfileAppliance
	a := []string{"-name", esc(spec.Name) + ",debug-threads=on"}
	if microvm {
		// ACPI stays on: the Debian kernel finds virtio-mmio devices through ACPI (it lacks
		// VIRTIO_MMIO_CMDLINE_DEVICES) and powers off through it. No legacy PIT/PIC.
		a = append(a, "-M", "microvm,acpi=on,pit=off,pic=off,rtc=on,isa-serial=on")
	} else {
		a = append(a, "-M", "q35")
	}
	a = append(a, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot")
	switch accel {
	case "kvm":
		a = append(a, "-accel", "kvm", "-cpu", "host")
	case "tcg", "":
		tb := spec.TBSizeMiB
		if tb == 0 {
			tb = DefaultTBSizeMiB
		}
		a = append(a, "-accel", "tcg,tb-size="+strconv.Itoa(tb))
	default:
		return nil, fmt.Errorf("accelerator %q is unknown; use kvm or tcg", accel)
	}
	a = append(a, "-m", strconv.Itoa(spec.MemoryMiB)+"M", "-smp", strconv.Itoa(spec.VCPUs))
	// -S: QEMU starts with vCPUs stopped so the driver can place it in its cgroup (and finish
	// setup over QMP) before any guest code runs; Start sends "cont".
	a = append(a, "-S", "-pidfile", l.PIDFile, "-qmp", "unix:"+esc(l.QMP)+",server=on,wait=off")

	if spec.Kernel != "" {
		a = append(a, "-kernel", esc(spec.Kernel))
		if spec.Initrd != "" {
			a = append(a, "-initrd", esc(spec.Initrd))
		}
		a = append(a, "-append", KernelCmdline(spec.Cmdline, accel))
	} else if !microvm {
		fw := spec.Firmware
		if fw == "" {
			fw = DefaultFirmware
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+esc(fw),
			"-drive", "if=pflash,format=raw,unit=1,file="+esc(l.Vars))
	}

	// Console: one chardev serves the interactive socket and tees everything to the log.
	a = append(a, "-chardev", "socket,id=con0,path="+esc(l.Console)+",server=on,wait=off,logfile="+esc(l.SerialLog)+",logappend=on",
		"-serial", "chardev:con0")

	dev := func(mmio, pci string) string {
		if microvm {
			return mmio
		}
		return pci
	}
	// On q35 every disk and NIC sits on its own PCIe root port (rp-<id>), as libvirt does:
	// devices on the root bus pcie.0 could never be unplugged.
	chassis := 0
	port := func(id string) string {
		if microvm {
			return ""
		}
		chassis++
		a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=rp-%s,bus=pcie.0,chassis=%d", id, chassis))
		return ",bus=rp-" + id
	}
	// Guest agent channel (internal/agent speaks on it).
	a = append(a, "-device", dev("virtio-serial-device", "virtio-serial-pci"),
		"-chardev", "socket,id=agent0,path="+esc(l.Agent)+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent0,name=org.finvirt.agent.0")

	for _, d := range spec.Disks {
		if d.Secret != nil {
			fd, ok := secretFD[d.Secret.ID]
			if !ok {
				return nil, fmt.Errorf("disk %q: no fd for secret %q", d.ID, d.Secret.ID)
			}
			a = append(a, "-object", fmt.Sprintf("secret,id=%s,format=raw,file=/proc/self/fd/%d", secretID(d), fd))
		}
		file, format := diskNodes(d)
		bus := port(d.ID)
		a = append(a, "-blockdev", blockdevArg(file), "-blockdev", blockdevArg(format),
			"-device", diskDevice(dev("virtio-blk-device", "virtio-blk-pci"), d)+bus)
	}
	for _, n := range spec.NICs {
		bus := port(n.ID)
		netdev := "tap,id=net-" + n.ID + ",ifname=" + n.Tap + ",script=no,downscript=no"
		if n.NetNS != "" {
			fd, ok := secretFD[tapFDKey(n.ID)]
			if !ok {
				return nil, fmt.Errorf("nic %q: no fd for its tap %s in %s", n.ID, n.Tap, n.NetNS)
			}
			netdev = fmt.Sprintf("tap,id=net-%s,fd=%d,vhost=off", n.ID, fd)
		}
		a = append(a, "-netdev", netdev,
			"-device", dev("virtio-net-device", "virtio-net-pci")+",netdev=net-"+n.ID+",mac="+n.MAC+",id=nic-"+n.ID+bus)
	}
	if spec.Balloon {
		a = append(a, "-device", dev("virtio-balloon-device", "virtio-balloon-pci")+",id=balloon0")
	}
	if !microvm {
		if spec.TPM != nil {
			model := spec.TPM.Model
			if model == "" {
				model = "tpm-tis"
			}
			a = append(a, "-chardev", "socket,id=chrtpm,path="+esc(l.TPMSock),
				"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", model+",tpmdev=tpm0")
		}
		for i := 0; i < HotplugPorts; i++ {
			chassis++
			a = append(a, "-device", fmt.Sprintf("pcie-root-port,id=hp%d,bus=pcie.0,chassis=%d", i, chassis))
		}
	}
	return a, nil
}
