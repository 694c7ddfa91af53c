package diskimage_test

import (
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
	"github.com/finvirt/finvirt/internal/storage/diskimage"
)

type fixture struct {
	name, format, opts, file string
}

var formats = []fixture{
	{"qcow2", "qcow2", "", "d.qcow2"},
	{"vmdk monolithicSparse", "vmdk", "subformat=monolithicSparse", "sparse.vmdk"},
	{"vmdk streamOptimized", "vmdk", "subformat=streamOptimized", "stream.vmdk"},
	{"vhd dynamic", "vpc", "", "dyn.vhd"},
	{"vhd fixed", "vpc", "subformat=fixed", "fixed.vhd"},
	{"vhdx", "vhdx", "", "d.vhdx"},
}

func TestProbeFormats(t *testing.T) {
	requireQemu(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := rawFixture(t, dir, "src.raw", 0x11)
	img, err := diskimage.Probe(ctx, raw, "")
	if err != nil || img.Format != "raw" || img.VirtualSize != fixtureSize {
		t.Fatalf("raw: %+v %v", img, err)
	}
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			p := convertFixture(t, raw, f.format, f.opts, dir, f.file)
			img, err := diskimage.Probe(ctx, p, "")
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != f.format {
				t.Fatalf("format %q, want %q", img.Format, f.format)
			}
			// VHD rounds to its CHS geometry; the others keep the exact size.
			if img.VirtualSize < fixtureSize || img.VirtualSize > fixtureSize+(1<<20) {
				t.Fatalf("virtual size %d", img.VirtualSize)
			}
			if _, err := diskimage.Probe(ctx, p, f.format); err != nil {
				t.Fatalf("with the right claimed format: %v", err)
			}
			_, err = diskimage.Probe(ctx, p, "raw")
			wantErr(t, err, storage.ErrInvalid, "declared raw")
		})
	}
}

func wantErr(t *testing.T, err, kind error, substr string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("got %v, want %v", err, kind)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not say %q", err, substr)
	}
}

func TestProbeRejects(t *testing.T) {
	requireQemu(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := rawFixture(t, dir, "src.raw", 0x11)
	qcow := convertFixture(t, raw, "qcow2", "", dir, "good.qcow2")
	sparse := convertFixture(t, raw, "vmdk", "subformat=monolithicSparse", dir, "good.vmdk")
	vhd := convertFixture(t, raw, "vpc", "", dir, "good.vhd")
	vhdx := convertFixture(t, raw, "vhdx", "", dir, "good.vhdx")

	lying := filepath.Join(dir, "lying.vmdk")
	b, _ := os.ReadFile(raw)
	os.WriteFile(lying, b, 0o600)
	lyingQcow := filepath.Join(dir, "lying.raw")
	b, _ = os.ReadFile(qcow)
	os.WriteFile(lyingQcow, b, 0o600)

	overlay := filepath.Join(dir, "overlay.qcow2")
	sh(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", qcow, "-F", "qcow2", overlay)
	flat := convertFixture(t, raw, "vmdk", "subformat=monolithicFlat", dir, "flat.vmdk")

	gz := filepath.Join(dir, "disk.img.gz")
	gf, _ := os.Create(gz)
	zw := gzip.NewWriter(gf)
	zw.Write(make([]byte, 4096))
	zw.Close()
	gf.Close()

	odd := filepath.Join(dir, "odd.img")
	os.WriteFile(odd, make([]byte, 1000), 0o600)
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o600)
	header := filepath.Join(dir, "header.qcow2")
	os.WriteFile(header, b[:512], 0o600)

	tests := []struct {
		name, path string
		want       error
		substr     string
	}{
		{"raw named vmdk", lying, storage.ErrInvalid, "named like a vmdk image but its content is raw"},
		{"qcow2 named raw", lyingQcow, storage.ErrInvalid, "content is qcow2"},
		{"qcow2 truncated", truncateFile(t, qcow, filepath.Join(dir, "t.qcow2"), 0.6), storage.ErrInvalid, "qcow2"},
		{"qcow2 header only", header, storage.ErrInvalid, "truncated"},
		{"vmdk truncated", truncateFile(t, sparse, filepath.Join(dir, "t.vmdk"), 0.6), storage.ErrInvalid, "vmdk"},
		{"vhd truncated", truncateFile(t, vhd, filepath.Join(dir, "t.vhd"), 0.6), storage.ErrInvalid, "truncated"},
		{"vhdx truncated", truncateFile(t, vhdx, filepath.Join(dir, "t.vhdx"), 0.3), storage.ErrInvalid, "vhdx"},
		{"qcow2 with backing file", overlay, storage.ErrUnsupported, "backing file"},
		{"vmdk descriptor", flat, storage.ErrUnsupported, "descriptor"},
		{"gzip", gz, storage.ErrUnsupported, "gzip"},
		{"raw not sector multiple", odd, storage.ErrInvalid, "multiple of 512"},
		{"empty", empty, storage.ErrInvalid, "empty"},
		{"missing", filepath.Join(dir, "none.img"), storage.ErrNotFound, "does not exist"},
		{"directory", dir, storage.ErrInvalid, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := diskimage.Probe(ctx, tt.path, "")
			wantErr(t, err, tt.want, tt.substr)
		})
	}
}

func TestDetectFormat(t *testing.T) {
	vhdTail := make([]byte, 512)
	copy(vhdTail, "conectix")
	tests := []struct {
		name       string
		head, tail []byte
		want       string
	}{
		{"qcow2", []byte("QFI\xfb\x00\x00\x00\x03"), nil, "qcow2"},
		{"vmdk", []byte("KDMV\x01\x00\x00\x00"), nil, "vmdk"},
		{"vhdx", []byte("vhdxfile"), nil, "vhdx"},
		{"vhd dynamic", []byte("conectix"), nil, "vpc"},
		{"vhd fixed", make([]byte, 1024), vhdTail, "vpc"},
		{"luks", []byte("LUKS\xba\xbe\x00\x01"), nil, "luks"},
		{"descriptor", []byte("# Disk DescriptorFile\n"), nil, "vmdk-descriptor"},
		{"zeros", make([]byte, 1024), make([]byte, 512), "raw"},
		{"short", []byte("Q"), nil, "raw"},
	}
	for _, tt := range tests {
		if got := diskimage.DetectFormat(tt.head, tt.tail); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}
