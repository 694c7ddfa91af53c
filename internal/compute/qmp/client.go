package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned after Close or once the connection is lost (Err says which).
var ErrClosed = errors.New("qmp connection closed")

// Client is a QMP connection. Methods are safe for concurrent use.
type Client struct {
	conn    net.Conn
	Version Version

	wmu    sync.Mutex // serialises writes of whole lines
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan *Message
	subs    map[*Subscription]struct{}
	err     error // why the connection ended
	done    chan struct{}
}

// Dial connects to a QMP unix socket, reads the greeting and leaves capabilities negotiation
// mode. ctx bounds the whole handshake.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: connect %s: %w", path, err)
	}
	c, err := NewClient(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake on %s: %w", path, err)
	}
	return c, nil
}

// NewClient runs the handshake over an established connection and starts the reader.
func NewClient(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, pending: map[string]chan *Message{}, subs: map[*Subscription]struct{}{}, done: make(chan struct{})}
	r := bufio.NewReaderSize(conn, 64<<10)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	line, err := r.ReadBytes('\n')
	if err != nil {
		stop()
		return nil, fmt.Errorf("read greeting: %w", ctxErr(ctx, err))
	}
	m, err := Decode(line)
	if err != nil || m.Greeting == nil {
		stop()
		return nil, fmt.Errorf("expected QMP greeting, got %.80q", line)
	}
	c.Version = *m.Greeting
	if _, err := conn.Write([]byte(`{"execute":"qmp_capabilities","id":"caps"}` + "\n")); err != nil {
		stop()
		return nil, fmt.Errorf("send qmp_capabilities: %w", ctxErr(ctx, err))
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			stop()
			return nil, fmt.Errorf("read qmp_capabilities reply: %w", ctxErr(ctx, err))
		}
		m, err := Decode(line)
		if err != nil {
			stop()
			return nil, err
		}
		if m.IsReply() {
			if m.Err != nil {
				stop()
				return nil, m.Err
			}
			break
		}
	}
	if !stop() {
		// The context fired while we finished: the deadline may already be poisoned.
		return nil, ctxErr(ctx, context.Canceled)
	}
	conn.SetDeadline(time.Time{})
	go c.readLoop(r)
	return c, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (c *Client) readLoop(r *bufio.Reader) {
	var end error
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			end = err
			break
		}
		m, err := Decode(line)
		if err != nil {
			end = err
			break
		}
		switch {
		case m.Event != nil:
			c.dispatch(*m.Event)
		case m.IsReply():
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m // buffered, never blocks
			}
		}
	}
	c.shutdown(fmt.Errorf("%w: %v", ErrClosed, end))
}

func (c *Client) shutdown(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	subs := c.subs
	c.subs = map[*Subscription]struct{}{}
	c.pending = map[string]chan *Message{}
	close(c.done)
	c.mu.Unlock()
	c.conn.Close()
	for s := range subs {
		s.end()
	}
}

// Done is closed when the connection ends (Close, QEMU exit, or a protocol error).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended; nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection. QEMU keeps running.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	return nil
}

// Execute runs a command and returns its "return" payload. A QMP error reply is returned as
// *Error. args may be nil.
func (c *Client) Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: encode arguments: %w", cmd, err)
	}
	ch := make(chan *Message, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}

	c.wmu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	} else {
		c.conn.SetWriteDeadline(time.Time{})
	}
	_, err = c.conn.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		forget()
		return nil, fmt.Errorf("qmp %s: send: %w", cmd, err)
	}
	select {
	case m := <-ch:
		if m.Err != nil {
			return nil, fmt.Errorf("qmp %s: %w", cmd, m.Err)
		}
		return m.Return, nil
	case <-c.done:
		return nil, fmt.Errorf("qmp %s: %w", cmd, c.Err())
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// ExecuteInto runs a command and decodes its payload into out.
func (c *Client) ExecuteInto(ctx context.Context, cmd string, args, out any) error {
	raw, err := c.Execute(ctx, cmd, args)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("qmp %s: decode reply: %w", cmd, err)
	}
	return nil
}
