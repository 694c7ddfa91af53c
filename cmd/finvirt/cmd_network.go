package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/network/segment"
)

// newNetworkCmd is 'finvirt network': networks, their ACLs and the segmentation report.
func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Isolated virtual networks, their ACLs and the segmentation report"}
	var project string
	cmd.PersistentFlags().StringVarP(&project, "project", "p", "", "project (default: default)")

	var req api.NetworksPost
	var peers, acls string
	create := &cobra.Command{
		Use:   "create NAME --subnet CIDR [--driver bridge|vxlan] [--gateway IP] [--dhcp] [--nat] [--acl A,B] [--vni N --local IP --peers a,b --underlay DEV]",
		Short: "Create a network (isolated from every other network unless an ACL allows traffic)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			if acls != "" {
				req.ACLs = strings.Split(acls, ",")
			}
			if req.Driver == "vxlan" || req.VXLAN != nil && req.VXLAN.VNI != 0 {
				if peers != "" {
					req.VXLAN.Peers = strings.Split(peers, ",")
				}
			} else {
				req.VXLAN = nil
			}
			n, err := c.CreateNetwork(cmd.Context(), project, req)
			if err != nil {
				return err
			}
			return showNetwork(g, n)
		},
	}
	req.VXLAN = &api.NetworkVXLAN{}
	f := create.Flags()
	f.StringVar(&req.Driver, "driver", "bridge", "bridge (one host) or vxlan (spans hosts over unicast VXLAN)")
	f.StringVar(&req.Subnet, "subnet", "", "IPv4 subnet, e.g. 10.10.0.0/24 (required)")
	f.StringVar(&req.Gateway, "gateway", "", "gateway address on the host (default: first address of the subnet)")
	f.StringVar(&req.Description, "description", "", "free text")
	f.BoolVar(&req.DHCP, "dhcp", false, "run a DHCP server handing NICs their IPAM address")
	f.StringVar(&req.DHCPRange, "dhcp-range", "", "dynamic range FIRST-LAST")
	f.BoolVar(&req.NAT, "nat", false, "masquerade the subnet towards the uplink (outbound internet)")
	f.StringVar(&req.Uplink, "uplink", "", "NAT uplink device (default: the default route's)")
	f.IntVar(&req.MTU, "mtu", 0, "bridge MTU")
	f.StringVar(&acls, "acl", "", "comma-separated ACLs of the project applied to every NIC on the network")
	f.Uint32Var(&req.VXLAN.VNI, "vni", 0, "VXLAN network identifier 1-16777215 (vxlan)")
	f.StringVar(&req.VXLAN.LocalIP, "local", "", "this host's underlay address (vxlan)")
	f.StringVar(&peers, "peers", "", "comma-separated underlay addresses of the other hosts (vxlan)")
	f.StringVar(&req.VXLAN.Underlay, "underlay", "", "underlay device (vxlan)")

	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the project's networks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ns, err := c.ListNetworks(cmd.Context(), project)
			if err != nil {
				return err
			}
			return render(stdout, g.output, ns, func(t *tabwriter.Writer) {
				row(t, "NAME", "DRIVER", "SUBNET", "GATEWAY", "DHCP", "NAT", "ACLS", "BRIDGE", "STATUS", "NICS")
				for _, n := range ns {
					row(t, n.Name, n.Driver, n.Subnet, n.Gateway, n.DHCP, n.NAT, dash(strings.Join(n.ACLs, ",")), n.Bridge, n.Status, len(n.NICs))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a network", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.GetNetwork(cmd.Context(), project, args[0])
			if err != nil {
				return err
			}
			return showNetwork(g, n)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a network no NIC or ACL rule uses (four-eyes in protected projects)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteNetwork(cmd.Context(), project, args[0]); err != nil {
				return pending(err)
			}
			fmt.Fprintf(stdout, "Network %s deleted\n", args[0])
			return nil
		},
	}
	leases := &cobra.Command{
		Use: "leases NAME", Short: "IPAM reservations and DHCP leases of a network", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ls, err := c.NetworkLeases(cmd.Context(), project, args[0])
			if err != nil {
				return err
			}
			return render(stdout, g.output, ls, func(t *tabwriter.Writer) {
				row(t, "IP", "MAC", "NIC", "INSTANCE", "TYPE", "EXPIRES", "HOSTNAME")
				for _, l := range ls {
					typ, exp := "dynamic", "-"
					if l.Static {
						typ = "static"
					}
					if !l.Expires.IsZero() {
						exp = l.Expires.Format(time.RFC3339)
					}
					row(t, l.IP, l.MAC, dash(l.NIC), dash(l.Instance), typ, exp, dash(l.Hostname))
				}
			})
		},
	}
	cmd.AddCommand(create, list, show, del, leases, newNetworkACLCmd(g, &project), newSegmentationCmd(g))
	return cmd
}

func showNetwork(g *globals, n api.Network) error {
	return render(stdout, g.output, n, func(t *tabwriter.Writer) {
		row(t, "Name:", n.Name)
		row(t, "Project:", n.Project)
		row(t, "Description:", dash(n.Description))
		row(t, "Driver:", n.Driver)
		row(t, "Subnet:", n.Subnet)
		row(t, "Gateway:", n.Gateway)
		row(t, "DHCP:", n.DHCP)
		row(t, "NAT:", n.NAT)
		if n.VXLAN != nil {
			row(t, "VXLAN:", fmt.Sprintf("vni %d local %s peers %s", n.VXLAN.VNI, n.VXLAN.LocalIP, dash(strings.Join(n.VXLAN.Peers, ","))))
		}
		row(t, "ACLs:", dash(strings.Join(n.ACLs, ", ")))
		row(t, "Bridge:", n.Bridge)
		row(t, "Status:", n.Status+" "+n.StatusError)
		row(t, "NICs:", dash(strings.Join(n.NICs, ", ")))
	})
}

