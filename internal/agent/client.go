package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/agent/proto"
)

// ErrClosed is returned by calls on a closed client or after the connection dropped.
var ErrClosed = errors.New("agent: connection closed")

// Client talks to one guest agent over the QEMU chardev socket of its virtio-serial port.
// It is safe for concurrent use; calls are multiplexed over the one connection.
//
// Frames for one call are delivered by a single reader goroutine, so an Exec whose Stdout
// writer blocks delays the other calls: give it a writer that does not block for long.
type Client struct {
	conn         net.Conn
	name         string        // names the agent (instance or socket) in errors
	writeTimeout time.Duration // bound on one frame write
	wmu          sync.Mutex

	mu      sync.Mutex
	pending map[uint32]*call
	nextID  uint32
	err     error // set once the reader stopped
	werr    error // the failed write that dropped the connection, if one did
	done    chan struct{}

	synced  chan struct{} // closed when the hello answer arrived
	nonce   string
	helloID uint32
}

type call struct {
	resp   chan proto.Response
	sink   func(ch uint8, b []byte)
	credit chan struct{}
	fin    chan struct{} // closed when the call returned: stops its input streamer
}

// Dial connects to the agent socket at socketPath and performs the hello handshake, retrying
// the connection until the socket exists and the agent answers, or ctx ends. A guest that is
// still booting simply makes Dial wait.
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", socketPath)
		if err == nil {
			c := newClient(conn, Options{Name: socketPath})
			if err := c.handshake(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("agent: dial %s: %w (last error: %v)", socketPath, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewClient wraps an established connection (for tests and custom transports) and performs
// the handshake.
func NewClient(ctx context.Context, conn net.Conn) (*Client, error) {
	return NewClientOptions(ctx, conn, Options{})
}

// Options tune a client.
type Options struct {
	// Name identifies the agent in errors (e.g. "instance web-1"); the peer address (the
	// socket path) unless set.
	Name string
	// WriteTimeout bounds one frame write; DefaultWriteTimeout unless set.
	WriteTimeout time.Duration
}

// NewClientOptions is NewClient with options.
func NewClientOptions(ctx context.Context, conn net.Conn, o Options) (*Client, error) {
	c := newClient(conn, o)
	if err := c.handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func newClient(conn net.Conn, o Options) *Client {
	var rb [8]byte
	rand.Read(rb[:])
	if o.Name == "" && conn.RemoteAddr() != nil {
		o.Name = conn.RemoteAddr().String()
	}
	if o.Name == "" || o.Name == "@" || o.Name == "pipe" {
		o.Name = "(unnamed connection)"
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	c := &Client{
		conn: conn, name: o.Name, writeTimeout: o.WriteTimeout, pending: map[uint32]*call{}, done: make(chan struct{}), synced: make(chan struct{}),
		nonce: hex.EncodeToString(rb[:]),
		// Random ids make frames left over from an earlier host connection unlikely to match.
		nextID: binary.BigEndian.Uint32(rb[4:]) | 1,
	}
	c.helloID = c.allocID()
	go c.readLoop()
	return c
}

func (c *Client) allocID() uint32 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// handshake sends hello until the matching answer arrives. Bytes that precede the answer are
// left-overs of an earlier connection (the port is a stream that outlives connections) and
// are discarded by readLoop; hello is repeated because a partial frame the agent still holds
// can swallow the first one.
func (c *Client) handshake(ctx context.Context) error {
	req, _ := json.Marshal(proto.Request{Op: proto.OpHello, Nonce: c.nonce})
	// Repeat quickly: a hello that reached the port before the agent opened it can be lost,
	// and boot-to-ready is on the critical path of every appliance start.
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	// A frame header left half-written by an earlier host makes the agent wait for its
	// payload; a frame's worth of zeros completes it (the CRC then fails and the agent skips
	// ahead to our hello) instead of waiting for many hellos to fill it.
	c.wmu.Lock()
	err := c.writeLocked(ctx, make([]byte, proto.HeaderSize+proto.MaxPayload))
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	for {
		if err := c.writeCtx(ctx, proto.Frame{Type: proto.TypeRequest, ID: c.helloID, Payload: req}); err != nil {
			return err
		}
		select {
		case <-c.synced:
			return nil
		case <-c.done:
			return c.closedErr()
		case <-ctx.Done():
			return fmt.Errorf("agent: no answer to hello: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return fmt.Errorf("%w: %w", ErrClosed, c.werr)
	}
	if c.err != nil && !errors.Is(c.err, io.EOF) && !errors.Is(c.err, net.ErrClosed) {
		return fmt.Errorf("%w: %v", ErrClosed, c.err)
	}
	return ErrClosed
}

// DefaultWriteTimeout bounds one frame write: a wedged guest that stops reading its port would
// otherwise block the writer, and every caller queued on wmu behind it, forever.
const DefaultWriteTimeout = 30 * time.Second

func (c *Client) write(f proto.Frame) error { return c.writeCtx(context.Background(), f) }

// writeCtx writes one frame, giving up at writeTimeout, at ctx's deadline, or when ctx ends.
func (c *Client) writeCtx(ctx context.Context, f proto.Frame) error {
	b, err := proto.Encode(f)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(ctx, b)
}

// writeLocked writes b with a deadline; wmu must be held. Every write sets its own deadline,
// so one left behind by a cancelled context does not affect the next.
func (c *Client) writeLocked(ctx context.Context, b []byte) error {
	dl := time.Now().Add(c.writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.conn.SetWriteDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { c.conn.SetWriteDeadline(time.Unix(1, 0)); close(fired) })
	_, err := c.conn.Write(b)
	if !stop() {
		<-fired // else it could cut the next writer's deadline short
	}
	if err == nil {
		return nil
	}
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("agent %s: write: %w", c.name, ctx.Err())
	case func() bool { d, ok := ctx.Deadline(); return ok && !time.Now().Before(d) }():
		// The conn's deadline can fire a moment before ctx's own timer marks it done.
		err = fmt.Errorf("agent %s: write: %w", c.name, context.DeadlineExceeded)
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("agent %s: write timed out after %v: the guest agent stopped reading its port (guest wedged?): %w",
			c.name, c.writeTimeout, err)
	default:
		err = fmt.Errorf("agent %s: write: %w", c.name, err)
	}
	// A frame written in part leaves the agent mid-frame: drop the connection so every call
	// fails at once with ErrClosed (carrying this error) instead of the agent misreading what
	// follows.
	c.mu.Lock()
	if c.werr == nil {
		c.werr = err
	}
	c.mu.Unlock()
	c.conn.Close()
	return err
}

func (c *Client) readLoop() {
	dec := proto.NewDecoder(c.conn)
	synced := false
	var err error
	for {
		var f proto.Frame
		f, err = dec.Next()
		if err != nil {
			break
		}
		if !synced {
			if f.Type == proto.TypeResponse && f.ID == c.helloID {
				var r proto.Response
				if json.Unmarshal(f.Payload, &r) == nil && r.Nonce == c.nonce {
					synced = true
					close(c.synced)
				}
			}
			continue
		}
		c.mu.Lock()
		cl := c.pending[f.ID]
		c.mu.Unlock()
		if cl == nil {
			continue // cancelled call or a repeated hello answer
		}
		switch f.Type {
		case proto.TypeData:
			if cl.sink != nil {
				cl.sink(f.Chan, f.Payload)
			}
		case proto.TypeWindow:
			for i := uint32(0); i < proto.ParseWindow(f.Payload) && i < 1024; i++ {
				select {
				case cl.credit <- struct{}{}:
				default:
				}
			}
		case proto.TypeResponse:
			var r proto.Response
			if json.Unmarshal(f.Payload, &r) != nil {
				r = proto.Response{Error: "agent: malformed response"}
			}
			c.mu.Lock()
			delete(c.pending, f.ID)
			c.mu.Unlock()
			cl.resp <- r
		}
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// Close drops the connection; in-flight calls fail with ErrClosed. The agent keeps running
// and serves the next connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Done is closed when the connection ends (for example when the guest powers off).
func (c *Client) Done() <-chan struct{} { return c.done }

// do sends req, optionally streams input, and waits for the response.
func (c *Client) do(ctx context.Context, req proto.Request, sink func(uint8, []byte), input io.Reader) (proto.Response, error) {
	cl := &call{resp: make(chan proto.Response, 1), sink: sink, credit: make(chan struct{}, 1024), fin: make(chan struct{})}
	defer close(cl.fin)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return proto.Response{}, ErrClosed
	}
	id := c.allocID()
	c.pending[id] = cl
	c.mu.Unlock()
	cleanup := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	b, err := json.Marshal(req)
	if err != nil {
		cleanup()
		return proto.Response{}, err
	}
	if err := c.writeCtx(ctx, proto.Frame{Type: proto.TypeRequest, ID: id, Payload: b}); err != nil {
		cleanup()
		return proto.Response{}, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	inputErr := make(chan error, 1)
	if input != nil {
		go func() { inputErr <- c.stream(ctx, id, cl, input) }()
	}
	select {
	case r := <-cl.resp:
		if r.Error != "" {
			return r, fmt.Errorf("agent %s: %s", req.Op, r.Error)
		}
		if input != nil {
			select {
			case err := <-inputErr:
				if err != nil && !errors.Is(err, context.Canceled) {
					return r, err
				}
			default:
			}
		}
		return r, nil
	case <-ctx.Done():
		cleanup()
		c.write(proto.Frame{Type: proto.TypeCancel, ID: id})
		return proto.Response{}, fmt.Errorf("agent %s: %w", req.Op, ctx.Err())
	case <-c.done:
		return proto.Response{}, fmt.Errorf("agent %s: %w", req.Op, c.closedErr())
	}
}

// stream sends input as ChanStdin data frames within the agent's flow-control window, then EOF.
func (c *Client) stream(ctx context.Context, id uint32, cl *call, input io.Reader) error {
	window := proto.InitialWindow
	buf := make([]byte, proto.MaxPayload)
	for {
		n, rerr := input.Read(buf)
		if n > 0 {
			for window == 0 {
				select {
				case <-cl.credit:
					window++
				case <-ctx.Done():
					return ctx.Err()
				case <-c.done:
					return ErrClosed
				case <-cl.fin:
					return nil
				}
			}
			// Take any credit that arrived meanwhile without waiting.
			for drained := false; !drained; {
				select {
				case <-cl.credit:
					window++
				default:
					drained = true
				}
			}
			if err := c.writeCtx(ctx, proto.Frame{Type: proto.TypeData, Chan: proto.ChanStdin, ID: id, Payload: append([]byte(nil), buf[:n]...)}); err != nil {
				return err
			}
			window--
		}
		if rerr == io.EOF {
			return c.write(proto.Frame{Type: proto.TypeEOF, Chan: proto.ChanStdin, ID: id})
		}
		if rerr != nil {
			c.write(proto.Frame{Type: proto.TypeCancel, ID: id})
			return fmt.Errorf("agent: reading input: %w", rerr)
		}
	}
}
