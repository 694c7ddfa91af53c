package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/finvirt/finvirt/api"
)

func instancePath(project, name, sub string, q url.Values) string {
	p := "/1.0/instances"
	if name != "" {
		p += "/" + url.PathEscape(name) + sub
	}
	if q == nil {
		q = url.Values{}
	}
	if project != "" {
		q.Set("project", project)
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func (c *Client) ListInstances(ctx context.Context, project string) ([]api.Instance, error) {
	var out []api.Instance
	return out, c.Do(ctx, "GET", instancePath(project, "", "", nil), nil, &out)
}

func (c *Client) GetInstance(ctx context.Context, project, name string) (api.Instance, error) {
	var out api.Instance
	return out, c.Do(ctx, "GET", instancePath(project, name, "", nil), nil, &out)
}

// CreateInstance creates (and by default boots) an instance; the operation ends when the
// guest agent answers.
func (c *Client) CreateInstance(ctx context.Context, project string, req api.InstancesPost) (api.Operation, error) {
	var op api.Operation
	return op, c.Do(ctx, "POST", instancePath(project, "", "", nil), req, &op)
}

func (c *Client) UpdateInstance(ctx context.Context, project, name string, patch api.InstancePatch) (api.Instance, error) {
	var out api.Instance
	return out, c.Do(ctx, "PATCH", instancePath(project, name, "", nil), patch, &out)
}

// DeleteInstance deletes a stopped instance (force: kill a running one). In a protected
// project the answer is *PendingApproval.
func (c *Client) DeleteInstance(ctx context.Context, project, name string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	return c.Do(ctx, "DELETE", instancePath(project, name, "", q), nil, nil)
}

// SetInstanceState starts, stops, restarts, pauses or resumes an instance (an operation).
func (c *Client) SetInstanceState(ctx context.Context, project, name string, req api.InstanceStatePut) (api.Operation, error) {
	var op api.Operation
	return op, c.Do(ctx, "POST", instancePath(project, name, "/state", nil), req, &op)
}

// Exec runs a command in the guest and returns its exit code and output.
func (c *Client) Exec(ctx context.Context, project, name string, req api.InstanceExecPost) (api.InstanceExecResult, error) {
	var out api.InstanceExecResult
	return out, c.Do(ctx, "POST", instancePath(project, name, "/exec", nil), req, &out)
}

// PushFile writes r to guestPath in the guest (mode 0 = 0644).
func (c *Client) PushFile(ctx context.Context, project, name, guestPath string, mode uint32, r io.Reader) (api.InstanceFile, error) {
	q := url.Values{"path": {guestPath}}
	if mode != 0 {
		q.Set("mode", fmt.Sprintf("%o", mode))
	}
	var out api.InstanceFile
	resp, err := c.stream(ctx, "PUT", instancePath(project, name, "/files", q), r)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, c.decode(resp, &out)
}

// PullFile copies a guest file to w.
func (c *Client) PullFile(ctx context.Context, project, name, guestPath string, w io.Writer) (int64, error) {
	resp, err := c.stream(ctx, "GET", instancePath(project, name, "/files", url.Values{"path": {guestPath}}), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, c.decode(resp, nil)
	}
	return io.Copy(w, resp.Body)
}

// ConsoleLog returns the serial console log (the last lines lines when lines > 0).
func (c *Client) ConsoleLog(ctx context.Context, project, name string, lines int) ([]byte, error) {
	q := url.Values{}
	if lines > 0 {
		q.Set("lines", fmt.Sprint(lines))
	}
	var out []byte
	return out, c.Do(ctx, "GET", instancePath(project, name, "/console", q), nil, &out)
}

// InstanceMetrics returns the guest agent's metrics as decoded JSON.
func (c *Client) InstanceMetrics(ctx context.Context, project, name string) (map[string]any, error) {
	var out map[string]any
	return out, c.Do(ctx, "GET", instancePath(project, name, "/metrics", nil), nil, &out)
}

// FollowConsole writes the console log (the last lines lines when lines > 0) to w and then
// what the guest prints, until ctx ends or the instance is deleted.
func (c *Client) FollowConsole(ctx context.Context, project, name string, lines int, w io.Writer) error {
	q := url.Values{"follow": {"true"}}
	if lines > 0 {
		q.Set("lines", fmt.Sprint(lines))
	}
	resp, err := c.stream(ctx, "GET", instancePath(project, name, "/console", q), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.decode(resp, nil)
	}
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// AttachInstanceVolume attaches a project volume to an instance: hot-plugged into a running
// full instance; an appliance must be stopped (the disk appears at its next boot).
func (c *Client) AttachInstanceVolume(ctx context.Context, project, name string, req api.InstanceVolume) (api.Instance, error) {
	var out api.Instance
	return out, c.Do(ctx, "POST", instancePath(project, name, "/volumes", nil), req, &out)
}

// DetachInstanceVolume detaches a volume from an instance (appliances: while stopped).
func (c *Client) DetachInstanceVolume(ctx context.Context, project, name, volume string) (api.Instance, error) {
	var out api.Instance
	return out, c.Do(ctx, "DELETE", instancePath(project, name, "/volumes/"+url.PathEscape(volume), nil), nil, &out)
}
