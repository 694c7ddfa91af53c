package guest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/agent/proto"
	"golang.org/x/sys/unix"
)

const (
	defaultPath = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin"
	// MaxTransfer bounds push and pull; appliance files live in RAM.
	MaxTransfer = 1 << 30
	// drainAfterExit is how long exec waits for output after the process ended, for the case
	// where a background child keeps the pipes open.
	drainAfterExit = 2 * time.Second
)

// exec runs argv with stdout/stderr streamed to the host and returns its exit status.
func (ss *session) exec(ctx context.Context, id uint32, o *op, req proto.Request) (proto.Response, error) {
	if len(req.Argv) == 0 {
		return proto.Response{}, errors.New("exec: argv is empty")
	}
	argv0 := req.Argv[0]
	if filepath.Base(argv0) == argv0 {
		p, err := lookPath(argv0, req.Env)
		if err != nil {
			return proto.Response{}, err
		}
		argv0 = p
	}
	env := req.Env
	if !hasKey(env, "PATH") {
		env = append([]string{"PATH=" + defaultPath}, env...)
	}
	var files [3]*os.File
	var closers []*os.File
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	var stdinW *os.File
	if o.in != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return proto.Response{}, err
		}
		files[0], stdinW = r, w
		closers = append(closers, r)
	} else {
		dn, err := os.Open(os.DevNull)
		if err != nil {
			return proto.Response{}, err
		}
		files[0] = dn
		closers = append(closers, dn)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return proto.Response{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return proto.Response{}, err
	}
	files[1], files[2] = outW, errW
	closers = append(closers, outW, errW)
	argv := append([]string{argv0}, req.Argv[1:]...)
	pid, done, err := ss.srv.Procs.Start(argv, &os.ProcAttr{
		Dir: req.Cwd, Env: env, Files: files[:],
		Sys: &unix.SysProcAttr{Setpgid: true},
	})
	// The child has its copies; close ours so EOF propagates.
	for _, f := range closers {
		f.Close()
	}
	closers = nil
	if err != nil {
		outR.Close()
		errR.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		return proto.Response{}, fmt.Errorf("exec %s: %w", req.Argv[0], err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ss.sendStream(id, proto.ChanStdout, outR) }()
	go func() { defer wg.Done(); ss.sendStream(id, proto.ChanStderr, errR) }()
	if stdinW != nil {
		go func() {
			defer stdinW.Close()
			for {
				b, err := ss.readInput(ctx, id, o)
				if err != nil {
					return
				}
				if _, err := stdinW.Write(b); err != nil {
					return // the process closed stdin; drop the rest
				}
			}
		}()
	}
	var e Exit
	select {
	case e = <-done:
	case <-ctx.Done():
		// The host cancelled or went away: kill the whole process group.
		unix.Kill(-pid, unix.SIGKILL)
		e = <-done
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainAfterExit):
		outR.Close()
		errR.Close()
		<-drained
	}
	outR.Close()
	errR.Close()
	if ctx.Err() != nil {
		return proto.Response{}, fmt.Errorf("exec %s: cancelled", req.Argv[0])
	}
	return proto.Response{ExitCode: e.Code, Signal: e.Signal}, nil
}

// lookPath finds name in the PATH of env (or the default PATH).
func lookPath(name string, env []string) (string, error) {
	path := defaultPath
	for _, e := range env {
		if len(e) > 5 && e[:5] == "PATH=" {
			path = e[5:]
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q not found in PATH %s", name, path)
}

// push receives a file from the host into req.Path, atomically (temp file + rename).
func (ss *session) push(ctx context.Context, id uint32, o *op, req proto.Request) (proto.Response, error) {
	if !filepath.IsAbs(req.Path) {
		return proto.Response{}, fmt.Errorf("push: guest path %q must be absolute", req.Path)
	}
	if req.Size > MaxTransfer {
		return proto.Response{}, fmt.Errorf("push %s: %d bytes exceeds the %d-byte limit", req.Path, req.Size, MaxTransfer)
	}
	mode := os.FileMode(req.Mode & 0o7777)
	if mode == 0 {
		mode = 0o644
	}
	dir := filepath.Dir(req.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return proto.Response{}, fmt.Errorf("push %s: %w", req.Path, err)
	}
	f, err := os.CreateTemp(dir, ".finvirt-push-*")
	if err != nil {
		return proto.Response{}, fmt.Errorf("push %s: %w", req.Path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	var n int64
	for {
		b, err := ss.readInput(ctx, id, o)
		if err == io.EOF {
			break
		}
		if err != nil {
			return proto.Response{}, fmt.Errorf("push %s: %w", req.Path, err)
		}
		n += int64(len(b))
		if n > MaxTransfer {
			return proto.Response{}, fmt.Errorf("push %s: more than %d bytes", req.Path, MaxTransfer)
		}
		if _, err := f.Write(b); err != nil {
			return proto.Response{}, fmt.Errorf("push %s: %w", req.Path, err)
		}
		h.Write(b)
	}
	if req.Size >= 0 && n != req.Size {
		return proto.Response{}, fmt.Errorf("push %s: received %d bytes, the host announced %d", req.Path, n, req.Size)
	}
	if err := f.Chmod(mode); err != nil {
		return proto.Response{}, err
	}
	if err := f.Sync(); err != nil {
		return proto.Response{}, err
	}
	if err := f.Close(); err != nil {
		return proto.Response{}, err
	}
	if err := os.Rename(tmp, req.Path); err != nil {
		return proto.Response{}, fmt.Errorf("push %s: %w", req.Path, err)
	}
	ok = true
	return proto.Response{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(mode)}, nil
}

// pull streams req.Path to the host and reports its size, hash and mode.
func (ss *session) pull(ctx context.Context, id uint32, req proto.Request) (proto.Response, error) {
	f, err := os.Open(req.Path)
	if err != nil {
		return proto.Response{}, fmt.Errorf("pull: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return proto.Response{}, err
	}
	if !st.Mode().IsRegular() {
		return proto.Response{}, fmt.Errorf("pull %s: not a regular file (%v)", req.Path, st.Mode().Type())
	}
	if st.Size() > MaxTransfer {
		return proto.Response{}, fmt.Errorf("pull %s: %d bytes exceeds the %d-byte limit", req.Path, st.Size(), MaxTransfer)
	}
	h := sha256.New()
	buf := make([]byte, proto.MaxPayload)
	var n int64
	for {
		if ctx.Err() != nil {
			return proto.Response{}, fmt.Errorf("pull %s: cancelled", req.Path)
		}
		k, rerr := f.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			if err := ss.send(proto.Frame{Type: proto.TypeData, Chan: proto.ChanStdout, ID: id, Payload: buf[:k]}); err != nil {
				return proto.Response{}, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return proto.Response{}, fmt.Errorf("pull %s: %w", req.Path, rerr)
		}
	}
	return proto.Response{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(st.Mode().Perm())}, nil
}
