package client

import (
	"context"
	"net/url"

	"github.com/finvirt/finvirt/api"
)

// Networks and network ACLs (project-scoped; project "" means default).

func netPath(kind, name, sub, project string) string {
	p := "/1.0/" + kind
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	if sub != "" {
		p += "/" + sub
	}
	return p + projectQuery(project)
}

func (c *Client) ListNetworks(ctx context.Context, project string) ([]api.Network, error) {
	var out []api.Network
	return out, c.Do(ctx, "GET", netPath("networks", "", "", project), nil, &out)
}

func (c *Client) GetNetwork(ctx context.Context, project, name string) (api.Network, error) {
	var n api.Network
	return n, c.Do(ctx, "GET", netPath("networks", name, "", project), nil, &n)
}

func (c *Client) CreateNetwork(ctx context.Context, project string, req api.NetworksPost) (api.Network, error) {
	var n api.Network
	return n, c.Do(ctx, "POST", netPath("networks", "", "", project), req, &n)
}

// DeleteNetwork returns a *PendingApproval in a protected project.
func (c *Client) DeleteNetwork(ctx context.Context, project, name string) error {
	return c.Do(ctx, "DELETE", netPath("networks", name, "", project), nil, nil)
}

func (c *Client) NetworkLeases(ctx context.Context, project, name string) ([]api.NetworkLease, error) {
	var out []api.NetworkLease
	return out, c.Do(ctx, "GET", netPath("networks", name, "leases", project), nil, &out)
}

func (c *Client) ListNetworkACLs(ctx context.Context, project string) ([]api.NetworkACL, error) {
	var out []api.NetworkACL
	return out, c.Do(ctx, "GET", netPath("network-acls", "", "", project), nil, &out)
}

func (c *Client) GetNetworkACL(ctx context.Context, project, name string) (api.NetworkACL, error) {
	var a api.NetworkACL
	return a, c.Do(ctx, "GET", netPath("network-acls", name, "", project), nil, &a)
}

func (c *Client) CreateNetworkACL(ctx context.Context, project string, req api.NetworkACLsPost) (api.NetworkACL, error) {
	var a api.NetworkACL
	return a, c.Do(ctx, "POST", netPath("network-acls", "", "", project), req, &a)
}

// DeleteNetworkACL returns a *PendingApproval in a protected project.
func (c *Client) DeleteNetworkACL(ctx context.Context, project, name string) error {
	return c.Do(ctx, "DELETE", netPath("network-acls", name, "", project), nil, nil)
}

func (c *Client) AddNetworkACLRule(ctx context.Context, project, acl string, rule api.NetworkACLRule) (api.NetworkACL, error) {
	var a api.NetworkACL
	return a, c.Do(ctx, "POST", netPath("network-acls", acl, "rules", project), rule, &a)
}

// DeleteNetworkACLRule removes a rule by id or 1-based index.
func (c *Client) DeleteNetworkACLRule(ctx context.Context, project, acl, rule string) (api.NetworkACL, error) {
	var a api.NetworkACL
	return a, c.Do(ctx, "DELETE", netPath("network-acls", acl, "rules/"+url.PathEscape(rule), project), nil, &a)
}

// SegmentationReport probes every network with real packets (admin or auditor).
func (c *Client) SegmentationReport(ctx context.Context, req api.SegmentationReportPost) (api.SegmentationReport, error) {
	var r api.SegmentationReport
	return r, c.Do(ctx, "POST", "/1.0/network-segmentation-report", req, &r)
}
