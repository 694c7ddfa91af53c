package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/finvirt/finvirt/internal/agent/proto"
	"golang.org/x/sys/unix"
)

// Version is reported in the hello answer.
var Version = "0.1.0"

// Server answers host requests. One Server serves one port for the life of the guest; each
// host connection starts with a hello, which begins a fresh session and cancels the in-flight
// operations of the previous one.
type Server struct {
	Procs      *Procs
	Supervisor *Supervisor
	// PowerOff is called by the shutdown operation after the reply is sent. It should stop the
	// workloads and power off; it is never expected to return in an appliance.
	PowerOff func(grace time.Duration)
	PID1     bool
	Logf     func(format string, args ...any)

	start time.Time
	wmu   sync.Mutex    // one frame per write(2); shared by all sessions of the port
	gen   atomic.Uint64 // current session generation; frames of older sessions are dropped
}

// NewServer returns a server using procs for exec and sup for workloads.
func NewServer(procs *Procs, sup *Supervisor) *Server {
	return &Server{Procs: procs, Supervisor: sup, start: time.Now(), Logf: log.Printf}
}

// session is the state of one host connection.
type session struct {
	srv    *Server
	w      io.Writer
	gen    uint64
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	ops    map[uint32]*op
}

// op is one in-flight request.
type op struct {
	cancel context.CancelFunc
	in     chan []byte // ChanStdin data; nil means the request takes no input
	inEOF  chan struct{}
	once   sync.Once
}

var errStale = errors.New("session closed")

func (s *Server) newSession(w io.Writer) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{srv: s, w: w, gen: s.gen.Add(1), ctx: ctx, cancel: cancel, ops: map[uint32]*op{}}
}

// send writes one frame unless this session has been superseded.
func (ss *session) send(f proto.Frame) error {
	b, err := proto.Encode(f)
	if err != nil {
		return err
	}
	ss.srv.wmu.Lock()
	defer ss.srv.wmu.Unlock()
	if ss.srv.gen.Load() != ss.gen {
		return errStale
	}
	_, err = ss.w.Write(b)
	return err
}

func (ss *session) respond(id uint32, r proto.Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return ss.send(proto.Frame{Type: proto.TypeResponse, ID: id, Payload: b})
}

// helloAnswer precedes the answer with a frame's worth of zeros: the host may hold half a
// frame from before it reconnected, and the zeros complete it so its decoder resynchronises
// at once (see Decoder).
func (ss *session) helloAnswer(id uint32, nonce string) error {
	b, _ := json.Marshal(proto.Response{Nonce: nonce, Version: proto.Version, AgentVersion: Version})
	f, err := proto.Encode(proto.Frame{Type: proto.TypeResponse, ID: id, Payload: b})
	if err != nil {
		return err
	}
	out := append(make([]byte, proto.HeaderSize+proto.MaxPayload), f...)
	ss.srv.wmu.Lock()
	defer ss.srv.wmu.Unlock()
	if ss.srv.gen.Load() != ss.gen {
		return errStale
	}
	_, err = ss.w.Write(out)
	return err
}

func (ss *session) fail(id uint32, err error) { ss.respond(id, proto.Response{Error: err.Error()}) }

func (ss *session) close() {
	ss.cancel()
	ss.mu.Lock()
	for _, o := range ss.ops {
		o.cancel()
	}
	ss.mu.Unlock()
}

// ServeConn serves one byte stream until it returns EOF or an error. rw is the virtio port
// (or, in tests, a socket).
func (s *Server) ServeConn(rw io.ReadWriter) error {
	ss := s.newSession(rw)
	defer func() { ss.close() }()
	dec := proto.NewDecoder(rw)
	nonce := "" // of the current host connection
	for {
		f, err := dec.Next()
		if err != nil {
			return err
		}
		switch f.Type {
		case proto.TypeRequest:
			var req proto.Request
			if err := json.Unmarshal(f.Payload, &req); err != nil {
				ss.fail(f.ID, fmt.Errorf("request %d: bad JSON: %v", f.ID, err))
				continue
			}
			if req.Op == proto.OpHello && req.Nonce != "" && req.Nonce == nonce {
				// The same client repeating its hello (it repeats until answered, and several
				// queue up while the guest boots): answer again, cheaply, same session.
				ss.respond(f.ID, proto.Response{Nonce: req.Nonce, Version: proto.Version, AgentVersion: Version})
				continue
			}
			if req.Op == proto.OpHello {
				nonce = req.Nonce
				// A new host connection: abandon what the previous host started (its
				// frames still queued are dropped by the generation check in send).
				ss.close()
				ss = s.newSession(rw)
				ss.helloAnswer(f.ID, req.Nonce)
				continue
			}
			ss.start(f.ID, req)
		case proto.TypeData, proto.TypeEOF:
			ss.mu.Lock()
			o := ss.ops[f.ID]
			ss.mu.Unlock()
			if o == nil || o.in == nil {
				continue // cancelled or finished request: drop
			}
			if f.Type == proto.TypeEOF {
				o.once.Do(func() { close(o.inEOF) })
				continue
			}
			select {
			case o.in <- f.Payload:
			default:
				// The host ignored flow control; fail the request rather than block the port.
				o.cancel()
			}
		case proto.TypeCancel:
			ss.mu.Lock()
			if o := ss.ops[f.ID]; o != nil {
				o.cancel()
			}
			ss.mu.Unlock()
		}
	}
}

