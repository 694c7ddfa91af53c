package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/units"
)

// limitFlags are the quota flags shared by create and update.
type limitFlags struct {
	instances, vcpus int
	memory, disk     string
}

func (l *limitFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&l.instances, "limit-instances", 0, "most instances (0 = unlimited)")
	cmd.Flags().IntVar(&l.vcpus, "limit-vcpus", 0, "most vCPUs over all instances (0 = unlimited)")
	cmd.Flags().StringVar(&l.memory, "limit-memory", "", "most memory over all instances, e.g. 64GiB")
	cmd.Flags().StringVar(&l.disk, "limit-disk", "", "most disk over all volumes, e.g. 2TiB")
}

func (l *limitFlags) apply(cmd *cobra.Command, base api.ProjectLimits) (api.ProjectLimits, bool, error) {
	changed := false
	if cmd.Flags().Changed("limit-instances") {
		if l.instances < 0 {
			return base, false, fmt.Errorf("--limit-instances must be 0 (unlimited) or more")
		}
		base.Instances, changed = l.instances, true
	}
	if cmd.Flags().Changed("limit-vcpus") {
		if l.vcpus < 0 {
			return base, false, fmt.Errorf("--limit-vcpus must be 0 (unlimited) or more")
		}
		base.VCPUs, changed = l.vcpus, true
	}
	if cmd.Flags().Changed("limit-memory") {
		v, err := units.ParseSize(l.memory)
		if err != nil {
			return base, false, fmt.Errorf("--limit-memory: %v", err)
		}
		base.Memory, changed = v, true
	}
	if cmd.Flags().Changed("limit-disk") {
		v, err := units.ParseSize(l.disk)
		if err != nil {
			return base, false, fmt.Errorf("--limit-disk: %v", err)
		}
		base.Disk, changed = v, true
	}
	return base, changed, nil
}

func limitString(n int64, size bool) string {
	if n == 0 {
		return "-"
	}
	if size {
		return units.FormatSize(n)
	}
	return fmt.Sprint(n)
}

func newProjectCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "project", Short: "Manage projects (tenants) and their quotas"}

	var lf limitFlags
	var desc string
	var protected bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			limits, _, err := lf.apply(cmd, api.ProjectLimits{})
			if err != nil {
				return err
			}
			p, err := c.CreateProject(cmd.Context(), api.ProjectsPost{Name: args[0], Description: desc, Protected: protected, Limits: limits})
			if err != nil {
				return err
			}
			return showProject(g, p)
		},
	}
	lf.add(create)
	create.Flags().StringVar(&desc, "description", "", "what the project is for")
	create.Flags().BoolVar(&protected, "protected", false, "destructive changes need a second identity's approval (four-eyes)")

	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List projects",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.ListProjects(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ps, func(t *tabwriter.Writer) {
				row(t, "NAME", "PROTECTED", "INSTANCES", "VCPUS", "MEMORY", "DISK", "DESCRIPTION")
				for _, p := range ps {
					row(t, p.Name, p.Protected,
						fmt.Sprintf("%d/%s", p.Usage.Instances, limitString(int64(p.Limits.Instances), false)),
						fmt.Sprintf("%d/%s", p.Usage.VCPUs, limitString(int64(p.Limits.VCPUs), false)),
						fmt.Sprintf("%s/%s", units.FormatSize(p.Usage.Memory), limitString(p.Limits.Memory, true)),
						fmt.Sprintf("%s/%s", units.FormatSize(p.Usage.Disk), limitString(p.Limits.Disk, true)),
						dash(p.Description))
				}
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a project",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.GetProject(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showProject(g, p)
		},
	}

	var ulf limitFlags
	var udesc string
	var uprot bool
	update := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a project's limits, description or protection",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var patch api.ProjectPatch
			if cmd.Flags().Changed("description") {
				patch.Description = &udesc
			}
			if cmd.Flags().Changed("protected") {
				patch.Protected = &uprot
			}
			cur := api.ProjectLimits{}
			if p, err := c.GetProject(cmd.Context(), args[0]); err == nil {
				cur = p.Limits
			} else {
				return err
			}
			limits, changed, err := ulf.apply(cmd, cur)
			if err != nil {
				return err
			}
			if changed {
				patch.Limits = &limits
			}
			if patch == (api.ProjectPatch{}) {
				return fmt.Errorf("nothing to change: give --limit-*, --description or --protected")
			}
			p, err := c.UpdateProject(cmd.Context(), args[0], patch)
			if err := pending(err); err != nil {
				return err
			}
			if p.Name == "" {
				return nil
			}
			return showProject(g, p)
		},
	}
	ulf.add(update)
	update.Flags().StringVar(&udesc, "description", "", "what the project is for")
	update.Flags().BoolVar(&uprot, "protected", false, "four-eyes protection (--protected=false to remove it, which itself needs approval)")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an empty project",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			err = c.DeleteProject(cmd.Context(), args[0])
			if err := pending(err); err != nil {
				return err
			}
			if err == nil {
				fmt.Fprintf(stdout, "Project %s deleted\n", args[0])
			}
			return nil
		},
	}
	cmd.AddCommand(create, list, show, update, del)
	return cmd
}

// pending turns a four-eyes PendingApproval into a notice (not a failure: the request is
// filed) and passes other errors through.
func pending(err error) error {
	var pa *client.PendingApproval
	if errors.As(err, &pa) {
		fmt.Fprintf(stdout, "Approval %s requested: %s needs a second identity (finvirt approval approve %s)\n", pa.Approval.ID, pa.Approval.Summary, pa.Approval.ID)
		return nil
	}
	return err
}

func showProject(g *globals, p api.Project) error {
	return render(stdout, g.output, p, func(t *tabwriter.Writer) {
		row(t, "Name:", p.Name)
		row(t, "Description:", dash(p.Description))
		row(t, "Protected:", p.Protected)
		row(t, "Instances:", fmt.Sprintf("%d of %s", p.Usage.Instances, limitString(int64(p.Limits.Instances), false)))
		row(t, "vCPUs:", fmt.Sprintf("%d of %s", p.Usage.VCPUs, limitString(int64(p.Limits.VCPUs), false)))
		row(t, "Memory:", fmt.Sprintf("%s of %s", units.FormatSize(p.Usage.Memory), limitString(p.Limits.Memory, true)))
		row(t, "Disk:", fmt.Sprintf("%s of %s", units.FormatSize(p.Usage.Disk), limitString(p.Limits.Disk, true)))
		row(t, "Created:", p.CreatedAt.Format("2006-01-02 15:04:05Z07:00"))
		row(t, "Revision:", p.Revision)
	})
}
