package fixgw

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/quickfixgo/quickfix"
	"github.com/quickfixgo/quickfix/config"
)

type echoApp struct{ client }

func (e *echoApp) OnLogon(quickfix.SessionID)  {}
func (e *echoApp) OnLogout(quickfix.SessionID) {}

func (e *echoApp) FromApp(m *quickfix.Message, id quickfix.SessionID) quickfix.MessageRejectError {
	r := newMessage("8")
	r.Body.SetString(tagClOrdID, get(m, tagClOrdID))
	quickfix.SendToTarget(r, id)
	return nil
}

// BenchmarkQuickFIXEchoPipelined is the library baseline for
// BenchmarkFIXPipelined: a bare QuickFIX/Go acceptor that answers every
// message from FromApp (memory store, no engine, no journal), driven the
// same way. It shows the pipelined ceiling is QuickFIX/Go v0.9's session
// loop (non-blocking sends onto an unbuffered writer channel spin and
// starve the send mutex), not the gateway.
func BenchmarkQuickFIXEchoPipelined(b *testing.B) {
	port := freePort(b)
	s := quickfix.NewSettings()
	gs := s.GlobalSettings()
	gs.Set(config.BeginString, quickfix.BeginStringFIX44)
	gs.Set(config.SenderCompID, "ECHO")
	gs.Set(config.SocketAcceptHost, "127.0.0.1")
	gs.Set(config.SocketAcceptPort, strconv.Itoa(port))
	gs.Set(config.HeartBtInt, "5")
	ss := quickfix.NewSessionSettings()
	ss.Set(config.TargetCompID, "ECHOC")
	s.AddSession(ss)
	app := &echoApp{}
	acc, err := quickfix.NewAcceptor(app, quickfix.NewMemoryStoreFactory(), s, quickfix.NewNullLogFactory())
	if err != nil {
		b.Fatal(err)
	}
	acc.Start()
	defer acc.Stop()
	c := dial(b, port, "ECHOC", "ECHO")
	defer c.stop()
	b.ResetTimer()
	start := time.Now()
	const window = 32
	credit := make(chan struct{}, window)
	done := make(chan struct{})
	go func() {
		for i := 0; i < b.N; i++ {
			c.next(b)
			<-credit
		}
		close(done)
	}()
	for i := 0; i < b.N; i++ {
		credit <- struct{}{}
		c.send(b, "D", tagClOrdID, fmt.Sprint("e", i))
	}
	<-done
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
