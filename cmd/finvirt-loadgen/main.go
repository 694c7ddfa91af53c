// Command finvirt-loadgen drives the finvirt reference workloads (remit,
// trade, claims) open loop (--rate) or closed loop (--concurrency), reports
// throughput and latency percentiles, and checks correctness at the end.
//
//	finvirt-loadgen remit|trade|claims [--rate N | --concurrency N] --duration D [--target URL] [-o json] ...
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/finvirt/finvirt/workloads/loadgen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: finvirt-loadgen remit|trade|claims [--rate N | --concurrency N] --duration D [--target URL] [-o text|json] [scenario flags]
run "finvirt-loadgen <scenario> --help" for the scenario's flags`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	scenario := args[0]
	fs := flag.NewFlagSet("finvirt-loadgen "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	rate := fs.Float64("rate", 0, "open loop: requests per second at constant arrival rate (latency measured from intended send time)")
	conc := fs.Int("concurrency", 0, "closed loop: workers sending back to back (used when --rate is 0; default 8)")
	dur := fs.Duration("duration", 10*time.Second, "how long to send load")
	maxWorkers := fs.Int("max-workers", 4096, "open loop: maximum concurrent in-flight requests")
	lateAfter := fs.Duration("late-after", time.Millisecond, "open loop: count a send as late when it starts this long after its intended time")
	target := fs.String("target", "", "base URL of the workload (default remit :8081, trade :8082, claims :8083)")
	out := fs.String("o", "text", "report format: text or json")
	runID := fs.String("run-id", "", "prefix for every id this run creates (default lg<unix time>)")
	// remit
	accounts := fs.Int("accounts", 1000, "remit: customer accounts")
	hot := fs.Bool("hot", false, "remit: hot-account mode (10 accounts)")
	batch := fs.Int("batch", 1, "remit: transfers per request; claims: claims per request (>1 uses the batch endpoints)")
	initial := fs.Int64("initial", 1_000_000, "remit: minor units issued to each customer account")
	maxAmount := fs.Int64("max-amount", 1000, "remit: max transfer amount (uniform 1..N)")
	readEvery := fs.Duration("read-every", 0, "remit: read all balances this often during load (0 = only at the end)")
	verifyTransfers := fs.Bool("verify-transfers", true, "remit: GET every submitted transfer at the end (acked present, rejected absent, exactly-once reconciliation)")
	crashEvery := fs.Duration("crash-every", 0, "remit: crash mode, kill -9 remit this often and restart it")
	remitCmd := fs.String("remit-cmd", "", "remit: shell command that starts remit in the foreground at --target; loadgen runs it at start and after each kill (crash mode)")
	spawn := fs.String("spawn", "", "remit: path to the remit binary to run as a child (crash mode)")
	dataDir := fs.String("data", "", "remit: data dir for --spawn")
	// trade
	symbols := fs.String("symbols", "AAPL,MSFT,GOOG", "trade: symbols to trade (must be served by trade)")
	mid := fs.Float64("mid", 100, "trade: mid price (tick 0.01)")
	seed := fs.Int("seed-orders", 100, "trade: resting orders per symbol before the run")
	// claims
	remitURL := fs.String("remit-url", "http://127.0.0.1:8081", "claims: remit base URL (claimant accounts, verification)")
	claimants := fs.Int("claimants", 100, "claims: claimant accounts")
	policies := fs.Int("policies", 10, "claims: policies")
	wait := fs.Duration("wait", 30*time.Second, "claims: max wait for each claim to be paid")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments %v\n%s\n", fs.Args(), usage)
		return 2
	}
	if *out != "text" && *out != "json" {
		fmt.Fprintf(stderr, "-o %q: use text or json\n", *out)
		return 2
	}
	if *rate < 0 || *conc < 0 {
		fmt.Fprintln(stderr, "--rate and --concurrency must be >= 0")
		return 2
	}
	if *rate > 0 && *conc > 0 {
		fmt.Fprintln(stderr, "give either --rate (open loop) or --concurrency (closed loop), not both")
		return 2
	}
	if *rate == 0 && *conc == 0 {
		*conc = 8
	}
	if *runID == "" {
		*runID = fmt.Sprintf("lg%d", time.Now().Unix())
	}
	eng := loadgen.Config{Rate: *rate, Concurrency: *conc, Duration: *dur, MaxWorkers: *maxWorkers, LateAfter: *lateAfter}
	logger := log.New(stderr, "loadgen: ", log.LstdFlags)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var rep *loadgen.Report
	var err error
	switch scenario {
	case "remit":
		t := orDefault(*target, "http://127.0.0.1:8081")
		cfg := loadgen.RemitConfig{Target: t, RunID: *runID, Accounts: *accounts, Hot: *hot, Batch: *batch, Initial: *initial,
			MaxAmount: *maxAmount, ReadEvery: *readEvery, CrashEvery: *crashEvery, Engine: eng, Logf: logger.Printf,
			SkipTransferCheck: !*verifyTransfers}
		if *crashEvery > 0 && !*verifyTransfers {
			fmt.Fprintln(stderr, "crash mode needs --verify-transfers (its point is checking every acknowledged transfer)")
			return 2
		}
		var proc *loadgen.Proc
		switch {
		case *spawn != "" && *remitCmd != "":
			fmt.Fprintln(stderr, "give --spawn or --remit-cmd, not both")
			return 2
		case *spawn != "":
			if *dataDir == "" {
				fmt.Fprintln(stderr, "--spawn needs --data DIR for remit's journal")
				return 2
			}
			if *target == "" {
				addr, e := loadgen.FreeAddr()
				if e != nil {
					fmt.Fprintln(stderr, e)
					return 1
				}
				t = "http://" + addr
				cfg.Target = t
			}
			u, e := url.Parse(t)
			if e != nil || u.Host == "" {
				fmt.Fprintf(stderr, "--target %q is not a URL like http://127.0.0.1:8081\n", t)
				return 2
			}
			proc = &loadgen.Proc{Path: *spawn, Args: []string{"--listen", u.Host, "--data", *dataDir}, Log: stderr}
		case *remitCmd != "":
			proc = &loadgen.Proc{Shell: *remitCmd, Log: stderr}
		}
		if proc != nil {
			// loadgen owns the remit it kills: it starts it here (with
			// --spawn or by running --remit-cmd) so it knows the process.
			proc.Client = loadgen.NewClient(t, 5*time.Second)
			if proc.Client.WaitHealthy(ctx, 300*time.Millisecond) == nil {
				fmt.Fprintf(stderr, "something already serves %s; stop it: loadgen starts remit itself (--spawn or --remit-cmd) so it can kill -9 and restart it\n", t)
				return 2
			}
			if err := proc.Start(ctx); err != nil {
				fmt.Fprintln(stderr, "start remit:", err)
				return 1
			}
			defer proc.Stop()
			cfg.Proc = proc
		} else if *crashEvery > 0 {
			fmt.Fprintln(stderr, "--crash-every needs --spawn /path/to/remit --data DIR or --remit-cmd \"<restart command>\"")
			return 2
		}
		rep, err = loadgen.RunRemit(ctx, cfg)
	case "trade":
		rep, err = loadgen.RunTrade(ctx, loadgen.TradeConfig{Target: orDefault(*target, "http://127.0.0.1:8082"), RunID: *runID,
			Symbols: strings.Split(*symbols, ","), MidTicks: int64(*mid*100 + 0.5), Seed: *seed, Engine: eng})
	case "claims":
		rep, err = loadgen.RunClaims(ctx, loadgen.ClaimsConfig{Target: orDefault(*target, "http://127.0.0.1:8083"), RemitURL: *remitURL,
			RunID: *runID, Batch: *batch, Claimants: *claimants, Policies: *policies, Wait: *wait, Engine: eng})
	default:
		fmt.Fprintf(stderr, "unknown scenario %q\n%s\n", scenario, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "finvirt-loadgen:", err)
		return 1
	}
	if *out == "json" {
		_ = rep.WriteJSON(stdout)
	} else {
		rep.WriteText(stdout)
	}
	if !rep.Passed {
		return 1
	}
	return 0
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
