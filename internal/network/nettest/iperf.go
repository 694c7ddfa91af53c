package nettest

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RequireIperf skips without iperf3.
func RequireIperf(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
}

// IperfServer starts `iperf3 -s` on port in ns in its own process group, killed in Cleanup.
func (n NS) IperfServer(t testing.TB, port int) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "iperf3", "-s", "-p", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

// Iperf runs a TCP iperf3 client from ns to dst for secs seconds and returns the received
// bits per second. It retries while the server is still starting.
func (n NS) Iperf(t testing.TB, dst string, port, secs int) float64 {
	t.Helper()
	var last []byte
	for try := 0; try < 20; try++ {
		out, err := n.Exec("iperf3", "-c", dst, "-p", strconv.Itoa(port), "-t", strconv.Itoa(secs), "-J")
		if err == nil {
			var r struct {
				Error string `json:"error"`
				End   struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("iperf3 output: %v\n%s", err, out)
			}
			if r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
				return r.End.SumReceived.BitsPerSecond
			}
		}
		last = out
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("iperf3 to %s:%d failed: %s", dst, port, last)
	return 0
}

// Mbit formats bits/s.
func Mbit(bps float64) string { return fmt.Sprintf("%.0f Mbit/s", bps/1e6) }
