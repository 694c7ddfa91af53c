package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/units"
)

// newInstanceCommands are the VM commands: top-level like Incus (launch, exec, list, stop...)
// plus 'finvirt image' and 'finvirt instance show'.
func newInstanceCommands(g *globals) []*cobra.Command {
	cmds := []*cobra.Command{newImageCmd(g), newInstanceLaunchCmd(g), newInstanceListCmd(g), newInstanceExecCmd(g), newInstanceConsoleCmd(g), newInstanceFileCmd(g), newInstanceConfigCmd(g), newInstanceMetricsCmd(g), newInstanceDeleteCmd(g), newInstanceCmd(g)}
	for _, a := range []string{"start", "stop", "restart", "pause", "resume"} {
		cmds = append(cmds, newInstanceStateCmd(g, a))
	}
	return cmds
}

func instProjectFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "project", "p", "", "project (default: default)")
}

func newInstanceLaunchCmd(g *globals) *cobra.Command {
	var project, memory, cmdline, restart string
	var vcpus int
	var env []string
	var balloon, noStart bool
	var volumes, networks []string
	cmd := &cobra.Command{
		Use:   "launch IMAGE NAME",
		Short: "Create an instance from an image and boot it (waits for the guest agent)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			mem, err := units.ParseSize(memory)
			if err != nil {
				return fmt.Errorf("--memory: %v", err)
			}
			envMap, err := parseEnvFlags(env)
			if err != nil {
				return err
			}
			start := !noStart
			req := api.InstancesPost{Name: args[1], Image: args[0], VCPUs: vcpus, Memory: mem, Balloon: balloon, Env: envMap, Command: cmdline, Restart: restart, Start: &start, Networks: networks}
			for _, v := range volumes {
				name, mp, _ := strings.Cut(v, ":")
				req.Volumes = append(req.Volumes, api.InstanceVolume{Volume: name, Mountpoint: mp})
			}
			op, err := c.CreateInstance(cmd.Context(), project, req)
			if err != nil {
				return err
			}
			if _, err := waitWithBar(cmd, c, op); err != nil {
				return err
			}
			in, err := c.GetInstance(cmd.Context(), project, args[1])
			if err != nil {
				return err
			}
			if g.output != "table" {
				return showInstance(g, in)
			}
			fmt.Fprintf(stdout, "Instance %s (%s) %s in project %s\n", in.Name, in.Image, in.Status, in.Project)
			return nil
		},
	}
	instProjectFlag(cmd, &project)
	f := cmd.Flags()
	f.IntVar(&vcpus, "vcpus", 1, "virtual CPUs")
	f.StringVar(&memory, "memory", "256MiB", "memory, e.g. 512MiB")
	f.StringArrayVar(&env, "env", nil, "workload environment KEY=VALUE (repeatable)")
	f.StringVar(&cmdline, "cmd", "", "workload the guest agent runs and supervises (a shell command line when the image has busybox)")
	f.StringVar(&restart, "restart", "never", "restart policy of the VM and its workload: never, on-failure or always")
	f.BoolVar(&balloon, "balloon", false, "add a memory balloon (then 'finvirt config set NAME limits.memory.balloon=128MiB')")
	f.BoolVar(&noStart, "no-start", false, "create only; boot later with 'finvirt start'")
	f.StringArrayVar(&volumes, "volume", nil, "attach a project volume: VOLUME or VOLUME:/mount/point (the guest mounts its ext4 there; repeatable)")
	f.StringArrayVar(&networks, "network", nil, "a NIC on this project network, with a static address (repeatable)")
	return cmd
}

func parseEnvFlags(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env %q: write KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

func newInstanceListCmd(g *globals) *cobra.Command {
	var project string
	cmd := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List a project's instances", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.ListInstances(cmd.Context(), project)
			if err != nil {
				return err
			}
			return render(stdout, g.output, list, func(t *tabwriter.Writer) {
				row(t, "NAME", "STATUS", "IMAGE", "VCPUS", "MEMORY", "PID", "RESTART", "REASON")
				for _, in := range list {
					pid := "-"
					if in.PID > 0 {
						pid = strconv.Itoa(in.PID)
					}
					row(t, in.Name, in.Status, in.Image, in.VCPUs, units.FormatSize(in.Memory), pid, in.Restart, dash(trimReason(in.StatusReason, 60)))
				}
			})
		},
	}
	instProjectFlag(cmd, &project)
	return cmd
}

func trimReason(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func newInstanceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "instance", Aliases: []string{"instances"}, Short: "Instances (VMs); the same commands also exist at top level (finvirt launch, exec, stop...)"}
	var project string
	show := &cobra.Command{
		Use: "show NAME", Aliases: []string{"info"}, Short: "Show an instance", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			in, err := c.GetInstance(cmd.Context(), project, args[0])
			if err != nil {
				return err
			}
			return showInstance(g, in)
		},
	}
	instProjectFlag(show, &project)
	cmd.AddCommand(show, newInstanceLaunchCmd(g), newInstanceListCmd(g), newInstanceExecCmd(g), newInstanceDeleteCmd(g), newInstanceConsoleCmd(g), newInstanceFileCmd(g), newInstanceConfigCmd(g), newInstanceMetricsCmd(g))
	for _, a := range []string{"start", "stop", "restart", "pause", "resume"} {
		cmd.AddCommand(newInstanceStateCmd(g, a))
	}
	return cmd
}

