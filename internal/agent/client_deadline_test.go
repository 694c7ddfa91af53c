package agent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/agent"
)

// A guest whose agent stops reading its port must not block the host: the client's writes
// end when the caller's context does, and the connection is dropped because a frame written
// in part cannot be resumed.
func TestClientWriteEndsWhenPeerStopsReading(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe() // b is never read: every write on a blocks
			defer a.Close()
			defer b.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := agent.NewClient(ctx, a)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("NewClient: %v, want %v", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("NewClient still blocked in a write to a peer that does not read")
			}
			// The connection was dropped: the peer sees it closed.
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			// Bytes of the frame written in part may come first; drain until the close shows.
			buf := make([]byte, 64<<10)
			var err error
			for err == nil {
				_, err = b.Read(buf)
			}
			if !errors.Is(err, io.EOF) {
				t.Fatalf("peer read: %v, want EOF (client should drop the connection)", err)
			}
		})
	}
}
