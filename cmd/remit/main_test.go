package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var binary string

// TestMain builds the real static remit binary once; the tests run it as a child process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "remit-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "remit")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "build", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building remit: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	mu     *sync.Mutex
	exited chan error
}

func (p *proc) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

// start runs remit on a free port and waits for "remit listening on ADDR".
func start(t *testing.T, dir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--listen", "127.0.0.1:0", "--data", dir}, extra...)
	cmd := exec.Command(binary, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}, exited: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if a, ok := strings.CutPrefix(line, "remit listening on "); ok {
				addr <- a
			}
		}
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.exited <- err }()
	t.Cleanup(func() { cmd.Process.Kill() })
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.exited:
		t.Fatalf("remit exited before listening: %v\n%s", err, p.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("remit did not start:\n%s", p.log())
	}
	return p
}

var client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

func call(url, path, key string, body any) (int, http.Header, []byte, error) {
	var rd io.Reader
	method := "GET"
	if body != nil {
		b, _ := json.Marshal(body)
		rd, method = bytes.NewReader(b), "POST"
	}
	req, _ := http.NewRequest(method, url+path, rd)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

func mustCall(t *testing.T, url, path, key string, body any, want int) []byte {
	t.Helper()
	st, _, b, err := call(url, path, key, body)
	if err != nil || st != want {
		t.Fatalf("%s: status %d err %v want %d: %s", path, st, err, want, b)
	}
	return b
}

type xfer struct {
	ID     string `json:"id"`
	Debit  string `json:"debit_account_id"`
	Credit string `json:"credit_account_id"`
	Amount int64  `json:"amount"`
	Ccy    string `json:"currency"`
}

const nAccounts = 40

func setupBank(t *testing.T, url string) {
	accs := []map[string]any{{"id": "mint", "currency": "EUR"}}
	funds := []xfer{}
	for i := 0; i < nAccounts; i++ {
		id := fmt.Sprintf("c%02d", i)
		accs = append(accs, map[string]any{"id": id, "currency": "EUR", "flags": []string{"debits_must_not_exceed_credits"}})
		funds = append(funds, xfer{ID: "fund-" + id, Debit: "mint", Credit: id, Amount: 1_000_000, Ccy: "EUR"})
	}
	mustCall(t, url, "/v1/accounts/batch", "", map[string]any{"accounts": accs}, 200)
	b := mustCall(t, url, "/v1/transfers/batch", "", map[string]any{"transfers": funds}, 200)
	if strings.Count(string(b), `"status":201`) != nAccounts {
		t.Fatalf("funding: %s", b)
	}
}

// burst sends transfers from several goroutines until stop is closed or the
// server goes away. It returns acknowledged (201) transfers and all attempted ones.
func burst(url, prefix string, stop chan struct{}, acked *atomic.Int64) (ack, tried map[string]xfer) {
	var mu sync.Mutex
	ack, tried = map[string]xfer{}, map[string]xfer{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			seed := int64(g)
			for _, c := range prefix {
				seed = seed*31 + int64(c)
			}
			rng := rand.New(rand.NewSource(seed))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mk := func(j int) xfer {
					a, b := rng.Intn(nAccounts), rng.Intn(nAccounts-1)
					if b >= a {
						b++
					}
					return xfer{ID: fmt.Sprintf("%s-%d-%d-%d", prefix, g, i, j), Debit: fmt.Sprintf("c%02d", a), Credit: fmt.Sprintf("c%02d", b), Amount: int64(rng.Intn(100) + 1), Ccy: "EUR"}
				}
				if g%2 == 0 { // single transfers with Idempotency-Key
					x := mk(0)
					mu.Lock()
					tried[x.ID] = x
					mu.Unlock()
					st, _, _, err := call(url, "/v1/transfers", "key-"+x.ID, x)
					if err != nil {
						return
					}
					if st == 201 {
						mu.Lock()
						ack[x.ID] = x
						mu.Unlock()
						acked.Add(1)
					}
					continue
				}
				batch := make([]xfer, 20)
				mu.Lock()
				for j := range batch {
					batch[j] = mk(j)
					tried[batch[j].ID] = batch[j]
				}
				mu.Unlock()
				st, _, b, err := call(url, "/v1/transfers/batch", "", map[string]any{"transfers": batch})
				if err != nil || st != 200 {
					return
				}
				var res struct {
					Results []struct {
						ID     string `json:"id"`
						Status int    `json:"status"`
					} `json:"results"`
				}
				if json.Unmarshal(b, &res) != nil {
					return
				}
				mu.Lock()
				for _, r := range res.Results {
					if r.Status == 201 {
						ack[r.ID] = tried[r.ID]
						acked.Add(1)
					}
				}
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	return ack, tried
}

// verify checks every acknowledged transfer exists with its fields, and that
// balances equal funding plus exactly one application of every present transfer.
func verify(t *testing.T, url string, ack, tried map[string]xfer) {
	t.Helper()
	inv := mustCall(t, url, "/v1/invariants", "", nil, 200)
	if !strings.Contains(string(inv), `"ok":true`) {
		t.Fatalf("invariants: %s", inv)
	}
	bal := map[string]int64{}
	for i := 0; i < nAccounts; i++ {
		bal[fmt.Sprintf("c%02d", i)] = 1_000_000
	}
	present := 0
	for id, x := range tried {
		st, _, b, err := call(url, "/v1/transfers/"+id, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		switch st {
		case 200:
			var got xfer
			json.Unmarshal(b, &got)
			if got != x {
				t.Fatalf("transfer %s recovered as %+v, sent %+v", id, got, x)
			}
			bal[x.Debit] -= x.Amount
			bal[x.Credit] += x.Amount
			present++
		case 404:
			if _, ok := ack[id]; ok {
				t.Fatalf("acknowledged transfer %s lost", id)
			}
		default:
			t.Fatalf("GET %s: %d %s", id, st, b)
		}
	}
	for id, want := range bal {
		var a struct{ Balance int64 }
		json.Unmarshal(mustCall(t, url, "/v1/accounts/"+id, "", nil, 200), &a)
		if a.Balance != want {
			t.Fatalf("account %s balance %d, want %d from %d present transfers", id, a.Balance, want, present)
		}
	}
	t.Logf("%d acknowledged, %d attempted, %d present", len(ack), len(tried), present)
}

func TestCrashRecoveryKill9(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "--snapshot-kib", "64") // small segments: the crash also exercises snapshot + rotation
	setupBank(t, p.url)
	stop := make(chan struct{})
	var acked atomic.Int64
	done := make(chan struct{})
	var ack, tried map[string]xfer
	go func() { ack, tried = burst(p.url, "x", stop, &acked); close(done) }()
	deadline := time.Now().Add(120 * time.Second)
	for acked.Load() < 3000 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil { // mid-burst, no warning
		t.Fatal(err)
	}
	<-p.exited
	close(stop)
	<-done
	if len(ack) < 100 {
		t.Fatalf("only %d transfers acknowledged before the kill", len(ack))
	}
	p2 := start(t, dir)
	if !strings.Contains(p2.log(), "recovered") || strings.Contains(p2.log(), "(snapshot 0,") {
		t.Fatalf("no recovery line:\n%s", p2.log())
	}
	verify(t, p2.url, ack, tried)
	// resending acknowledged single transfers with their keys replays, never re-applies
	n := 0
	for id, x := range ack {
		if !strings.HasPrefix(id, "x-0-") || n >= 50 {
			continue
		}
		n++
		st, h, b, err := call(p2.url, "/v1/transfers", "key-"+id, x)
		if err != nil || st != 200 || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay of %s after crash: %d %v %s", id, st, err, b)
		}
	}
	verify(t, p2.url, ack, tried)

	// graceful shutdown during a burst: exit 0, acknowledged work durable
	stop2 := make(chan struct{})
	var acked2 atomic.Int64
	done2 := make(chan struct{})
	var ack2, tried2 map[string]xfer
	go func() { ack2, tried2 = burst(p2.url, "y", stop2, &acked2); close(done2) }()
	for acked2.Load() < 500 && time.Now().Before(deadline.Add(60*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	p2.cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	select {
	case exitErr = <-p2.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("remit did not stop on SIGTERM")
	}
	close(stop2)
	<-done2
	if exitErr != nil || !strings.Contains(p2.log(), "stopped cleanly") {
		t.Fatalf("SIGTERM exit: %v\n%s", exitErr, p2.log())
	}
	for id, x := range ack2 {
		ack[id] = x
	}
	for id, x := range tried2 {
		tried[id] = x
	}
	p3 := start(t, dir)
	verify(t, p3.url, ack, tried)
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--max-batch", "0"}, {"--nope"}, {"extra"}} {
		out, err := exec.Command(binary, append([]string{"--data", t.TempDir()}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "remit") {
			t.Fatalf("%v: err %v out %s", args, err, out)
		}
	}
}

// TestCrashSoak repeats kill -9 / restart cycles against one data directory.
// FINVIRT_SOAK=1 go test -run TestCrashSoak ./cmd/remit/
func TestCrashSoak(t *testing.T) {
	if os.Getenv("FINVIRT_SOAK") == "" {
		t.Skip("set FINVIRT_SOAK=1 for repeated kill -9 cycles")
	}
	dir := t.TempDir()
	p := start(t, dir, "--snapshot-kib", "256")
	setupBank(t, p.url)
	ack, tried := map[string]xfer{}, map[string]xfer{}
	for cycle := 0; cycle < 10; cycle++ {
		stop := make(chan struct{})
		var acked atomic.Int64
		done := make(chan struct{})
		var a, tr map[string]xfer
		prefix := fmt.Sprintf("s%d", cycle)
		go func() { a, tr = burst(p.url, prefix, stop, &acked); close(done) }()
		deadline := time.Now().Add(60 * time.Second)
		for acked.Load() < int64(500+cycle*300) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		close(stop)
		<-done
		for id, x := range tr {
			if _, seen := tried[id]; !seen {
				tried[id] = x
			}
		}
		for id, x := range a {
			ack[id] = x
		}
		p = start(t, dir)
		verify(t, p.url, ack, tried)
	}
}
