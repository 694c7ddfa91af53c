package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/units"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Aliases: []string{"images"}, Short: "Build, list, export and import guest images"}

	var binaries, include []string
	var kernelPkg, suite string
	var diskMB int
	build := &cobra.Command{
		Use:   "build NAME",
		Short: "Build an appliance image (agent + static binaries) or, with --debootstrap, a full Debian image",
		Long: "Build an image in the daemon's image store. --binary paths are files on the daemon host (made absolute here); " +
			"each becomes /bin/<name> in an appliance. The guest agent comes from finvirt-agent next to the daemon binary (or $FINVIRT_AGENT).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req := api.ImagesPost{Name: args[0], Include: include, DiskMB: diskMB, Debootstrap: suite}
			if suite != "" || len(include) > 0 || diskMB != 0 {
				req.Kind = api.ImageFull
			}
			for _, b := range binaries {
				abs, err := filepath.Abs(b)
				if err != nil {
					return err
				}
				req.Binaries = append(req.Binaries, abs)
			}
			// A value with '/' is a directory on this host; otherwise a Debian package name
			// the daemon resolves and fetches with apt.
			req.KernelPackage = kernelPkg
			if strings.Contains(kernelPkg, "/") {
				if req.KernelPackage, err = filepath.Abs(kernelPkg); err != nil {
					return err
				}
			}
			op, err := c.BuildImage(cmd.Context(), req)
			if err != nil {
				return err
			}
			if _, err := waitWithBar(cmd, c, op); err != nil {
				return err
			}
			im, err := c.GetImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showImage(g, im)
		},
	}
	build.Flags().StringArrayVar(&binaries, "binary", nil, "static executable to include (repeatable)")
	build.Flags().StringVar(&kernelPkg, "kernel-package", "", "guest kernel: a directory with an unpacked Debian kernel package (contains '/', e.g. ./kernel) or a Debian package name such as linux-image-cloud-amd64, fetched with apt on the daemon host (default: the daemon's kernel dir)")
	build.Flags().StringVar(&suite, "debootstrap", "", "build a full image of this Debian suite (e.g. bookworm)")
	build.Flags().StringSliceVar(&include, "include", nil, "extra Debian packages of a full image (a,b,c)")
	build.Flags().IntVar(&diskMB, "disk-mb", 0, "root filesystem size of a full image in MB (default 2048)")

	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List images", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ims, err := c.ListImages(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ims, func(t *tabwriter.Writer) {
				row(t, "NAME", "KIND", "ID", "SIZE", "KERNEL", "CREATED", "USED BY")
				for _, im := range ims {
					row(t, im.Name, im.Kind, im.ID[:12], units.FormatSize(im.Size), im.KernelVersion, im.CreatedAt.Format(time.RFC3339), dash(strings.Join(im.UsedBy, ",")))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Aliases: []string{"info"}, Short: "Show an image and its files", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			im, err := c.GetImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showImage(g, im)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Aliases: []string{"rm"}, Short: "Delete an image no instance uses", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteImage(cmd.Context(), args[0]); err != nil {
				return pending(err)
			}
			fmt.Fprintf(stdout, "Image %s deleted\n", args[0])
			return nil
		},
	}
	export := &cobra.Command{
		Use: "export NAME FILE", Short: "Export an image as a tar archive (FILE - for stdout)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var n int64
			err = writeFileAtomic(args[1], func(w io.Writer) error {
				var err error
				n, err = c.ExportImage(cmd.Context(), args[0], w)
				return err
			})
			if err == nil && args[1] != "-" {
				fmt.Fprintf(os.Stderr, "Exported %s to %s (%s)\n", args[0], args[1], units.FormatSize(n))
			}
			return err
		},
	}
	imp := &cobra.Command{
		Use: "import FILE", Short: "Import an image archive (FILE - for stdin); verified, nothing kept on failure", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			im, err := c.ImportImage(cmd.Context(), r)
			if err != nil {
				return err
			}
			return showImage(g, im)
		},
	}
	cmd.AddCommand(build, list, show, del, export, imp)
	return cmd
}

func showImage(g *globals, im api.Image) error {
	return render(stdout, g.output, im, func(t *tabwriter.Writer) {
		row(t, "Name:", im.Name)
		row(t, "Kind:", im.Kind)
		row(t, "ID:", im.ID)
		row(t, "Size:", units.FormatSize(im.Size))
		row(t, "Kernel:", im.KernelVersion)
		row(t, "Created:", im.CreatedAt.Format(time.RFC3339))
		if im.BuildSeconds > 0 {
			row(t, "Build time:", fmt.Sprintf("%.1fs", im.BuildSeconds))
		}
		row(t, "Binaries:", dash(strings.Join(im.Files, " ")))
		row(t, "Used by:", dash(strings.Join(im.UsedBy, ", ")))
	})
}
