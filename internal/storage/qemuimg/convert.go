package qemuimg

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// ConvertOpts describe a conversion.
type ConvertOpts struct {
	Src       Image
	Dst       string
	DstFormat string
	// DstSecret / DstSecretID make the destination a LUKS-encrypted qcow2.
	DstSecret   string
	DstSecretID string
	IterTimeMs  int
	DstOptions  []string
	// Progress receives percentages parsed from `qemu-img convert -p`.
	Progress func(percent float64)
	// Started, when set, is called with the running process (tests use it to kill mid-way).
	Started func(pid int)
}

// Convert runs qemu-img convert -p and reports progress.
func Convert(ctx context.Context, o ConvertOpts) error {
	args := []string{"convert", "-p"}
	for _, obj := range o.Src.Objects {
		args = append(args, "--object", obj)
	}
	if o.DstSecret != "" {
		args = append(args, "--object", o.DstSecret)
	}
	if o.Src.Format != "" && !strings.HasPrefix(o.Src.Path, "json:") {
		args = append(args, "-f", o.Src.Format)
	}
	args = append(args, "-O", o.DstFormat)
	opts := append([]string(nil), o.DstOptions...)
	if o.DstSecret != "" {
		it := o.IterTimeMs
		if it <= 0 {
			it = 10
		}
		opts = append(opts, "encrypt.format=luks", "encrypt.key-secret="+o.DstSecretID, "encrypt.iter-time="+strconv.Itoa(it))
	}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	args = append(args, o.Src.Path, o.Dst)
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		err, stderr := convertOnce(ctx, args, o)
		if err == nil {
			if o.Progress != nil {
				o.Progress(100)
			}
			return nil
		}
		lastErr = &Error{Args: args, Stderr: stderr, Err: err}
		if !strings.Contains(stderr, flakyCPU) || ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

func convertOnce(ctx context.Context, args []string, o ConvertOpts) (error, string) {
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err, ""
	}
	if err := cmd.Start(); err != nil {
		return err, ""
	}
	if o.Started != nil {
		o.Started(cmd.Process.Pid)
	}
	ParseProgress(out, o.Progress)
	err = cmd.Wait()
	return err, stderr.String()
}

// ParseProgress reads qemu-img -p output ("    (12.34/100%)\r") and calls fn with each
// percentage, in order, skipping repeats and garbage. It returns at EOF.
func ParseProgress(r io.Reader, fn func(float64)) {
	sc := bufio.NewScanner(r)
	sc.Split(splitCRLF)
	last := -1.0
	for sc.Scan() {
		p, ok := parsePercent(sc.Text())
		if ok && p != last && fn != nil {
			fn(p)
			last = p
		}
	}
}

func parsePercent(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "(") || !strings.HasSuffix(s, "/100%)") {
		return 0, false
	}
	p, err := strconv.ParseFloat(s[1:len(s)-len("/100%)")], 64)
	if err != nil || p < 0 || p > 100 {
		return 0, false
	}
	return p, true
}

func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	for i, b := range data {
		if b == '\r' || b == '\n' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
