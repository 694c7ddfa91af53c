package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/finvirt/finvirt/workloads/trade/journal"
)

var binary string

// TestMain builds the real static binary once; the tests run it as a child
// process, exactly as the appliance does.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trade-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "trade")
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build trade: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testSymbols = "AAPL,MSFT:0.05"

type proc struct {
	cmd    *exec.Cmd
	addr   string
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

// start runs the binary and waits (up to 60s) for its ready line.
func start(t *testing.T, data string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--fix-listen", "", "--data", data, "--symbols", testSymbols}, extra...)
	cmd := exec.Command(binary, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if a, ok := strings.CutPrefix(line, "trade listening on "); ok {
				ready <- a
			}
		}
	}()
	select {
	case p.addr = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("trade not ready within 60s:\n%s", p.log())
	}
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) do(method, path, body string, out any) (int, error) {
	req, _ := http.NewRequest(method, "http://"+p.addr+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, nil
}

type orderResp struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
	Filled  int64  `json:"filled_quantity"`
}

type hashResp struct {
	Hash string `json:"hash"`
}

// replayHash computes, in-process, the hash a journal replays to. It works
// on a copy so the binary later sees the original file.
func replayHash(t *testing.T, data string) (string, uint64) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, engine.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	cp := t.TempDir()
	os.WriteFile(filepath.Join(cp, engine.JournalFile), b, 0o644)
	syms, _ := engine.ParseSymbols(testSymbols)
	e, n, _, err := engine.Open(engine.Config{Symbols: syms}, cp, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, h := e.Hashes()
	return h, n
}

// load sends orders from several workers until stop is closed, recording
// every acknowledged (201) order id.
func load(p *proc, prefix string, workers int, stop chan struct{}, acked *sync.Map, n *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				side := []string{"buy", "sell"}[(i+w)%2]
				tif := []string{"gtc", "gtc", "ioc", "fok"}[i%4]
				body := fmt.Sprintf(`{"client_order_id":"%sw%d-%d","account":"acct-%d","symbol":"AAPL","side":"%s","type":"limit","time_in_force":"%s","price":"%d.%02d","quantity":%d}`,
					prefix, w, i, w, side, tif, 100+i%3, (i*7)%100, 1+i%50)
				var o orderResp
				code, err := p.do("POST", "/v1/orders", body, &o)
				if err != nil {
					return // the process died
				}
				if code == 201 {
					acked.Store(o.OrderID, o)
					n.Add(1)
				}
				if i%5 == 4 && o.OrderID != "" {
					p.do("DELETE", "/v1/orders/"+o.OrderID, "", nil)
				}
			}
		}(w)
	}
	return &wg
}