func newNetworkACLCmd(g *globals, project *string) *cobra.Command {
	cmd := &cobra.Command{Use: "acl", Short: "Network ACLs: allow rules for the NICs of the networks naming them"}
	var desc string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create an empty ACL (add rules with 'acl rule add')", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.CreateNetworkACL(cmd.Context(), *project, api.NetworkACLsPost{Name: args[0], Description: desc})
			if err != nil {
				return err
			}
			return showACL(g, a)
		},
	}
	create.Flags().StringVar(&desc, "description", "", "free text")
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the project's ACLs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			as, err := c.ListNetworkACLs(cmd.Context(), *project)
			if err != nil {
				return err
			}
			return render(stdout, g.output, as, func(t *tabwriter.Writer) {
				row(t, "NAME", "RULES", "USED BY", "DESCRIPTION")
				for _, a := range as {
					row(t, a.Name, len(a.Rules), dash(strings.Join(a.UsedBy, ",")), dash(a.Description))
				}
			})
		},
	}
	show := &cobra.Command{
		Use: "show NAME", Short: "Show an ACL's rules with packet and byte counters", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.GetNetworkACL(cmd.Context(), *project, args[0])
			if err != nil {
				return err
			}
			return showACL(g, a)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete an ACL no network uses (four-eyes in protected projects)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.DeleteNetworkACL(cmd.Context(), *project, args[0]); err != nil {
				return pending(err)
			}
			fmt.Fprintf(stdout, "Network ACL %s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, show, del, newRuleCmd(g, project))
	return cmd
}

func newRuleCmd(g *globals, project *string) *cobra.Command {
	cmd := &cobra.Command{Use: "rule", Short: "Add or remove ACL rules"}
	var rule api.NetworkACLRule
	var ports, cidrs, nets, acls string
	add := &cobra.Command{
		Use:   "add ACL --direction ingress|egress --protocol tcp|udp|icmp|any [--port 8080|8000-8100] [--source-network N | --source-cidr C | --source-acl A]",
		Short: "Allow traffic: ingress from the sources to the ACL's NICs, or egress from them to the sources", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			split := func(s string) []string {
				if s == "" {
					return nil
				}
				return strings.Split(s, ",")
			}
			rule.Ports, rule.CIDRs, rule.Networks, rule.ACLs = split(ports), split(cidrs), split(nets), split(acls)
			a, err := c.AddNetworkACLRule(cmd.Context(), *project, args[0], rule)
			if err != nil {
				return err
			}
			return showACL(g, a)
		},
	}
	f := add.Flags()
	f.StringVar(&rule.ID, "id", "", "rule id (default rule-N)")
	f.StringVar(&rule.Direction, "direction", "ingress", "ingress or egress")
	f.StringVar(&rule.Protocol, "protocol", "tcp", "tcp, udp, icmp or any")
	f.StringVar(&ports, "port", "", "comma-separated ports or ranges (tcp/udp)")
	f.StringVar(&cidrs, "source-cidr", "", "comma-separated peer CIDRs (for egress: destinations)")
	f.StringVar(&nets, "source-network", "", "comma-separated peer networks (any project)")
	f.StringVar(&acls, "source-acl", "", "comma-separated ACLs whose NICs are peers")
	del := &cobra.Command{
		Use: "delete ACL ID|INDEX", Short: "Remove a rule by id or 1-based index", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.DeleteNetworkACLRule(cmd.Context(), *project, args[0], args[1])
			if err != nil {
				return err
			}
			return showACL(g, a)
		},
	}
	cmd.AddCommand(add, del)
	return cmd
}

func showACL(g *globals, a api.NetworkACL) error {
	return render(stdout, g.output, a, func(t *tabwriter.Writer) {
		row(t, "Name:", a.Name)
		row(t, "Project:", a.Project)
		row(t, "Description:", dash(a.Description))
		row(t, "Used by:", dash(strings.Join(a.UsedBy, ", ")))
		row(t, "")
		row(t, "#", "ID", "DIRECTION", "PROTOCOL", "PORTS", "PEERS", "PACKETS", "BYTES")
		for i, r := range a.Rules {
			var peers []string
			peers = append(peers, r.CIDRs...)
			for _, n := range r.Networks {
				peers = append(peers, "network:"+n)
			}
			for _, x := range r.ACLs {
				peers = append(peers, "acl:"+x)
			}
			if len(peers) == 0 {
				peers = []string{"anywhere"}
			}
			row(t, strconv.Itoa(i+1), r.ID, r.Direction, r.Protocol, dash(strings.Join(r.Ports, ",")), strings.Join(peers, ","), r.Packets, r.Bytes)
		}
	})
}

func newSegmentationCmd(g *globals) *cobra.Command {
	var ports []int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "segmentation-report [--port 22,443,8080] [-o json]",
		Short: "Probe every network with real packets and print the reachability matrix (admin, auditor)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.SegmentationReport(cmd.Context(), api.SegmentationReportPost{TCPPorts: ports, TimeoutMS: int(timeout / time.Millisecond)})
			if err != nil {
				return err
			}
			if g.output != "table" {
				return render(stdout, g.output, rep, nil)
			}
			// The text form is the library's, from the same JSON.
			b, _ := json.Marshal(rep)
			var sr segment.Report
			if err := json.Unmarshal(b, &sr); err != nil {
				return err
			}
			fmt.Fprint(stdout, sr.Text())
			return nil
		},
	}
	cmd.Flags().IntSliceVar(&ports, "port", nil, "TCP ports to probe (default 22,443,8080)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "per-probe timeout (default 2s)")
	return cmd
}
