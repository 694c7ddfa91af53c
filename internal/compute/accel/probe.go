// Package accel decides whether guests run under KVM or TCG. A /dev/kvm that opens is not
// proof: on nested or PVM hosts (this development host) KVM_CREATE_VM succeeds but a stock
// guest kernel never gets going. So the probe boots a real kernel under -enable-kvm with a
// deadline and calls KVM usable only if the kernel prints on its console in time.
package accel

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accelerators.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// EnvOverride names the environment variable that forces an accelerator (kvm | tcg).
const EnvOverride = "FINVIRT_ACCEL"

// DefaultDeadline bounds the probe boot. A working KVM prints the kernel banner in well under
// a second; 8 s leaves room for a loaded host.
const DefaultDeadline = 8 * time.Second

// DefaultMarker is the first line a Linux kernel prints on its console.
const DefaultMarker = "Linux version "

// Options configure a probe.
type Options struct {
	Binary   string        // qemu-system-x86_64 unless set
	Device   string        // /dev/kvm unless set
	Kernel   string        // kernel to boot (uncompressed vmlinux or bzImage); required for a KVM verdict
	Initrd   string        // optional
	Marker   string        // console text that proves the guest ran; DefaultMarker unless set
	Deadline time.Duration // DefaultDeadline unless set
	// Override forces the result ("kvm" | "tcg"); empty reads $FINVIRT_ACCEL.
	Override string
	// CacheFile, when set, keeps the verdict across processes: a daemon restarted on the same
	// host boot, with the same QEMU, device and probe kernel, reuses it instead of booting
	// the probe again (~8 s on a host without working KVM). See cacheKey for what counts.
	CacheFile string
}

// Result is the probe's verdict.
type Result struct {
	Accel    string        // kvm | tcg
	Reason   string        // why this accelerator
	Warning  string        // set when the host runs slower than it could, or the verdict is forced
	Duration time.Duration // how long the probe took
	Cached   bool          // true when an earlier probe (this process, or CacheFile) answered
	// ProbedAt is when the probe that made this verdict ran (zero for a forced verdict).
	ProbedAt time.Time `json:",omitempty"`
}

var (
	cacheMu sync.Mutex
	cache   = map[string]Result{}
)

// ResetCache forgets earlier probes (tests, or after the host changed).
func ResetCache() {
	cacheMu.Lock()
	cache = map[string]Result{}
	cacheMu.Unlock()
}

