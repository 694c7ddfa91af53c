package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/units"
)

func newStorageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "storage", Short: "Storage pools over several devices, and the thin volumes projects keep in them"}
	cmd.AddCommand(newPoolCmd(g), newVolumeCmd(g))
	return cmd
}

func newPoolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "Manage storage pools (administrators)"}
	var driver, source, path, profile string
	var force bool
	create := &cobra.Command{
		Use: "create NAME --driver dir|btrfs [--source /dev/sdb,/dev/sdc] [--profile single|raid1|raid10]", Short: "Create a pool", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req := api.StoragePoolsPost{Name: args[0], Driver: driver, Path: path, Profile: profile, Force: force}
			if source != "" {
				req.Source = strings.Split(source, ",")
			}
			p, err := c.CreateStoragePool(cmd.Context(), req)
			if err != nil {
				return err
			}
			return showPool(g, p)
		},
	}
	create.Flags().StringVar(&driver, "driver", "dir", "dir (qcow2 files in a directory) or btrfs (one filesystem over several devices)")
	create.Flags().StringVar(&source, "source", "", "comma-separated block devices (btrfs)")
	create.Flags().StringVar(&path, "path", "", "directory (dir) or mount point (btrfs); default <state-dir>/storage/NAME")
	create.Flags().StringVar(&profile, "profile", "", "btrfs redundancy: single, raid1 or raid10")
	create.Flags().BoolVar(&force, "force", false, "accept devices with an old filesystem signature")
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List pools", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.ListStoragePools(cmd.Context())
			if err != nil {
				return err
			}
			return render(stdout, g.output, ps, func(t *tabwriter.Writer) {
				row(t, "NAME", "DRIVER", "PROFILE", "STATUS", "CAPACITY", "ALLOCATED", "PROVISIONED", "OVERCOMMIT", "VOLUMES")
				for _, p := range ps {
					row(t, p.Name, p.Driver, dash(p.Profile), p.Status, units.FormatSize(int64(p.Capacity)), units.FormatSize(int64(p.Allocated)),
						units.FormatSize(int64(p.Provisioned)), fmt.Sprintf("%.2f", p.Overcommit), p.Volumes)
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a pool with per-device usage and health", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.GetStoragePool(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return showPool(g, p)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete an empty pool", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteStoragePool(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Storage pool %s deleted\n", args[0])
			return nil
		},
	}
	var xforce, balance bool
	extend := &cobra.Command{
		Use: "extend NAME DEVICE", Short: "Grow a multi-device pool by a device", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			p, err := c.ExtendStoragePool(cmd.Context(), args[0], api.StoragePoolExtend{Device: args[1], Force: xforce, Balance: balance})
			if err != nil {
				return err
			}
			return showPool(g, p)
		},
	}
	extend.Flags().BoolVar(&xforce, "force", false, "accept a device with an old filesystem signature")
	extend.Flags().BoolVar(&balance, "balance", false, "spread existing data over the new device now")
	cmd.AddCommand(create, list, show, del, extend)
	return cmd
}

func showPool(g *globals, p api.StoragePool) error {
	return render(stdout, g.output, p, func(t *tabwriter.Writer) {
		row(t, "Name:", p.Name)
		row(t, "Driver:", p.Driver)
		row(t, "Path:", p.Path)
		row(t, "Profile:", dash(p.Profile))
		row(t, "Status:", p.Status+" "+p.StatusError)
		row(t, "Capacity:", units.FormatSize(int64(p.Capacity)))
		row(t, "Allocated:", units.FormatSize(int64(p.Allocated)))
		row(t, "Provisioned:", fmt.Sprintf("%s (overcommit %.2f)", units.FormatSize(int64(p.Provisioned)), p.Overcommit))
		row(t, "Volumes:", p.Volumes)
		for _, d := range p.Devices {
			row(t, "Device:", fmt.Sprintf("%d %s size %s used %s health %s errors %d", d.ID, dash(d.Path), units.FormatSize(int64(d.Size)), units.FormatSize(int64(d.Used)), d.Health, d.Errors))
		}
	})
}

func newVolumeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage a project's volumes"}
	var project string
	cmd.PersistentFlags().StringVar(&project, "project", "", "project (default: default)")
	var pool, size, cache string
	var encrypted bool
	create := &cobra.Command{
		Use: "create NAME --pool POOL --size 20GiB [--encrypted] [--cache none|writethrough|writeback]", Short: "Create a thin volume", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := units.ParseSize(size)
			if err != nil {
				return fmt.Errorf("--size: %v", err)
			}
			v, err := c.CreateVolume(cmd.Context(), project, api.VolumesPost{Name: args[0], Pool: pool, Size: n, Encrypted: encrypted, Cache: cache})
			if err != nil {
				return err
			}
			return showVolume(g, v)
		},
	}
	create.Flags().StringVar(&pool, "pool", "", "storage pool")
	create.Flags().StringVar(&size, "size", "", "provisioned size, e.g. 20GiB")
	create.Flags().BoolVar(&encrypted, "encrypted", false, "LUKS encryption at rest with a per-volume key")
	create.Flags().StringVar(&cache, "cache", "", "host cache policy: none (default, flushes honoured), writethrough, writeback")
	create.MarkFlagRequired("pool")
	create.MarkFlagRequired("size")
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List volumes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			vs, err := c.ListVolumes(cmd.Context(), project)
			if err != nil {
				return err
			}
			return render(stdout, g.output, vs, func(t *tabwriter.Writer) {
				row(t, "NAME", "POOL", "FORMAT", "SIZE", "ALLOCATED", "ENCRYPTED", "CACHE", "ORIGIN", "SNAPSHOTS", "ATTACHED TO")
				for _, v := range vs {
					row(t, v.Name, v.Pool, v.Format, units.FormatSize(int64(v.Size)), units.FormatSize(int64(v.Allocated)), v.Encrypted, v.Cache, dash(v.Origin), v.Snapshots, dash(v.AttachedTo))
				}
			})
		},
	}
	one := func(use, short string, nargs int, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: run}
	}
	show := one("show NAME", "Show a volume", 1, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		v, err := c.GetVolume(cmd.Context(), project, args[0])
		if err != nil {
			return err
		}
		return showVolume(g, v)
	})
	del := one("delete NAME", "Delete a volume and its snapshots", 1, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		err = c.DeleteVolume(cmd.Context(), project, args[0])
		if err := pending(err); err != nil {
			return err
		}
		if err == nil {
			fmt.Fprintf(stdout, "Volume %s deleted\n", args[0])
		}
		return nil
	})
	resize := one("resize NAME SIZE", "Change a volume's size", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		n, err := units.ParseSize(args[1])
		if err != nil {
			return err
		}
		v, err := c.ResizeVolume(cmd.Context(), project, args[0], n)
		if err != nil {
			return err
		}
		return showVolume(g, v)
	})
	snapshot := one("snapshot NAME SNAPSHOT", "Snapshot a volume", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		s, err := c.SnapshotVolume(cmd.Context(), project, args[0], args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Snapshot %s@%s taken at %s\n", args[0], s.Name, s.CreatedAt.Format("2006-01-02 15:04:05Z07:00"))
		return nil
	})
	snapshots := one("snapshots NAME", "List a volume's snapshots", 1, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		ss, err := c.ListVolumeSnapshots(cmd.Context(), project, args[0])
		if err != nil {
			return err
		}
		return render(stdout, g.output, ss, func(t *tabwriter.Writer) {
			row(t, "NAME", "SIZE", "CREATED")
			for _, s := range ss {
				row(t, s.Name, units.FormatSize(int64(s.Size)), s.CreatedAt.Format("2006-01-02 15:04:05Z07:00"))
			}
		})
	})
	restore := one("restore NAME SNAPSHOT", "Restore a snapshot into its volume", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		_, err = c.RestoreVolume(cmd.Context(), project, args[0], args[1])
		if err := pending(err); err != nil {
			return err
		}
		if err == nil {
			fmt.Fprintf(stdout, "Volume %s restored to %s\n", args[0], args[1])
		}
		return nil
	})
	clone := one("clone SOURCE[@SNAPSHOT] NAME", "Clone a volume or snapshot in O(1)", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		src, snap, _ := strings.Cut(args[0], "@")
		v, err := c.CloneVolume(cmd.Context(), project, src, api.VolumeClone{Name: args[1], Snapshot: snap})
		if err != nil {
			return err
		}
		return showVolume(g, v)
	})
	var format string
	export := one("export NAME FILE", "Export a volume to a qcow2 or raw file", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		bar := progressbar.DefaultBytes(-1, "exporting "+args[0])
		defer bar.Finish()
		return writeFileAtomic(args[1], func(w io.Writer) error {
			return c.ExportVolume(cmd.Context(), project, args[0], format, io.MultiWriter(w, bar))
		})
	})
	export.Flags().StringVar(&format, "format", "qcow2", "qcow2 or raw")
	var ipool, iformat string
	var iencrypted bool
	imp := one("import FILE NAME --pool POOL", "Import a raw, qcow2, VMDK, VHD/VHDX or OVA disk (progress shown)", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		bar := progressbar.DefaultBytes(st.Size(), "uploading "+filepath.Base(args[0]))
		body := io.TeeReader(f, bar)
		op, err := c.ImportVolume(cmd.Context(), project, ipool, args[1], filepath.Base(args[0]), iformat, iencrypted, body)
		bar.Finish()
		if err != nil {
			return err
		}
		if _, err := waitWithBar(cmd, c, op); err != nil {
			return err
		}
		v, err := c.GetVolume(cmd.Context(), project, args[1])
		if err != nil {
			return err
		}
		return showVolume(g, v)
	})
	imp.Flags().StringVar(&ipool, "pool", "", "storage pool")
	imp.Flags().StringVar(&iformat, "format", "", "the format you expect (raw, qcow2, vmdk, vpc, vhdx, ova): refused if the file says otherwise")
	imp.Flags().BoolVar(&iencrypted, "encrypted", false, "store the imported volume encrypted")
	imp.MarkFlagRequired("pool")
	var mountpoint string
	attach := one("attach VOLUME INSTANCE", "Attach a volume to an instance (running full instances: hot-plug; appliances: stop them first)", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		if _, err := c.AttachInstanceVolume(cmd.Context(), project, args[1], api.InstanceVolume{Volume: args[0], Mountpoint: mountpoint}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Volume %s attached to instance %s\n", args[0], args[1])
		return nil
	})
	attach.Flags().StringVar(&mountpoint, "mountpoint", "", "where the guest agent mounts the volume's ext4 filesystem at boot")
	detach := one("detach VOLUME INSTANCE", "Detach a volume from an instance (appliances: stop them first)", 2, func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		if _, err := c.DetachInstanceVolume(cmd.Context(), project, args[1], args[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Volume %s detached from instance %s\n", args[0], args[1])
		return nil
	})
	cmd.AddCommand(create, list, show, del, resize, snapshot, snapshots, restore, clone, export, imp, attach, detach)
	return cmd
}

func showVolume(g *globals, v api.Volume) error {
	return render(stdout, g.output, v, func(t *tabwriter.Writer) {
		row(t, "Name:", v.Name)
		row(t, "Project:", v.Project)
		row(t, "Pool:", v.Pool)
		row(t, "Format:", v.Format)
		row(t, "Size:", units.FormatSize(int64(v.Size))+" provisioned, "+units.FormatSize(int64(v.Allocated))+" allocated")
		row(t, "Encrypted:", v.Encrypted)
		row(t, "Cache:", v.Cache)
		row(t, "Origin:", dash(v.Origin))
		row(t, "Snapshots:", v.Snapshots)
		row(t, "Attached to:", dash(v.AttachedTo))
	})
}