func showInstance(g *globals, in api.Instance) error {
	return render(stdout, g.output, in, func(t *tabwriter.Writer) {
		row(t, "Name:", in.Name)
		row(t, "Project:", in.Project)
		row(t, "Status:", in.Status)
		row(t, "Reason:", dash(in.StatusReason))
		row(t, "Image:", in.Image+" ("+in.Profile+")")
		row(t, "vCPUs:", in.VCPUs)
		row(t, "Memory:", units.FormatSize(in.Memory))
		if in.Balloon {
			target := "-"
			if in.BalloonTarget > 0 {
				target = units.FormatSize(in.BalloonTarget)
			}
			row(t, "Balloon target:", target)
		}
		row(t, "Command:", dash(in.Command))
		row(t, "Restart:", in.Restart)
		row(t, "Restarts:", in.Restarts)
		row(t, "Accelerator:", dash(in.Accel))
		row(t, "PID:", in.PID)
		row(t, "Agent ready:", in.AgentReady)
		row(t, "VM id:", in.ID)
		row(t, "Created:", in.CreatedAt.Format(time.RFC3339))
	})
}

func newInstanceStateCmd(g *globals, action string) *cobra.Command {
	var project string
	var timeout int
	var force bool
	cmd := &cobra.Command{
		Use: action + " NAME...", Short: strings.ToUpper(action[:1]) + action[1:] + " instances", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				op, err := c.SetInstanceState(cmd.Context(), project, name, api.InstanceStatePut{Action: action, Timeout: timeout, Force: force})
				if err != nil {
					return err
				}
				if _, err := waitWithBar(cmd, c, op); err != nil {
					return err
				}
				in, err := c.GetInstance(cmd.Context(), project, name)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Instance %s %s\n", name, in.Status)
			}
			return nil
		},
	}
	instProjectFlag(cmd, &project)
	if action == "stop" || action == "restart" {
		cmd.Flags().IntVar(&timeout, "timeout", 0, "seconds the guest gets to shut down before QEMU is told to quit (default 30)")
		cmd.Flags().BoolVarP(&force, "force", "f", false, "kill the VM at once")
	}
	return cmd
}

func newInstanceDeleteCmd(g *globals) *cobra.Command {
	var project string
	var force bool
	cmd := &cobra.Command{
		Use: "delete NAME...", Aliases: []string{"rm"}, Short: "Delete stopped instances (--force kills running ones); four-eyes in protected projects", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				err := c.DeleteInstance(cmd.Context(), project, name, force)
				if err != nil {
					if err := pending(err); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(stdout, "Instance %s deleted\n", name)
			}
			return nil
		},
	}
	instProjectFlag(cmd, &project)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running instance first")
	return cmd
}

func newInstanceExecCmd(g *globals) *cobra.Command {
	var project, cwd string
	var env []string
	var timeout int
	cmd := &cobra.Command{
		Use:   "exec NAME [--project P] -- COMMAND [ARG...]",
		Short: "Run a command in an instance; its exit code becomes finvirt's, stdin is passed when piped",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			envMap, err := parseEnvFlags(env)
			if err != nil {
				return err
			}
			req := api.InstanceExecPost{Command: args[1:], Env: envMap, Cwd: cwd, Timeout: timeout}
			if st, err := os.Stdin.Stat(); err == nil && st.Mode()&(os.ModeCharDevice|os.ModeDir) == 0 {
				// Piped or redirected stdin goes to the command (buffered: the exec API is
				// request/response).
				if req.Stdin, err = io.ReadAll(io.LimitReader(os.Stdin, 8<<20)); err != nil {
					return err
				}
			}
			res, err := c.Exec(cmd.Context(), project, args[0], req)
			if err != nil {
				return err
			}
			stdout.Write(res.Stdout)
			os.Stderr.Write(res.Stderr)
			if res.Truncated {
				fmt.Fprintln(os.Stderr, "finvirt: output truncated at 8 MiB per stream")
			}
			if res.ExitCode != 0 {
				return &exitError{code: res.ExitCode}
			}
			return nil
		},
	}
	instProjectFlag(cmd, &project)
	cmd.Flags().StringArrayVar(&env, "env", nil, "environment KEY=VALUE (repeatable)")
	cmd.Flags().StringVar(&cwd, "cwd", "", "working directory in the guest")
	cmd.Flags().IntVar(&timeout, "timeout", 0, "seconds before the command is killed (default 300)")
	return cmd
}

