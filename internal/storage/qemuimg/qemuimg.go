// Package qemuimg runs qemu-img (and qemu-io) for the storage drivers: create, info, check,
// resize, map, convert with progress, compare. Errors carry qemu-img's own message.
package qemuimg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Image says how to open an image: a path with a format, or a "json:{...}" spec (which carries
// format, backing chain and key-secret itself), plus the --object values it needs (secrets).
type Image struct {
	Path    string // file path, or "json:{...}"
	Format  string // ignored for json: specs
	Objects []string
}

func (i Image) args() []string {
	var a []string
	for _, o := range i.Objects {
		a = append(a, "--object", o)
	}
	if i.Format != "" && !strings.HasPrefix(i.Path, "json:") {
		a = append(a, "-f", i.Format)
	}
	return append(a, i.Path)
}

// Error is a failed qemu-img run.
type Error struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("qemu-img %s: %s", e.Args[0], msg)
}

func (e *Error) Unwrap() error { return e.Err }

// flakyCPU is qemu-img 7.2's spurious LUKS PBKDF benchmark failure on fast or virtualised
// CPUs (fixed upstream in 9.2.1: "crypto: fix bogus error benchmarking pbkdf"). Retrying works.
const flakyCPU = "Unable to get accurate CPU usage"

// Run runs qemu-img with args and returns stdout. It retries the spurious PBKDF failure.
func Run(ctx context.Context, args ...string) ([]byte, error) {
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "qemu-img", args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil {
			return stdout.Bytes(), nil
		}
		lastErr = &Error{Args: args, Stderr: stderr.String(), Err: err}
		if !strings.Contains(stderr.String(), flakyCPU) || ctx.Err() != nil {
			return stdout.Bytes(), lastErr
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, lastErr
}

// CreateOpts describe a new image.
type CreateOpts struct {
	Path          string
	Format        string
	Size          uint64
	Backing       string // backing file path (qcow2 only), recorded relative or absolute as given
	BackingFormat string
	// Secret, when set, is the --object value of the LUKS key secret and SecretID its id: the
	// image is created with encrypt.format=luks.
	Secret     string
	SecretID   string
	IterTimeMs int
	Options    []string // extra -o options
}

// Create runs qemu-img create.
func Create(ctx context.Context, o CreateOpts) error {
	args := []string{"create", "-q"}
	if o.Secret != "" {
		args = append(args, "--object", o.Secret)
	}
	args = append(args, "-f", o.Format)
	opts := append([]string(nil), o.Options...)
	if o.Secret != "" {
		it := o.IterTimeMs
		if it <= 0 {
			it = 10
		}
		opts = append(opts, "encrypt.format=luks", "encrypt.key-secret="+o.SecretID, "encrypt.iter-time="+strconv.Itoa(it))
	}
	if o.Backing != "" {
		// -u: do not open the backing file (it may be encrypted; the size is given explicitly).
		args = append(args, "-u", "-b", o.Backing, "-F", o.BackingFormat)
	}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	args = append(args, o.Path, strconv.FormatUint(o.Size, 10))
	_, err := Run(ctx, args...)
	return err
}

// Info is the subset of `qemu-img info --output=json` the drivers use.
type Info struct {
	Filename        string          `json:"filename"`
	Format          string          `json:"format"`
	VirtualSize     uint64          `json:"virtual-size"`
	ActualSize      uint64          `json:"actual-size"`
	BackingFilename string          `json:"backing-filename"`
	Encrypted       bool            `json:"encrypted"`
	DirtyFlag       bool            `json:"dirty-flag"`
	FormatSpecific  *FormatSpecific `json:"format-specific"`
}

// FormatSpecific carries the driver-specific part (vmdk create-type, qcow2 corrupt flag).
type FormatSpecific struct {
	Type string `json:"type"`
	Data struct {
		CreateType string `json:"create-type"`
		Corrupt    bool   `json:"corrupt"`
		Compat     string `json:"compat"`
	} `json:"data"`
}

// GetInfo runs qemu-img info on the image (not its backing chain).
func GetInfo(ctx context.Context, img Image) (*Info, error) {
	out, err := Run(ctx, append([]string{"info", "--output=json"}, img.args()...)...)
	if err != nil {
		return nil, err
	}
	var inf Info
	if err := json.Unmarshal(out, &inf); err != nil {
		return nil, fmt.Errorf("qemu-img info: bad JSON: %w", err)
	}
	return &inf, nil
}

// CheckResult is `qemu-img check --output=json`.
type CheckResult struct {
	Corruptions    int    `json:"corruptions"`
	Leaks          int    `json:"leaks"`
	CheckErrors    int    `json:"check-errors"`
	ImageEndOffset uint64 `json:"image-end-offset"`
}

// ErrCheckUnsupported: the format has no consistency check in qemu-img (raw, vpc).
var ErrCheckUnsupported = errors.New("qemu-img check not supported for this format")

// Check runs qemu-img check. It fails on corruptions and check errors; leaks are harmless
// (unreferenced clusters) and are reported in the result only.
func Check(ctx context.Context, img Image) (*CheckResult, error) {
	args := append([]string{"check", "--output=json"}, img.args()...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "does not support checks") {
		return nil, ErrCheckUnsupported
	}
	var res CheckResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		if err != nil {
			return nil, &Error{Args: args, Stderr: stderr.String(), Err: err}
		}
		return nil, fmt.Errorf("qemu-img check: bad JSON: %w", jerr)
	}
	if res.Corruptions > 0 || res.CheckErrors > 0 {
		return &res, fmt.Errorf("qemu-img check: %d corruptions, %d check errors", res.Corruptions, res.CheckErrors)
	}
	// Exit 3 = leaks only: fine. Other non-zero exits without corruption counts are errors.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return &res, &Error{Args: args, Stderr: stderr.String(), Err: err}
	}
	return &res, nil
}