// TestCrashRecoveryKill9 kills the real binary with SIGKILL in the middle
// of a concurrent order stream, tears the journal tail, restarts it and
// requires (1) every acknowledged order to survive, (2) the torn tail to be
// truncated, and (3) the recovered book hash to equal an independent
// replay of the journal.
func TestCrashRecoveryKill9(t *testing.T) {
	data := t.TempDir()
	p := start(t, data)
	stop := make(chan struct{})
	var acked sync.Map
	var n atomic.Int64
	wg := load(p, "", 4, stop, &acked, &n)
	deadline := time.Now().Add(60 * time.Second)
	for n.Load() < 400 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.Load() < 400 {
		t.Fatalf("only %d orders acknowledged in 60s:\n%s", n.Load(), p.log())
	}
	p.cmd.Process.Signal(syscall.SIGKILL) // mid-stream: workers are still sending
	p.cmd.Wait()
	close(stop)
	wg.Wait()

	// Simulate a write torn by the crash: half a record at the tail.
	jf := filepath.Join(data, engine.JournalFile)
	f, _ := os.OpenFile(jf, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{40, 0, 0, 0, 1, 2, 3, 4, 1, 1})
	f.Close()
	want, records := replayHash(t, data)

	p2 := start(t, data)
	if !strings.Contains(p2.log(), fmt.Sprintf("recovered %d commands", records)) || !strings.Contains(p2.log(), "torn tail truncated: 10 bytes") {
		t.Fatalf("recovery log does not report %d commands and a 10-byte torn tail:\n%s", records, p2.log())
	}
	var h hashResp
	if _, err := p2.do("GET", "/v1/debug/hash", "", &h); err != nil || h.Hash != want {
		t.Fatalf("recovered hash %s (%v), independent replay %s", h.Hash, err, want)
	}
	missing := 0
	acked.Range(func(k, v any) bool {
		var o orderResp
		if code, _ := p2.do("GET", "/v1/orders/"+k.(string), "", &o); code != 200 {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged orders lost by the crash", missing, n.Load())
	}
	// The recovered engine keeps working and its ids continue.
	var o orderResp
	if code, _ := p2.do("POST", "/v1/orders", `{"client_order_id":"after","account":"z","symbol":"AAPL","side":"buy","type":"limit","time_in_force":"gtc","price":"1.00","quantity":1}`, &o); code != 201 {
		t.Fatalf("order after recovery: %d", code)
	}
	if _, dup := acked.Load(o.OrderID); dup {
		t.Fatalf("order id %s reused after recovery", o.OrderID)
	}
	t.Logf("%d acknowledged orders, %d journal records recovered", n.Load(), records)
}

// TestGracefulShutdown: SIGTERM drains, exits 0, and a restart reproduces
// the same book hash.
func TestGracefulShutdown(t *testing.T) {
	data := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixAddr := l.Addr().String()
	l.Close()
	// FIX enabled too, so shutdown also logs out the acceptor.
	p := start(t, data, "--fsync", "none", "--fix-listen", fixAddr)
	for i := 0; i < 50; i++ {
		body := fmt.Sprintf(`{"client_order_id":"g%d","account":"a%d","symbol":"MSFT","side":"%s","price":"%d.%02d","quantity":%d}`, i, i%3, []string{"buy", "sell"}[i%2], 20, (i%4)*5, 1+i)
		if code, err := p.do("POST", "/v1/orders", body, nil); code != 201 {
			t.Fatalf("order %d: %d %v", i, code, err)
		}
	}
	var before, after hashResp
	p.do("GET", "/v1/debug/hash", "", &before)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "trade fix acceptor on "+fixAddr) || !strings.Contains(p.log(), "trade stopped, book hash "+before.Hash) {
		t.Fatalf("shutdown log lacks final hash:\n%s", p.log())
	}
	p2 := start(t, data)
	p2.do("GET", "/v1/debug/hash", "", &after)
	if after.Hash != before.Hash {
		t.Fatalf("hash after restart %s, before %s", after.Hash, before.Hash)
	}
}

func TestBadFlagsFailPrecisely(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--symbols", "aapl"}, "--symbols"},
		{[]string{"--fsync", "sometimes"}, "--fsync"},
		{[]string{"--self-trade", "maybe"}, "--self-trade"},
		{[]string{"--fix-store", "s3"}, "--fix-store"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, c := range cases {
		args := append([]string{"--data", t.TempDir(), "--listen", "127.0.0.1:0", "--fix-listen", ""}, c.args...)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: err=%v output %q, want failure naming %q", c.args, err, out, c.want)
		}
	}
}

// TestCrashLoopSoak repeats kill -9 / torn tail / recover cycles on one data
// directory (FINVIRT_SOAK=1).
func TestCrashLoopSoak(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("soak: set FINVIRT_SOAK=1")
	}
	data := t.TempDir()
	for cycle := 0; cycle < 10; cycle++ {
		p := start(t, data)
		stop := make(chan struct{})
		var acked sync.Map
		var n atomic.Int64
		wg := load(p, fmt.Sprintf("c%d-", cycle), 4, stop, &acked, &n)
		deadline := time.Now().Add(60 * time.Second)
		for n.Load() < 1000 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		close(stop)
		wg.Wait()
		want, _ := replayHash(t, data)
		p2 := start(t, data)
		var h hashResp
		if _, err := p2.do("GET", "/v1/debug/hash", "", &h); err != nil || h.Hash != want {
			t.Fatalf("cycle %d: recovered hash %s, replay %s (%v)", cycle, h.Hash, want, err)
		}
		lost := 0
		acked.Range(func(k, _ any) bool {
			if code, _ := p2.do("GET", "/v1/orders/"+k.(string), "", nil); code != 200 {
				lost++
			}
			return true
		})
		if lost > 0 {
			t.Fatalf("cycle %d: %d acknowledged orders lost", cycle, lost)
		}
		p2.cmd.Process.Signal(syscall.SIGKILL)
		p2.cmd.Wait()
	}
}
