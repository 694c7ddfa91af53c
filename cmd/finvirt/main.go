// Command finvirt is the finvirt daemon ("finvirt daemon") and its command-line client
// (every other subcommand).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/client"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every client command shares.
type globals struct {
	socket string
	output string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ex *exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(os.Stderr, "Error: "+ex.msg)
			}
			os.Exit(ex.code)
		}
		fmt.Fprintln(os.Stderr, "Error: "+err.Error())
		os.Exit(1)
	}
}

// exitError ends the CLI with a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "finvirt",
		Short:         "finvirt: virtualization for financial institutions",
		Long:          "finvirt runs VMs, storage and networks for banks, securities firms and insurers, with projects, RBAC, four-eyes approvals and a hash-chained audit log.\n\n'finvirt daemon' runs the server; every other command talks to it over its unix socket (FINVIRT_SOCKET) or over TLS (FINVIRT_REMOTE, FINVIRT_TOKEN, FINVIRT_SERVER_CERT).",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "daemon unix socket (default $FINVIRT_SOCKET or "+client.DefaultSocket+")")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table, json or yaml")
	root.AddCommand(
		newDaemonCmd(g),
		newInfoCmd(g),
		newProjectCmd(g),
		newTokenCmd(g),
		newIdentityCmd(g),
		newApprovalCmd(g),
		newAuditCmd(g),
		newOperationCmd(g),
		newEventsCmd(g),
		newAdminCmd(g),
		newStorageCmd(g),
		newNetworkCmd(g),
	)
	root.AddCommand(newInstanceCommands(g)...)
	return root
}

func (g *globals) client() (*client.Client, error) {
	if err := checkOutput(g.output); err != nil {
		return nil, err
	}
	return client.FromEnv(g.socket)
}