func newInstanceConsoleCmd(g *globals) *cobra.Command {
	var project string
	var showLog, follow bool
	var lines int
	cmd := &cobra.Command{
		Use: "console NAME [--show-log [--follow]]", Short: "Attach an instance's serial console (Ctrl-] detaches) or show its log", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if !showLog && !follow {
				return runConsoleAttach(cmd.Context(), c, project, args[0])
			}
			if follow {
				return c.FollowConsole(cmd.Context(), project, args[0], lines, stdout)
			}
			b, err := c.ConsoleLog(cmd.Context(), project, args[0], lines)
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
	instProjectFlag(cmd, &project)
	cmd.Flags().BoolVar(&showLog, "show-log", false, "print the console log")
	cmd.Flags().IntVar(&lines, "lines", 0, "only the last N lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the guest writes (Ctrl-C ends)")
	return cmd
}

func newInstanceFileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "file", Short: "Copy files into and out of instances"}
	var project string
	var mode string
	push := &cobra.Command{
		Use: "push LOCAL NAME/GUEST-PATH", Short: "Copy a local file (- for stdin) into an instance", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, p, err := splitInstancePath(args[1])
			if err != nil {
				return err
			}
			m, err := strconv.ParseUint(mode, 8, 32)
			if err != nil {
				return fmt.Errorf("--mode %q: give octal permissions, e.g. 0644", mode)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := openInput(args[0])
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := c.PushFile(cmd.Context(), project, name, p, uint32(m), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Pushed %s to %s:%s\n", units.FormatSize(res.Bytes), name, res.Path)
			return nil
		},
	}
	pull := &cobra.Command{
		Use: "pull NAME/GUEST-PATH LOCAL", Short: "Copy a file out of an instance (LOCAL - for stdout)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, p, err := splitInstancePath(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			return writeFileAtomic(args[1], func(w io.Writer) error {
				_, err := c.PullFile(cmd.Context(), project, name, p, w)
				return err
			})
		},
	}
	for _, c := range []*cobra.Command{push, pull} {
		instProjectFlag(c, &project)
	}
	push.Flags().StringVar(&mode, "mode", "0644", "permissions of the guest file")
	cmd.AddCommand(push, pull)
	return cmd
}

// splitTarget reads NAME/PATH (Incus style: "web/etc/motd" is /etc/motd in web).
func splitInstancePath(s string) (string, string, error) {
	name, p, ok := strings.Cut(s, "/")
	if !ok || name == "" || p == "" {
		return "", "", fmt.Errorf("%q: write NAME/PATH, e.g. web/etc/motd", s)
	}
	return name, "/" + p, nil
}

func newInstanceConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Change instance settings"}
	var project string
	set := &cobra.Command{
		Use:   "set NAME KEY=VALUE...",
		Short: "Set restart=never|on-failure|always, limits.memory.balloon=SIZE (needs --balloon at launch), limits.cpu=N or limits.memory=SIZE (stopped instances)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var patch api.InstancePatch
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("%q: write KEY=VALUE", kv)
				}
				switch k {
				case "restart":
					patch.Restart = &v
				case "limits.memory.balloon":
					n, err := units.ParseSize(v)
					if err != nil {
						return fmt.Errorf("%s: %v", k, err)
					}
					patch.BalloonTarget = &n
				case "limits.cpu":
					n, err := strconv.Atoi(v)
					if err != nil {
						return fmt.Errorf("%s=%q: give a number of vCPUs", k, v)
					}
					patch.VCPUs = &n
				case "limits.memory":
					n, err := units.ParseSize(v)
					if err != nil {
						return fmt.Errorf("%s: %v", k, err)
					}
					patch.Memory = &n
				default:
					return fmt.Errorf("unknown key %q: use restart, limits.cpu, limits.memory or limits.memory.balloon", k)
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			in, err := c.UpdateInstance(cmd.Context(), project, args[0], patch)
			if err != nil {
				return err
			}
			return showInstance(g, in)
		},
	}
	instProjectFlag(set, &project)
	cmd.AddCommand(set)
	return cmd
}

func newInstanceMetricsCmd(g *globals) *cobra.Command {
	var project string
	cmd := &cobra.Command{
		Use: "metrics NAME", Short: "Guest CPU, memory and load from the agent", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			m, err := c.InstanceMetrics(cmd.Context(), project, args[0])
			if err != nil {
				return err
			}
			num := func(k string) int64 { f, _ := m[k].(float64); return int64(f) }
			return render(stdout, g.output, m, func(t *tabwriter.Writer) {
				row(t, "Uptime:", fmt.Sprintf("%.0fs", m["uptime_sec"]))
				row(t, "CPUs:", num("cpus"))
				row(t, "Load:", fmt.Sprintf("%v %v %v", m["load1"], m["load5"], m["load15"]))
				row(t, "Memory total:", units.FormatSize(num("mem_total")))
				row(t, "Memory available:", units.FormatSize(num("mem_available")))
			})
		},
	}
	instProjectFlag(cmd, &project)
	return cmd
}
