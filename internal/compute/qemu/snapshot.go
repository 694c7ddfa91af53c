package qemu

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/compute/qmp"
)

// Live external snapshots. The storage layer creates an empty overlay whose backing is the
// disk's current top image; QEMU adds it as node sn<n>-<disk> ("backing": null, as
// blockdev-snapshot requires) and blockdev-snapshot makes it the disk's new top, with the old
// top as its backing. blockdev-snapshot drains the disk's in-flight requests first, so the
// frozen layer is crash-consistent. The overlays are monitor-owned nodes: DetachDisk deletes
// them, newest first, before the disk's own nodes.

var overlayNodeRe = regexp.MustCompile(`^sn([0-9]+)-(.+)$`)

// SnapshotDisk implements compute.DiskSnapshotter.
func (d *Driver) SnapshotDisk(ctx context.Context, name, diskID string, overlay compute.DiskSpec) error {
	in, unlock, err := d.lockedInstance(ctx, name)
	if err != nil {
		return err
	}
	defer unlock()
	st, _, c := in.snapshot()
	if (st != compute.StateRunning && st != compute.StatePaused) || c == nil {
		return fmt.Errorf("%w: instance %q is %s; a live snapshot needs a running or paused instance (snapshot a stopped instance's volume in its pool)", compute.ErrState, name, st)
	}
	idx, err := in.diskIndex(diskID)
	if err != nil {
		return err
	}
	disk := in.spec.Disks[idx]
	if !filepath.IsAbs(overlay.Path) || overlay.Format != compute.FormatQcow2 || len(overlay.Backing) != 0 {
		return fmt.Errorf("%w: instance %q disk %s: the overlay must be one qcow2 image at an absolute path (got %q, %s, %d backing layers)", compute.ErrInvalid, name, diskID, overlay.Path, overlay.Format, len(overlay.Backing))
	}
	if (overlay.Secret != nil) != (disk.Secret != nil) {
		return fmt.Errorf("%w: instance %q disk %s: the overlay must be encrypted exactly when the disk is", compute.ErrInvalid, name, diskID)
	}
	if disk.ReadOnly {
		return fmt.Errorf("%w: instance %q disk %s is read-only: nothing to snapshot live", compute.ErrInvalid, name, diskID)
	}
	top, err := topNode(ctx, c, diskID)
	if err != nil {
		return fmt.Errorf("instance %q disk %s: %w", name, diskID, err)
	}
	overlays, err := overlayNodes(ctx, c, diskID)
	if err != nil {
		return fmt.Errorf("instance %q disk %s: %w", name, diskID, err)
	}
	n := 1
	if len(overlays) > 0 {
		n = overlays[0].n + 1
	}
	node := fmt.Sprintf("sn%d-%s", n, diskID)
	direct := disk.Cache == "" || disk.Cache == compute.CacheNone
	aio := disk.AIO
	if aio == "" {
		aio = "threads"
	}
	cache := map[string]any{"direct": direct, "no-flush": false}
	add := map[string]any{
		"driver": "qcow2", "node-name": node, "cache": cache, "backing": nil,
		"file": map[string]any{"driver": "file", "node-name": fmt.Sprintf("sf%d-%s", n, diskID), "filename": overlay.Path, "aio": aio, "cache": cache},
	}
	if disk.Secret != nil {
		// The disk's secret object is already in QEMU (added at boot or hot-plug).
		add["encrypt"] = map[string]any{"format": "luks", "key-secret": secretID(disk)}
	}
	if err := qmpDo(ctx, c, "blockdev-add", add); err != nil {
		return fmt.Errorf("instance %q disk %s: add overlay %s: %w", name, diskID, overlay.Path, err)
	}
	if err := qmpDo(ctx, c, "blockdev-snapshot", map[string]any{"node": top, "overlay": node}); err != nil {
		qmpDo(context.WithoutCancel(ctx), c, "blockdev-del", map[string]any{"node-name": node})
		return fmt.Errorf("instance %q disk %s: snapshot: %w", name, diskID, err)
	}
	// The definition follows: the next boot opens the overlay over the frozen layer (the daemon
	// normally hands a fresh chain from the pool before each boot anyway).
	disk.Backing = append([]compute.DiskLayer{{Path: disk.Path, Format: disk.Format, Encrypted: disk.Secret != nil}}, disk.Backing...)
	disk.Path = overlay.Path
	disks := append([]compute.DiskSpec(nil), in.spec.Disks...)
	disks[idx] = disk
	in.setDisks(disks)
	return in.saveSpec()
}

// topNode is the node the guest device of disk diskID reads from now.
func topNode(ctx context.Context, c *qmp.Client, diskID string) (string, error) {
	var blocks []struct {
		QDev     string `json:"qdev"`
		Inserted *struct {
			NodeName string `json:"node-name"`
		} `json:"inserted"`
	}
	if err := c.ExecuteInto(ctx, "query-block", nil, &blocks); err != nil {
		return "", err
	}
	dev := "disk-" + diskID
	for _, b := range blocks {
		if b.Inserted != nil && (b.QDev == dev || strings.HasSuffix(b.QDev, "/"+dev) || strings.Contains(b.QDev, "/"+dev+"/")) {
			return b.Inserted.NodeName, nil
		}
	}
	return "", fmt.Errorf("no guest device %s in query-block", dev)
}

type overlayNode struct {
	name string
	n    int
}

// overlayNodes lists the live-snapshot overlays of disk diskID, newest first.
func overlayNodes(ctx context.Context, c *qmp.Client, diskID string) ([]overlayNode, error) {
	var nodes []struct {
		NodeName string `json:"node-name"`
	}
	if err := c.ExecuteInto(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes); err != nil {
		return nil, err
	}
	var out []overlayNode
	for _, x := range nodes {
		m := overlayNodeRe.FindStringSubmatch(x.NodeName)
		if m == nil || m[2] != diskID {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		out = append(out, overlayNode{name: x.NodeName, n: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	return out, nil
}

var _ compute.DiskSnapshotter = (*Driver)(nil)
