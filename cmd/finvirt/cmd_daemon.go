package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/internal/daemon"
)

func newDaemonCmd(g *globals) *cobra.Command {
	var cfg daemon.Config
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the finvirt daemon in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return err
			}
			opts := &slog.HandlerOptions{Level: lvl}
			if logFormat == "json" {
				cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
			} else {
				cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, opts))
			}
			cfg.Socket = g.socket
			if cfg.Socket == "" {
				cfg.Socket = os.Getenv("FINVIRT_SOCKET")
			}
			cfg.Version = version
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.StateDir, "state-dir", "/var/lib/finvirt", "directory holding the state database, keys and instance files")
	f.StringVar(&cfg.Listen, "listen", "", "also serve HTTPS on this TCP address (e.g. 0.0.0.0:8443); clients use tokens or client certificates")
	f.StringVar(&cfg.Accel, "accel", "auto", "auto (probe KVM with a real boot, else TCG with a warning), kvm (trust KVM without probing) or tcg; $FINVIRT_ACCEL applies when auto")
	f.StringVar(&cfg.KernelDir, "kernel-dir", "", "unpacked Debian guest kernel package for appliance images (default $FINVIRT_KERNEL_DIR or /var/cache/finvirt/kernel)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