// Resize sets the virtual size; shrink must be true to make it smaller.
func Resize(ctx context.Context, img Image, size uint64, shrink bool) error {
	args := []string{"resize", "-q"}
	if shrink {
		args = append(args, "--shrink")
	}
	args = append(args, img.args()...)
	args = append(args, strconv.FormatUint(size, 10))
	_, err := Run(ctx, args...)
	return err
}

// Extent is one entry of `qemu-img map --output=json`.
type Extent struct {
	Start  uint64 `json:"start"`
	Length uint64 `json:"length"`
	Depth  int    `json:"depth"`
	Zero   bool   `json:"zero"`
	Data   bool   `json:"data"`
}

// Map returns the allocation map of the image including its backing chain.
func Map(ctx context.Context, img Image) ([]Extent, error) {
	out, err := Run(ctx, append([]string{"map", "--output=json"}, img.args()...)...)
	if err != nil {
		return nil, err
	}
	var ext []Extent
	if err := json.Unmarshal(out, &ext); err != nil {
		return nil, fmt.Errorf("qemu-img map: bad JSON: %w", err)
	}
	return ext, nil
}

// DataEnd is the end offset of the last extent holding data (non-zero) in the map.
func DataEnd(ext []Extent) uint64 {
	var end uint64
	for _, e := range ext {
		if e.Data && !e.Zero && e.Start+e.Length > end {
			end = e.Start + e.Length
		}
	}
	return end
}

// Compare runs qemu-img compare; it returns true when the guest-visible contents are identical.
func Compare(ctx context.Context, a, b Image) (bool, error) {
	args := []string{"compare", "-q"}
	for _, o := range append(append([]string(nil), a.Objects...), b.Objects...) {
		args = append(args, "--object", o)
	}
	if a.Format != "" && !strings.HasPrefix(a.Path, "json:") {
		args = append(args, "-f", a.Format)
	}
	if b.Format != "" && !strings.HasPrefix(b.Path, "json:") {
		args = append(args, "-F", b.Format)
	}
	args = append(args, a.Path, b.Path)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return false, nil
	}
	return false, &Error{Args: args, Stderr: stderr.String(), Err: err}
}

// Commit writes the image's data into its backing file (qemu-img commit -d: the top image is
// left as is; the caller deletes it).
func Commit(ctx context.Context, img Image) error {
	args := append([]string{"commit", "-q", "-d"}, img.args()...)
	_, err := Run(ctx, args...)
	return err
}

// RebaseUnsafe rewrites the backing file name recorded in the image header without reading
// any data (qemu-img rebase -u).
func RebaseUnsafe(ctx context.Context, img Image, backing, backingFormat string) error {
	args := []string{"rebase", "-q", "-u", "-b", backing}
	if backing != "" {
		args = append(args, "-F", backingFormat)
	}
	_, err := Run(ctx, append(args, img.args()...)...)
	return err
}