// Probe returns the accelerator to use. The verdict is cached for the process, per options.
// It returns an error only for an override that is neither kvm nor tcg.
func Probe(ctx context.Context, o Options) (Result, error) {
	source := "configuration (--accel " + o.Override + ")"
	if o.Override == "" {
		o.Override = os.Getenv(EnvOverride)
		source = EnvOverride + "=" + o.Override
	}
	switch o.Override {
	case "":
	case TCG:
		return Result{Accel: TCG, Reason: "forced by " + source}, nil
	case KVM:
	default:
		return Result{}, fmt.Errorf("accelerator override %q is unknown; use %s=kvm or %s=tcg", o.Override, EnvOverride, EnvOverride)
	}
	if o.Binary == "" {
		o.Binary = "qemu-system-x86_64"
	}
	if o.Device == "" {
		o.Device = "/dev/kvm"
	}
	if o.Marker == "" {
		o.Marker = DefaultMarker
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.Override == KVM {
		return forcedKVM(o, source), nil
	}
	key := strings.Join([]string{o.Binary, o.Device, o.Kernel, o.Initrd, o.Marker, o.Deadline.String()}, "\x00")
	cacheMu.Lock()
	defer cacheMu.Unlock() // one probe at a time: a second caller waits for the first verdict
	if r, ok := cache[key]; ok {
		r.Cached = true
		return r, nil
	}
	var pkey string
	var parts []string
	if o.CacheFile != "" {
		pkey, parts = cacheKey(o)
		if p, ok := loadPersisted(o.CacheFile, pkey); ok {
			r := p.Result
			r.Cached, r.ProbedAt = true, p.ProbedAt
			cache[key] = r
			return r, nil
		}
	}
	start := time.Now()
	r := runProbe(ctx, o)
	r.Duration, r.ProbedAt = time.Since(start), start
	if ctx.Err() == nil {
		cache[key] = r // a cancelled probe proves nothing; do not remember it
		if o.CacheFile != "" {
			if err := savePersisted(o.CacheFile, persisted{Key: pkey, Inputs: parts, Result: r, ProbedAt: start}); err != nil {
				r.Warning = strings.TrimSpace(r.Warning + " (probe verdict not saved: " + err.Error() + ")")
			}
		}
	}
	return r, nil
}

// runProbe is the real probe; a test wraps it to count probe boots.
var runProbe = probe

func probe(ctx context.Context, o Options) Result {
	f, err := os.OpenFile(o.Device, os.O_RDWR, 0)
	if err != nil {
		return Result{Accel: TCG, Reason: fmt.Sprintf("%s does not open: %v", o.Device, err),
			Warning: "no hardware virtualization: guests run under TCG emulation, 10-50x slower"}
	}
	f.Close()
	if o.Kernel == "" {
		return Result{Accel: TCG, Reason: o.Device + " opens but no probe kernel was given, so KVM is unproven",
			Warning: "using TCG without a KVM probe boot; pass a kernel to accel.Probe"}
	}
	ok, detail := bootOnce(ctx, o)
	if ok {
		return Result{Accel: KVM, Reason: detail}
	}
	return Result{Accel: TCG, Reason: detail,
		Warning: fmt.Sprintf("%s opens but a guest kernel does not boot under it (nested or PVM host?); using TCG, guests run 10-50x slower", o.Device)}
}

// probeAccel and probeCmdline are variables only so that a test can check the marker
// detection with a TCG boot (no KVM host needed).
var (
	probeAccel   = []string{"-enable-kvm", "-cpu", "host"}
	probeCmdline = "console=ttyS0 panic=-1"
)

// bootOnce boots the probe kernel under KVM in its own process group and watches the console
// for the marker until the deadline; the whole group is killed either way.
func bootOnce(ctx context.Context, o Options) (bool, string) {
	args := []string{"-name", fmt.Sprintf("finvirt-accel-probe-%d", os.Getpid()),
		"-M", "microvm,acpi=on", "-m", "128"}
	args = append(args, probeAccel...)
	args = append(args, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", o.Kernel, "-append", probeCmdline)
	if o.Initrd != "" {
		args = append(args, "-initrd", o.Initrd)
	}
	cmd := exec.Command(o.Binary, args...)
	// Own process group so the kill below takes QEMU's helpers too; Pdeathsig so a daemon
	// killed during the probe does not leave a QEMU spinning under -enable-kvm (unlike
	// instances, the probe must never outlive the process that started it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, err.Error()
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return false, fmt.Sprintf("start %s: %v", o.Binary, err)
	}
	kill := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	defer func() {
		kill()
		cmd.Wait()
	}()
	found := make(chan struct{})
	go func() {
		r := bufio.NewReader(out)
		var seen strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			seen.Write(buf[:n])
			if strings.Contains(seen.String(), o.Marker) {
				close(found)
				io.Copy(io.Discard, r)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	start := time.Now()
	timer := time.NewTimer(o.Deadline)
	defer timer.Stop()
	select {
	case <-found:
		return true, fmt.Sprintf("probe boot under KVM printed %q after %v", strings.TrimSpace(o.Marker), time.Since(start).Round(time.Millisecond))
	case <-timer.C:
		return false, fmt.Sprintf("probe boot under KVM printed nothing within %v (KVM_CREATE_VM works, the guest does not run)", o.Deadline)
	case <-ctx.Done():
		return false, "probe cancelled: " + ctx.Err().Error()
	}
}

// forcedKVM trusts a forced kvm without a probe boot: the daemon starts and every launch uses
// KVM as asked. But where a probe verdict saved for this very host (same key) says KVM does
// not boot a guest, the warning says so loudly: those guests will hang.
func forcedKVM(o Options, source string) Result {
	r := Result{Accel: KVM, Reason: "forced by " + source,
		Warning: "KVM was not probed; if guests hang at boot, the host's KVM cannot run them (nested or PVM host)"}
	if o.CacheFile == "" {
		return r
	}
	pkey, _ := cacheKey(o)
	if p, ok := loadPersisted(o.CacheFile, pkey); ok && p.Result.Accel == TCG {
		r.Warning = fmt.Sprintf("KVM IS FORCED (%s) BUT THE PROBE ON THIS HOST FAILED at %s (%s): every guest is launched under KVM as asked and will likely hang at boot; use --accel auto or tcg",
			source, p.ProbedAt.UTC().Format(time.RFC3339), p.Result.Reason)
	}
	return r
}
