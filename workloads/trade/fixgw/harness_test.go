package fixgw

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/finvirt/finvirt/workloads/trade/journal"
	"github.com/quickfixgo/quickfix"
	"github.com/quickfixgo/quickfix/config"
)

// client is a real QuickFIX/Go initiator session used to drive the
// gateway over loopback.
type client struct {
	t      *testing.T
	id     quickfix.SessionID
	in     chan *quickfix.Message
	logon  chan struct{}
	logout chan struct{}
	init   *quickfix.Initiator
	seq    int
}

func (c *client) OnCreate(quickfix.SessionID) {}
func (c *client) OnLogon(quickfix.SessionID)  { c.logon <- struct{}{} }
func (c *client) OnLogout(quickfix.SessionID) {
	select {
	case c.logout <- struct{}{}:
	default:
	}
}
func (c *client) ToAdmin(*quickfix.Message, quickfix.SessionID)     {}
func (c *client) ToApp(*quickfix.Message, quickfix.SessionID) error { return nil }
func (c *client) FromAdmin(*quickfix.Message, quickfix.SessionID) quickfix.MessageRejectError {
	return nil
}
func (c *client) FromApp(m *quickfix.Message, _ quickfix.SessionID) quickfix.MessageRejectError {
	cp := quickfix.NewMessage()
	m.CopyInto(cp)
	c.in <- cp
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startGateway(t testing.TB, sender string, targets []string) (*engine.Engine, *Gateway, int) {
	t.Helper()
	cfg := engine.Config{Symbols: []engine.SymbolConfig{{Name: "AAPL", Tick: engine.DefaultTick}}}
	e, _, _, err := engine.Open(cfg, t.TempDir(), journal.Options{Sync: journal.SyncBatch})
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	g, err := New(e, Config{Listen: "127.0.0.1:" + strconv.Itoa(port), SenderCompID: sender, TargetCompID: targets,
		StoreDir: t.TempDir(), HeartBtInt: 5, ResetOnLogon: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Stop(); e.Close() })
	return e, g, port
}

func dial(t testing.TB, port int, sender, target string) *client {
	t.Helper()
	c := &client{in: make(chan *quickfix.Message, 100000), logon: make(chan struct{}, 4), logout: make(chan struct{}, 4)}
	s := quickfix.NewSettings()
	ss := quickfix.NewSessionSettings()
	ss.Set(config.BeginString, quickfix.BeginStringFIX44)
	ss.Set(config.SenderCompID, sender)
	ss.Set(config.TargetCompID, target)
	ss.Set(config.SocketConnectHost, "127.0.0.1")
	ss.Set(config.SocketConnectPort, strconv.Itoa(port))
	ss.Set(config.HeartBtInt, "5")
	ss.Set(config.ReconnectInterval, "1")
	ss.Set(config.ResetOnLogon, "Y")
	id, err := s.AddSession(ss)
	if err != nil {
		t.Fatal(err)
	}
	c.id = id
	if c.init, err = quickfix.NewInitiator(c, quickfix.NewMemoryStoreFactory(), s, quickfix.NewNullLogFactory()); err != nil {
		t.Fatal(err)
	}
	if err := c.init.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.logon:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no logon within 60s", sender)
	}
	return c
}

func (c *client) stop() { c.init.Stop() }

// send builds and sends an application message from tag=value pairs.
func (c *client) send(t testing.TB, msgType string, kv ...any) {
	t.Helper()
	m := quickfix.NewMessage()
	m.Header.SetString(tagMsgType, msgType)
	for i := 0; i < len(kv); i += 2 {
		m.Body.SetString(kv[i].(quickfix.Tag), fmt.Sprint(kv[i+1]))
	}
	if err := quickfix.SendToTarget(m, c.id); err != nil {
		t.Fatal(err)
	}
}

// next waits (generously: the VM is shared) for the next app message.
func (c *client) next(t testing.TB) *quickfix.Message {
	t.Helper()
	select {
	case m := <-c.in:
		return m
	case <-time.After(60 * time.Second):
		t.Fatal("no message within 60s")
		return nil
	}
}

func get(m *quickfix.Message, tag quickfix.Tag) string {
	if v, err := m.Body.GetString(tag); err == nil {
		return v
	}
	if v, err := m.Header.GetString(tag); err == nil {
		return v
	}
	return ""
}

// expect checks that m has exactly the listed tag values.
func expect(t testing.TB, what string, m *quickfix.Message, kv ...any) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		tag := kv[i].(quickfix.Tag)
		if got, want := get(m, tag), fmt.Sprint(kv[i+1]); got != want {
			t.Fatalf("%s: tag %d = %q, want %q in\n%s", what, tag, got, want, m)
		}
	}
}
