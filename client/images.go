package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/finvirt/finvirt/api"
)

// Host describes the hypervisor host (accelerator, CPUs, memory).
func (c *Client) Host(ctx context.Context) (api.HostInfo, error) {
	var h api.HostInfo
	return h, c.Do(ctx, "GET", "/1.0/host", nil, &h)
}

func (c *Client) ListImages(ctx context.Context) ([]api.Image, error) {
	var out []api.Image
	return out, c.Do(ctx, "GET", "/1.0/images", nil, &out)
}

func (c *Client) GetImage(ctx context.Context, name string) (api.Image, error) {
	var out api.Image
	return out, c.Do(ctx, "GET", "/1.0/images/"+url.PathEscape(name), nil, &out)
}

// BuildImage starts an image build; follow the operation with WaitOperation.
func (c *Client) BuildImage(ctx context.Context, req api.ImagesPost) (api.Operation, error) {
	var op api.Operation
	return op, c.Do(ctx, "POST", "/1.0/images", req, &op)
}

func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", "/1.0/images/"+url.PathEscape(name), nil, nil)
}

// ExportImage streams the image archive (tar) to w.
func (c *Client) ExportImage(ctx context.Context, name string, w io.Writer) (int64, error) {
	resp, err := c.stream(ctx, "GET", "/1.0/images/"+url.PathEscape(name)+"/export", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, c.decode(resp, nil)
	}
	return io.Copy(w, resp.Body)
}

// ImportImage uploads an archive written by ExportImage.
func (c *Client) ImportImage(ctx context.Context, r io.Reader) (api.Image, error) {
	var out api.Image
	resp, err := c.stream(ctx, "POST", "/1.0/images/import", r)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, c.decode(resp, &out)
}

// stream sends a raw (non-JSON) body, or none, and returns the response for the caller to
// read: image archives and guest files do not fit in memory-buffered JSON.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return c.send(req)
}
