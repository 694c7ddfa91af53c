// Command claims runs the finvirt insurance-claims reference workload: an
// HTTP/JSON claims service (docs/claims.md) that pays approved claims
// through remit via a durable outbox.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // only served with --pprof
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/finvirt/finvirt/workloads/claims"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "claims:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("claims", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8083", "HTTP listen address")
	data := fs.String("data", "./claims-data", "data directory (bbolt store; created if missing)")
	remitURL := fs.String("remit-url", "http://127.0.0.1:8081", "base URL of remit, which executes payouts")
	payer := fs.String("payer-account", "insurer-claims", "remit account debited by payouts (the insurer's claims-payment account)")
	auto := fs.Int64("auto-approve-limit", 100000, "claims up to this amount (minor units) on active policies without fraud flags are approved on evaluation; 0 disables")
	authority := fs.Int64("authority-limit", 1000000, "approvals above this amount need two different approvers; 0 disables four-eyes")
	dispatchBatch := fs.Int("dispatch-batch", 1000, "max payouts per remit batch request")
	pprofAddr := fs.String("pprof", "", "serve Go profiling (net/http/pprof) on this address, e.g. 127.0.0.1:6063; off by default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v; all settings are flags (see --help)", fs.Args())
	}
	if *dispatchBatch < 1 {
		return fmt.Errorf("--dispatch-batch %d must be >= 1", *dispatchBatch)
	}
	store, err := claims.OpenStore(*data)
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := claims.NewService(store, claims.Config{AutoApproveLimit: *auto, AuthorityLimit: *authority, PayerAccount: *payer})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	d := claims.NewDispatcher(svc, claims.NewRemitClient(*remitURL))
	d.BatchSize = *dispatchBatch
	dctx, dcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(dctx); close(done) }()

	if *pprofAddr != "" {
		pl, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			dcancel()
			return fmt.Errorf("--pprof %s: %w", *pprofAddr, err)
		}
		go func() { _ = http.Serve(pl, http.DefaultServeMux) }() // pprof registers on the default mux
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		dcancel()
		return fmt.Errorf("listen on %s: %w (is the port in use? pick another with --listen)", *listen, err)
	}
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "claims listening on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Printf("claims: shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	dcancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
