package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read, export and verify the hash-chained audit log"}
	var since string
	var limit int
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List audit records", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			recs, err := c.AuditList(cmd.Context(), since, limit)
			if err != nil {
				return err
			}
			return render(stdout, g.output, recs, func(t *tabwriter.Writer) {
				row(t, "SEQ", "TIME", "IDENTITY", "ACTION", "TARGET", "OUTCOME", "STATUS", "APPROVER", "REQUEST")
				for _, r := range recs {
					row(t, r.Seq, r.Time.Format(time.RFC3339), r.Identity, r.Action, r.Target, r.Outcome, r.Status, dash(r.Approver), r.RequestID)
				}
			})
		},
	}
	list.Flags().StringVar(&since, "since", "", "RFC 3339 time, sequence number, or duration such as 1h")
	list.Flags().IntVar(&limit, "limit", 0, "only the newest N records")

	var esince string
	export := &cobra.Command{
		Use: "export", Short: "Write the audit log as JSON lines (for a SIEM) to stdout", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.AuditExport(cmd.Context(), esince, os.Stdout)
		},
	}
	export.Flags().StringVar(&esince, "since", "", "RFC 3339 time, sequence number, or duration")

	verify := &cobra.Command{
		Use: "verify", Short: "Check the hash chain; exits non-zero naming the first bad record", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			if g.output != "table" {
				if err := render(stdout, g.output, res, nil); err != nil {
					return err
				}
			}
			if !res.OK {
				return &exitError{code: 2, msg: fmt.Sprintf("audit log is NOT intact: first bad record %d: %s", res.FirstBad, res.Problem)}
			}
			if g.output == "table" {
				fmt.Fprintf(stdout, "Audit log intact: %d records, head %s\n", res.Records, res.HeadHash)
			}
			return nil
		},
	}
	cmd.AddCommand(list, export, verify)
	return cmd
}
