// Command trade is finvirt's securities order-matching reference workload:
// price-time order books per symbol behind an HTTP/JSON API (contract v1)
// and a FIX 4.4 acceptor, with every accepted command journaled before it
// is applied and replayed at start.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/finvirt/finvirt/workloads/trade/book"
	"github.com/finvirt/finvirt/workloads/trade/engine"
	"github.com/finvirt/finvirt/workloads/trade/fixgw"
	"github.com/finvirt/finvirt/workloads/trade/httpapi"
	"github.com/finvirt/finvirt/workloads/trade/journal"
	"github.com/prometheus/client_golang/prometheus"
)

type options struct {
	listen, fixListen, data, symbols string
	fsync, selfTrade                 string
	linger                           time.Duration
	fixSender, fixTargets, fixStore  string
	fixHeartbeat                     int
	fixResetOnLogon                  bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("trade", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8082", "HTTP API listen address")
	fs.StringVar(&o.fixListen, "fix-listen", "127.0.0.1:9878", "FIX 4.4 acceptor listen address (\"\" disables FIX)")
	fs.StringVar(&o.data, "data", "trade-data", "data directory (journal, FIX message store)")
	fs.StringVar(&o.symbols, "symbols", "AAPL,MSFT,GOOG,AMZN,TSLA", "traded symbols, comma separated, optional :TICK each (e.g. AAPL,BRK.A:1)")
	fs.StringVar(&o.fsync, "fsync", "batch", "journal fsync policy: batch (fsync each group-committed batch before acknowledging) or none")
	fs.DurationVar(&o.linger, "journal-linger", 0, "wait this long to grow each journal batch (fewer fsyncs, more latency)")
	fs.StringVar(&o.selfTrade, "self-trade", "cancel-resting", "self-trade policy: cancel-resting or allow")
	fs.StringVar(&o.fixSender, "fix-sender", "FINVIRT", "FIX SenderCompID of the gateway")
	fs.StringVar(&o.fixTargets, "fix-targets", "CLIENT1,CLIENT2,LOADGEN", "FIX TargetCompIDs (clients) allowed to log on, comma separated")
	fs.StringVar(&o.fixStore, "fix-store", "file", "FIX message store: file (under --data/fix) or memory")
	fs.IntVar(&o.fixHeartbeat, "fix-heartbeat", 30, "FIX HeartBtInt in seconds")
	fs.BoolVar(&o.fixResetOnLogon, "fix-reset-on-logon", true, "reset FIX sequence numbers when a client logs on")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q: trade takes only flags", fs.Args())
	}
	return o, nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "trade:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	syms, err := engine.ParseSymbols(o.symbols)
	if err != nil {
		return fmt.Errorf("--symbols: %w", err)
	}
	policy, err := journal.ParseSyncPolicy(o.fsync)
	if err != nil {
		return fmt.Errorf("--fsync: %w", err)
	}
	var stp book.SelfTradePolicy
	switch o.selfTrade {
	case "cancel-resting":
		stp = book.SelfTradeCancelResting
	case "allow":
		stp = book.SelfTradeAllow
	default:
		return fmt.Errorf("--self-trade %q unknown: use cancel-resting or allow", o.selfTrade)
	}
	if o.fixStore != "file" && o.fixStore != "memory" {
		return fmt.Errorf("--fix-store %q unknown: use file or memory", o.fixStore)
	}
	if err := os.MkdirAll(o.data, 0o755); err != nil {
		return fmt.Errorf("--data %s: %w", o.data, err)
	}
	start := time.Now()
	e, replayed, cut, err := engine.Open(engine.Config{Symbols: syms, SelfTrade: stp}, o.data, journal.Options{Sync: policy, Linger: o.linger})
	if err != nil {
		return fmt.Errorf("recover journal in %s: %w", o.data, err)
	}
	defer e.Close()
	_, hash := e.Hashes()
	fmt.Fprintf(os.Stderr, "trade recovered %d commands from %s in %v (torn tail truncated: %d bytes), book hash %s\n",
		replayed, filepath.Join(o.data, engine.JournalFile), time.Since(start).Round(time.Millisecond), cut, hash)

	api := httpapi.New(e)
	var gw *fixgw.Gateway
	if o.fixListen != "" {
		cfg := fixgw.Config{Listen: o.fixListen, SenderCompID: o.fixSender, TargetCompID: splitList(o.fixTargets),
			HeartBtInt: o.fixHeartbeat, ResetOnLogon: o.fixResetOnLogon}
		if o.fixStore == "file" {
			cfg.StoreDir = filepath.Join(o.data, "fix")
		}
		if gw, err = fixgw.New(e, cfg); err != nil {
			return err
		}
		if err := gw.Start(); err != nil {
			return err
		}
		defer func() {
			if gw != nil {
				gw.Stop()
			}
		}()
		registerFIXMetrics(api.Registry(), gw)
		fmt.Fprintf(os.Stderr, "trade fix acceptor on %s as %s for %s\n", o.fixListen, o.fixSender, o.fixTargets)
	}

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "trade listening on %s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "trade: %v, shutting down\n", s)
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	}
	// Stop taking requests, let in-flight ones finish (their journal
	// records become durable), then close the FIX sessions and the journal.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "trade: http shutdown:", err)
	}
	if gw != nil {
		gw.Stop()
		gw = nil
	}
	_, hash = e.Hashes()
	if err := e.Close(); err != nil {
		return fmt.Errorf("close journal: %w", err)
	}
	fmt.Fprintf(os.Stderr, "trade stopped, book hash %s\n", hash)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func registerFIXMetrics(reg *prometheus.Registry, gw *fixgw.Gateway) {
	st := gw.Stats()
	for name, f := range map[string]func() uint64{
		"trade_fix_logons_total":       st.Logons.Load,
		"trade_fix_app_messages_total": st.AppIn.Load,
		"trade_fix_exec_reports_total": st.Reports.Load,
		"trade_fix_rejects_total":      st.Rejects.Load,
		"trade_fix_send_errors_total":  st.SendErrors.Load,
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: "FIX gateway counter " + name + "."},
			func() float64 { return float64(f()) }))
	}
}
