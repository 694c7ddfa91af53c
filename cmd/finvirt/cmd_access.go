package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
)

func grantsString(gs []api.Grant) string {
	var s []string
	for _, g := range gs {
		if g.Project != "" {
			s = append(s, g.Role+"@"+g.Project)
		} else {
			s = append(s, g.Role)
		}
	}
	return strings.Join(s, ",")
}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Issue and revoke bearer tokens for remote identities"}
	var role, project, desc, expires string
	create := &cobra.Command{
		Use:   "create IDENTITY --role ROLE [--project P]",
		Short: "Issue a token, granting IDENTITY the role (the secret is shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(cmd.Context(), api.TokensPost{Identity: args[0], Role: role, Project: project, Description: desc, ExpiresIn: expires})
			if err != nil {
				return err
			}
			return render(stdout, g.output, t, func(tw *tabwriter.Writer) {
				row(tw, "Token:", t.Secret)
				row(tw, "ID:", t.ID)
				row(tw, "Identity:", t.Identity)
				fmt.Fprintln(os.Stderr, "Keep the token secret: it is not shown again. Use it with FINVIRT_REMOTE=https://HOST:PORT FINVIRT_TOKEN=<token>.")
			})
		},
	}
	create.Flags().StringVar(&role, "role", "", "admin, operator, auditor or viewer")
	create.Flags().StringVar(&project, "project", "", "project for operator and viewer roles")
	create.Flags().StringVar(&desc, "description", "", "what the token is for")
	create.Flags().StringVar(&expires, "expires-in", "", "lifetime, e.g. 720h (default: no expiry)")
	create.MarkFlagRequired("role")

	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List tokens (not their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ts, func(tw *tabwriter.Writer) {
				row(tw, "ID", "IDENTITY", "CREATED", "EXPIRES", "DESCRIPTION")
				for _, t := range ts {
					exp := "-"
					if t.ExpiresAt != nil {
						exp = t.ExpiresAt.Format(time.RFC3339)
					}
					row(tw, t.ID, t.Identity, t.CreatedAt.Format(time.RFC3339), exp, dash(t.Description))
				}
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Token %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newIdentityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Short: "Inspect and remove identities; trust client certificates"}
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List identities and their roles", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ids, err := c.ListIdentities(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ids, func(tw *tabwriter.Writer) {
				row(tw, "NAME", "ROLES", "CERTIFICATES")
				for _, id := range ids {
					row(tw, id.Name, grantsString(id.Grants), len(id.Certificates))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show an identity", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			id, err := c.GetIdentity(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return render(stdout, g.output, id, func(tw *tabwriter.Writer) {
				row(tw, "Name:", id.Name)
				row(tw, "Roles:", grantsString(id.Grants))
				row(tw, "Certificates:", dash(strings.Join(id.Certificates, ",")))
			})
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete an identity with its tokens and certificates", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteIdentity(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Identity %s deleted\n", args[0])
			return nil
		},
	}
	var role, project, certPath string
	trust := &cobra.Command{
		Use: "trust-cert NAME --cert FILE --role ROLE [--project P]", Short: "Authenticate NAME by a client certificate", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			pem, err := os.ReadFile(certPath)
			if err != nil {
				return err
			}
			id, err := c.AddCertificate(cmd.Context(), api.CertificatesPost{Identity: args[0], Role: role, Project: project, Certificate: string(pem)})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Identity %s (%s) trusts %d certificate(s)\n", id.Name, grantsString(id.Grants), len(id.Certificates))
			return nil
		},
	}
	trust.Flags().StringVar(&certPath, "cert", "", "PEM certificate file")
	trust.Flags().StringVar(&role, "role", "", "admin, operator, auditor or viewer")
	trust.Flags().StringVar(&project, "project", "", "project for operator and viewer roles")
	trust.MarkFlagRequired("cert")
	trust.MarkFlagRequired("role")
	cmd.AddCommand(list, show, del, trust)
	return cmd
}

func newApprovalCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "approval", Short: "Four-eyes approvals of destructive changes to protected projects"}
	var status string
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List approvals", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			as, err := c.ListApprovals(cmd.Context(), status)
			if err != nil {
				return err
			}
			return render(stdout, g.output, as, func(tw *tabwriter.Writer) {
				row(tw, "ID", "PROJECT", "REQUEST", "REQUESTED BY", "STATUS", "DECIDED BY")
				for _, a := range as {
					row(tw, a.ID, a.Project, a.Method+" "+a.Path, a.RequestedBy, a.Status, dash(a.DecidedBy))
				}
			})
		},
	}
	list.Flags().StringVar(&status, "status", "", "only pending, approved, rejected, expired or failed")
	decide := func(approve bool) *cobra.Command {
		verb := "reject"
		if approve {
			verb = "approve"
		}
		var reason string
		c := &cobra.Command{
			Use: verb + " ID", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a pending request (must be a different identity than the requester)", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				a, err := c.DecideApproval(cmd.Context(), args[0], approve, reason)
				if err != nil {
					return err
				}
				if a.Status == api.ApprovalFailed {
					return fmt.Errorf("approval %s was approved but the request failed: %s", a.ID, strings.TrimSpace(a.Result))
				}
				fmt.Fprintf(stdout, "Approval %s %s by %s (requested by %s)\n", a.ID, a.Status, a.DecidedBy, a.RequestedBy)
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (recorded)")
		return c
	}
	cmd.AddCommand(list, decide(true), decide(false))
	return cmd
}
