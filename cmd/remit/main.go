// Command remit is finvirt's bank-remittance ledger workload: a static
// binary serving the remit HTTP API (docs/remit.md) over a group-committed,
// fsynced journal in --data.
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
	"syscall"
	"time"

	"github.com/finvirt/finvirt/workloads/remit/engine"
	"github.com/finvirt/finvirt/workloads/remit/httpapi"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "remit:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("remit", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve the HTTP API on")
	data := fs.String("data", "remit-data", "journal and snapshot directory (created if missing)")
	maxBatch := fs.Int("max-batch", 8190, "most events the state machine applies per batch (one fsync per batch)")
	fsync := fs.Bool("fsync", true, "fsync the journal before acknowledging; --fsync=false is for benchmarks only and loses acknowledged transfers on a crash")
	snapKiB := fs.Int64("snapshot-kib", 64<<10, "write a snapshot and start a new journal segment once the segment exceeds this many KiB")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; remit takes only flags", fs.Args())
	}
	if *maxBatch < 1 {
		return fmt.Errorf("--max-batch must be >= 1, got %d", *maxBatch)
	}
	if !*fsync {
		fmt.Fprintln(os.Stderr, "remit: WARNING --fsync=false: acknowledged transfers can be lost on a crash (benchmarks only)")
	}
	start := time.Now()
	eng, err := engine.Open(engine.Options{Dir: *data, MaxBatch: *maxBatch, NoSync: !*fsync, SnapshotBytes: *snapKiB << 10})
	if err != nil {
		return err
	}
	rec := eng.Recovery()
	fmt.Fprintf(os.Stderr, "remit: recovered %s in %v (snapshot %d, %d segments, %d records, %d torn bytes truncated)\n",
		*data, time.Since(start).Round(time.Millisecond), rec.SnapshotSeq, rec.Segments, rec.Records, rec.TornBytes)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		eng.Close()
		return err
	}
	srv := &http.Server{Handler: httpapi.New(eng, httpapi.Options{}), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "remit listening on %s\n", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	failed := time.NewTicker(time.Second)
	defer failed.Stop()
	for {
		select {
		case err := <-serveErr:
			eng.Close()
			return err
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "remit: %v: draining\n", s)
			// Stop accepting, let in-flight handlers get their (durable) answers,
			// then drain the engine queue and do the final fsync.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			herr := srv.Shutdown(ctx)
			cancel()
			if err := eng.Close(); err != nil {
				return err
			}
			if herr != nil && !errors.Is(herr, http.ErrServerClosed) {
				return herr
			}
			fmt.Fprintln(os.Stderr, "remit: stopped cleanly")
			return nil
		case <-failed.C:
			if err := eng.Err(); err != nil {
				// Crash-only: the in-memory state may be ahead of the journal;
				// restart and recover from disk.
				srv.Close()
				eng.Close()
				return fmt.Errorf("journal failed, exiting so a restart recovers from disk: %w", err)
			}
		}
	}
}
