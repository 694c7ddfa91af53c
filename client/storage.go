package client

import (
	"context"
	"io"
	"net/url"

	"github.com/finvirt/finvirt/api"
)

func projectQuery(project string) string {
	if project == "" {
		return ""
	}
	return "?project=" + url.QueryEscape(project)
}

// Storage pools.

func (c *Client) ListStoragePools(ctx context.Context) ([]api.StoragePool, error) {
	var out []api.StoragePool
	return out, c.Do(ctx, "GET", "/1.0/storage-pools", nil, &out)
}

func (c *Client) GetStoragePool(ctx context.Context, name string) (api.StoragePool, error) {
	var p api.StoragePool
	return p, c.Do(ctx, "GET", "/1.0/storage-pools/"+url.PathEscape(name), nil, &p)
}

func (c *Client) CreateStoragePool(ctx context.Context, req api.StoragePoolsPost) (api.StoragePool, error) {
	var p api.StoragePool
	return p, c.Do(ctx, "POST", "/1.0/storage-pools", req, &p)
}

func (c *Client) DeleteStoragePool(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/1.0/storage-pools/"+url.PathEscape(name), nil, nil)
}

func (c *Client) ExtendStoragePool(ctx context.Context, name string, req api.StoragePoolExtend) (api.StoragePool, error) {
	var p api.StoragePool
	return p, c.Do(ctx, "POST", "/1.0/storage-pools/"+url.PathEscape(name)+"/extend", req, &p)
}

// Volumes (project-scoped; project "" means default).

func volPath(name, sub, project string) string {
	p := "/1.0/volumes/" + url.PathEscape(name)
	if sub != "" {
		p += "/" + sub
	}
	return p + projectQuery(project)
}

func (c *Client) ListVolumes(ctx context.Context, project string) ([]api.Volume, error) {
	var out []api.Volume
	return out, c.Do(ctx, "GET", "/1.0/volumes"+projectQuery(project), nil, &out)
}

func (c *Client) GetVolume(ctx context.Context, project, name string) (api.Volume, error) {
	var v api.Volume
	return v, c.Do(ctx, "GET", volPath(name, "", project), nil, &v)
}

func (c *Client) CreateVolume(ctx context.Context, project string, req api.VolumesPost) (api.Volume, error) {
	var v api.Volume
	return v, c.Do(ctx, "POST", "/1.0/volumes"+projectQuery(project), req, &v)
}

func (c *Client) DeleteVolume(ctx context.Context, project, name string) error {
	return c.Do(ctx, "DELETE", volPath(name, "", project), nil, nil)
}

func (c *Client) ResizeVolume(ctx context.Context, project, name string, size int64) (api.Volume, error) {
	var v api.Volume
	return v, c.Do(ctx, "POST", volPath(name, "resize", project), api.VolumeResize{Size: size}, &v)
}

func (c *Client) CloneVolume(ctx context.Context, project, name string, req api.VolumeClone) (api.Volume, error) {
	var v api.Volume
	return v, c.Do(ctx, "POST", volPath(name, "clone", project), req, &v)
}

func (c *Client) SnapshotVolume(ctx context.Context, project, name, snapshot string) (api.VolumeSnapshot, error) {
	var s api.VolumeSnapshot
	return s, c.Do(ctx, "POST", volPath(name, "snapshots", project), api.VolumeSnapshotsPost{Name: snapshot}, &s)
}

func (c *Client) ListVolumeSnapshots(ctx context.Context, project, name string) ([]api.VolumeSnapshot, error) {
	var out []api.VolumeSnapshot
	return out, c.Do(ctx, "GET", volPath(name, "snapshots", project), nil, &out)
}

func (c *Client) DeleteVolumeSnapshot(ctx context.Context, project, name, snapshot string) error {
	return c.Do(ctx, "DELETE", volPath(name, "snapshots/"+url.PathEscape(snapshot), project), nil, nil)
}

func (c *Client) RestoreVolume(ctx context.Context, project, name, snapshot string) (api.Volume, error) {
	var v api.Volume
	return v, c.Do(ctx, "POST", volPath(name, "restore", project), api.VolumeRestore{Snapshot: snapshot}, &v)
}

// ExportVolume streams the volume's data (format qcow2 or raw) into w.
func (c *Client) ExportVolume(ctx context.Context, project, name, format string, w io.Writer) error {
	p := volPath(name, "export", project)
	if format != "" {
		p += sep(p) + "format=" + url.QueryEscape(format)
	}
	resp, err := c.raw(ctx, "GET", p, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return c.decode(resp, nil)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// ImportVolume uploads a disk file (raw, qcow2, VMDK, VHD/VHDX, OVA) and returns the
// operation converting it into volume name.
func (c *Client) ImportVolume(ctx context.Context, project, pool, name, filename, format string, encrypted bool, body io.Reader) (api.Operation, error) {
	q := url.Values{"name": {name}, "pool": {pool}, "filename": {filename}}
	if project != "" {
		q.Set("project", project)
	}
	if format != "" {
		q.Set("format", format)
	}
	if encrypted {
		q.Set("encrypted", "true")
	}
	var op api.Operation
	return op, c.DoBody(ctx, "POST", "/1.0/volumes/import?"+q.Encode(), body, &op)
}

func sep(p string) string {
	for _, c := range p {
		if c == '?' {
			return "&"
		}
	}
	return "?"
}
