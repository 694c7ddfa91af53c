package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/units"
)

func newInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "info [host]", Short: "Show the daemon and who you are to it; 'info host' shows the hypervisor host", Args: cobra.MaximumNArgs(1),
		ValidArgs: []string{"host"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if args[0] != "host" {
					return fmt.Errorf("unknown info topic %q: use 'finvirt info' or 'finvirt info host'", args[0])
				}
				var h api.HostInfo
				if err := c.Do(cmd.Context(), "GET", "/1.0/host", nil, &h); err != nil {
					return err
				}
				if h.AccelWarning != "" {
					fmt.Fprintln(os.Stderr, "WARNING: "+h.AccelWarning)
				}
				return render(stdout, g.output, h, func(t *tabwriter.Writer) {
					row(t, "Host:", h.Hostname)
					row(t, "CPUs:", h.CPUs)
					row(t, "Memory:", units.FormatSize(h.MemoryBytes))
					row(t, "Accelerator:", h.Accel+" ("+h.AccelReason+")")
					if h.AccelProbedAt != nil {
						how := "probed at "
						if h.AccelCached {
							how = "cached verdict of the probe at "
						}
						row(t, "Accel probe:", how+h.AccelProbedAt.Format(time.RFC3339))
					}
					row(t, "Guest kernel:", dash(h.KernelVersion))
					row(t, "QEMU:", dash(h.QEMUVersion))
				})
			}
			i, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, i, func(t *tabwriter.Writer) {
				row(t, "Version:", i.Version)
				row(t, "API:", i.APIVersion)
				row(t, "Host:", i.Hostname)
				row(t, "State dir:", i.StateDir)
				row(t, "Store:", i.StoreDriver)
				row(t, "Started:", i.StartedAt.Format(time.RFC3339))
				row(t, "You are:", i.Identity+" ("+grantsString(i.Roles)+")")
				if i.TCPAddress != "" {
					row(t, "TCP (TLS):", i.TCPAddress)
				}
				if i.TLSCertSHA != "" {
					row(t, "TLS cert SHA-256:", i.TLSCertSHA)
				}
			})
		},
	}
}

// waitWithBar follows an operation with a progress bar on stderr.
func waitWithBar(cmd *cobra.Command, c *client.Client, op api.Operation) (api.Operation, error) {
	bar := progressbar.NewOptions(100, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(op.Description),
		progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
	final, err := c.WaitOperation(cmd.Context(), op.ID, func(o api.Operation) { bar.Set(o.Progress) })
	bar.Finish()
	return final, err
}

func newOperationCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "operation", Short: "Inspect and wait for long-running operations"}
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List operations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ops, err := c.ListOperations(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ops, func(t *tabwriter.Writer) {
				row(t, "ID", "STATUS", "PROGRESS", "DESCRIPTION", "ERROR")
				for _, o := range ops {
					row(t, o.ID, o.Status, fmt.Sprintf("%d%%", o.Progress), o.Description, dash(o.Error))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show an operation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			op, err := c.GetOperation(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			return showOp(g, op)
		},
	}
	wait := &cobra.Command{
		Use: "wait ID", Short: "Wait for an operation, with a progress bar", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			op, err := c.GetOperation(cmd.Context(), args[0], 0)
			if err != nil {
				return err
			}
			op, err = waitWithBar(cmd, c, op)
			if err != nil {
				return err
			}
			return showOp(g, op)
		},
	}
	cancel := &cobra.Command{
		Use: "cancel ID", Short: "Cancel a running operation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			op, err := c.CancelOperation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showOp(g, op)
		},
	}
	cmd.AddCommand(list, show, wait, cancel)
	return cmd
}

func showOp(g *globals, op api.Operation) error {
	return render(stdout, g.output, op, func(t *tabwriter.Writer) {
		row(t, "ID:", op.ID)
		row(t, "Description:", op.Description)
		row(t, "Status:", op.Status)
		row(t, "Progress:", fmt.Sprintf("%d%%", op.Progress))
		row(t, "Message:", dash(op.Message))
		row(t, "Error:", dash(op.Error))
	})
}

func newEventsCmd(g *globals) *cobra.Command {
	var typ string
	cmd := &cobra.Command{
		Use: "monitor", Short: "Print the daemon's events as they happen (JSON lines)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ch, err := c.Events(cmd.Context(), typ)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			for ev := range ch {
				enc.Encode(ev)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "only lifecycle or operation events")
	return cmd
}

func newAdminCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Daemon administration"}
	var name string
	backup := &cobra.Command{
		Use: "backup", Short: "Back up the state database into the state dir's backups/ (progress shown)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			op, err := c.Backup(cmd.Context(), name)
			if err != nil {
				return err
			}
			op, err = waitWithBar(cmd, c, op)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, op.Message)
			return nil
		},
	}
	backup.Flags().StringVar(&name, "name", "", "backup name (default state-<time>)")
	cmd.AddCommand(backup)
	return cmd
}
