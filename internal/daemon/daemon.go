// Package daemon is the finvirt server: it owns the state store, serves the REST API under
// /1.0/ on a unix socket (the local administrator) and optionally on TCP with TLS (token or
// client-certificate identities), and runs long operations.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/finvirt/finvirt/internal/store"
)

// Config is the daemon's configuration.
type Config struct {
	StateDir string // default /var/lib/finvirt
	Socket   string // default /run/finvirt/finvirt.sock
	Listen   string // optional TCP address served with TLS, e.g. 127.0.0.1:8443
	Logger   *slog.Logger
	Version  string
	// ApprovalTTL is how long a four-eyes approval stays open (default 24h).
	ApprovalTTL time.Duration
	// MaxBodyBytes caps request bodies (default 1 MiB).
	MaxBodyBytes int64
	// NoSync disables fsync of the state database: benchmarks of the API layer only.
	NoSync bool

	// Subsystem settings (each subsystem documents its own defaults).
	Accel         string // "", "kvm" or "tcg": override the KVM probe
	KernelDir     string // guest kernel package tree (default $FINVIRT_KERNEL_DIR or /var/cache/finvirt/kernel)
	NetworkPrefix string // prefix of host bridges, taps and nft tables (default "fv")
	MasterKeyPath string // volume-encryption master key, kept outside the state database
}

// Daemon is a running finvirt server.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	store   store.Store
	mux     *http.ServeMux
	routes  []*Route
	byPat   map[string]*Route
	ops     *operations
	events  *eventBus
	metrics *metrics
	started time.Time

	subsystems []Subsystem

	tlsConfig      *tls.Config
	tlsFingerprint string

	ready chan struct{}

	mu        sync.Mutex
	servers   []*http.Server
	listeners []net.Listener
}

// Defaults fills in unset configuration.
func (c *Config) defaults() {
	if c.StateDir == "" {
		c.StateDir = "/var/lib/finvirt"
	}
	if c.Socket == "" {
		c.Socket = "/run/finvirt/finvirt.sock"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.ApprovalTTL == 0 {
		c.ApprovalTTL = 24 * time.Hour
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.Version == "" {
		c.Version = "dev"
	}
}

// New opens the state and prepares the API; Run serves it.
func New(cfg Config) (*Daemon, error) {
	cfg.defaults()
	switch cfg.Accel {
	case "", "kvm", "tcg":
	case "auto":
		cfg.Accel = ""
	default:
		return nil, fmt.Errorf("accelerator %q is unknown: use auto (probe KVM with a real boot, else TCG), kvm or tcg", cfg.Accel)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", cfg.StateDir, err)
	}
	st, err := store.OpenBolt(filepath.Join(cfg.StateDir, "state.db"), store.BoltOptions{NoSync: cfg.NoSync})
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:     cfg,
		log:     cfg.Logger,
		store:   st,
		ops:     newOperations(),
		events:  newEventBus(),
		started: time.Now().UTC(),
		ready:   make(chan struct{}),
	}
	d.metrics = newMetrics(d)
	d.buildRoutes()
	if err := d.loadSubsystems(); err != nil {
		st.Close()
		return nil, err
	}
	if err := d.bootstrap(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// Store exposes the state store to in-process subsystems.
func (d *Daemon) Store() store.Store { return d.store }

// Run serves until ctx ends, then shuts down gracefully: no new requests, in-flight ones
// finish (bounded), the store is closed.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.startSubsystems(ctx); err != nil {
		d.stopSubsystems()
		d.store.Close()
		return err
	}
	ul, err := listenUnix(d.cfg.Socket)
	if err != nil {
		return err
	}
	d.serve(ul, false)
	d.log.Info("listening", "socket", d.cfg.Socket, "state_dir", d.cfg.StateDir)
	if d.cfg.Listen != "" {
		if err := d.setupTLS(); err != nil {
			d.shutdown()
			return err
		}
		tl, err := net.Listen("tcp", d.cfg.Listen)
		if err != nil {
			d.shutdown()
			return fmt.Errorf("listen on %s: %w", d.cfg.Listen, err)
		}
		d.serve(tls.NewListener(tl, d.tlsConfig), true)
		d.log.Info("listening", "tcp", tl.Addr().String(), "tls_cert_sha256", d.tlsFingerprint)
	}
	close(d.ready)
	<-ctx.Done()
	d.log.Info("shutting down")
	d.shutdown()
	return nil
}

// Ready is closed once every listener accepts connections.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Addr returns the TCP address actually bound (useful with port 0), or "".
func (d *Daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.listeners {
		if l.Addr().Network() == "tcp" {
			return l.Addr().String()
		}
	}
	return ""
}

func (d *Daemon) serve(l net.Listener, tcp bool) {
	srv := &http.Server{
		Handler:           d.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	d.mu.Lock()
	d.servers = append(d.servers, srv)
	d.listeners = append(d.listeners, l)
	d.mu.Unlock()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("server stopped", "err", err)
		}
	}()
}

func (d *Daemon) shutdown() {
	d.events.close()
	d.mu.Lock()
	servers := d.servers
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(ctx)
	}
	d.ops.cancelAll()
	d.stopSubsystems()
	d.store.Close()
	os.Remove(d.cfg.Socket)
}

type connKey struct{}

// listenUnix binds the API socket, replacing a stale socket file left by a crashed daemon
// but refusing to steal the socket of a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s is in use by a running daemon: stop it or choose another --socket", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Root-only: the socket grants full administrator rights.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