// start registers and runs a request in its own goroutine.
func (ss *session) start(id uint32, req proto.Request) {
	ctx, cancel := context.WithCancel(ss.ctx)
	o := &op{cancel: cancel}
	if (req.Op == proto.OpExec && req.Stdin) || req.Op == proto.OpPush {
		o.in = make(chan []byte, proto.InitialWindow)
		o.inEOF = make(chan struct{})
	}
	ss.mu.Lock()
	if _, dup := ss.ops[id]; dup {
		ss.mu.Unlock()
		cancel()
		ss.fail(id, fmt.Errorf("request id %d is already in use", id))
		return
	}
	ss.ops[id] = o
	ss.mu.Unlock()
	go func() {
		defer func() {
			cancel()
			ss.mu.Lock()
			delete(ss.ops, id)
			ss.mu.Unlock()
		}()
		resp, err := ss.dispatch(ctx, id, o, req)
		if err != nil {
			resp = proto.Response{Error: err.Error()}
		}
		ss.respond(id, resp)
		if req.Op == proto.OpShutdown && err == nil && ss.srv.PowerOff != nil {
			grace := time.Duration(req.TimeoutMS) * time.Millisecond
			go ss.srv.PowerOff(grace)
		}
	}()
}

func (ss *session) dispatch(ctx context.Context, id uint32, o *op, req proto.Request) (proto.Response, error) {
	s := ss.srv
	switch req.Op {
	case proto.OpPing:
		return proto.Response{Health: s.health()}, nil
	case proto.OpExec:
		return ss.exec(ctx, id, o, req)
	case proto.OpPush:
		return ss.push(ctx, id, o, req)
	case proto.OpPull:
		return ss.pull(ctx, id, req)
	case proto.OpMetrics:
		m, err := ReadMetrics(s.Supervisor.Status())
		if err != nil {
			return proto.Response{}, fmt.Errorf("metrics: %w", err)
		}
		return proto.Response{Metrics: m}, nil
	case proto.OpWorkloads:
		return proto.Response{Workloads: s.Supervisor.Status()}, nil
	case proto.OpWorkloadRestart:
		return proto.Response{}, s.Supervisor.Restart(req.Name)
	case proto.OpWorkloadLogs:
		l, err := s.Supervisor.Logs(req.Name)
		return proto.Response{Logs: l}, err
	case proto.OpShutdown:
		if s.PowerOff == nil {
			return proto.Response{}, errors.New("shutdown: this agent is not allowed to power off the guest")
		}
		if req.TimeoutMS < 0 {
			return proto.Response{}, fmt.Errorf("shutdown: timeout_ms %d is negative", req.TimeoutMS)
		}
		return proto.Response{}, nil
	}
	return proto.Response{}, fmt.Errorf("unknown operation %q (agent %s)", req.Op, Version)
}

func (s *Server) health() *proto.Health {
	h := &proto.Health{PID1: s.PID1, Workloads: s.Supervisor.Status()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile(procRoot + "/uptime"); err == nil {
		fmt.Sscanf(string(b), "%f", &h.UptimeSec)
	} else {
		h.UptimeSec = time.Since(s.start).Seconds()
	}
	return h
}

// readInput yields the next chunk of a host->guest stream (nil, io.EOF at the end) and grants
// the host one more frame of credit.
func (ss *session) readInput(ctx context.Context, id uint32, o *op) ([]byte, error) {
	// Prefer queued data over EOF: both can be pending at once.
	select {
	case b := <-o.in:
		ss.send(proto.Frame{Type: proto.TypeWindow, ID: id, Payload: proto.WindowPayload(1)})
		return b, nil
	default:
	}
	select {
	case b := <-o.in:
		ss.send(proto.Frame{Type: proto.TypeWindow, ID: id, Payload: proto.WindowPayload(1)})
		return b, nil
	case <-o.inEOF:
		select {
		case b := <-o.in:
			ss.send(proto.Frame{Type: proto.TypeWindow, ID: id, Payload: proto.WindowPayload(1)})
			return b, nil
		default:
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// coalesce is how long sendStream waits to fill a frame after a short read. Programs write
// pipes in small chunks (busybox cat: 4 KiB); one frame per chunk costs a port write and a VM
// exit each, which under TCG is most of the channel's cost. A couple of milliseconds is
// invisible interactively and makes bulk output use full frames.
const coalesce = 2 * time.Millisecond

// sendStream copies r to the host as data frames on ch.
func (ss *session) sendStream(id uint32, ch uint8, r *os.File) error {
	buf := make([]byte, proto.MaxPayload)
	for {
		n, err := r.Read(buf)
		if err == nil && n > 0 && n < len(buf) {
			// Short read: gather more until the frame is full or the output pauses.
			if r.SetReadDeadline(time.Now().Add(coalesce)) == nil {
				for n < len(buf) && err == nil {
					var k int
					k, err = r.Read(buf[n:])
					n += k
				}
				r.SetReadDeadline(time.Time{})
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = nil
				}
			}
		}
		if n > 0 {
			if serr := ss.send(proto.Frame{Type: proto.TypeData, Chan: ch, ID: id, Payload: buf[:n]}); serr != nil {
				return serr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			// A closed pipe after the process ended is a normal end of output.
			if errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "file already closed") {
				return nil
			}
			return err
		}
	}
}
