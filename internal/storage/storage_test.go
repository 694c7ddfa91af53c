package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/internal/storage"
	_ "github.com/finvirt/finvirt/internal/storage/btrfs"
	_ "github.com/finvirt/finvirt/internal/storage/dir"
	"github.com/finvirt/finvirt/internal/storage/storagetest"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web-01", true}, {"a.b_c", true}, {"", false}, {"a/b", false}, {"..", false}, {".x", false},
		{"-x", false}, {"a@b", false}, {"a b", false}, {"é", false}, {strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false}, {"a\x00b", false}, {"a\\b", false},
	}
	for _, tt := range tests {
		err := storage.ValidateName("volume", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("%q: %v is not ErrInvalid", tt.name, err)
		}
	}
}

func TestValidateSize(t *testing.T) {
	for _, tt := range []struct {
		size uint64
		ok   bool
	}{{0, false}, {1, false}, {1 << 20, true}, {1<<20 + 1, false}, {64 << 40, true}, {64<<40 + 512, false}, {^uint64(0), false}} {
		if err := storage.ValidateSize("v", tt.size); (err == nil) != tt.ok {
			t.Errorf("%d: %v", tt.size, err)
		}
	}
}

func TestRegistry(t *testing.T) {
	got := storage.Drivers()
	if len(got) < 2 || got[0] != "btrfs" || got[1] != "dir" {
		t.Fatalf("drivers %v", got)
	}
	_, err := storage.Load("lvm")
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "dir") {
		t.Fatalf("unknown driver: %v", err)
	}
	_, err = storage.OpenPool(context.Background(), storage.PoolConfig{Name: "a/b", Driver: "dir"})
	if !errors.Is(err, storage.ErrInvalid) {
		t.Fatalf("bad pool name: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	err := &storage.Error{Kind: storage.ErrInUse, Object: `volume "db"`, Msg: "clones depend on it", Dependents: []string{"c1", "c2"}, Fix: "delete the dependent clones first"}
	want := `volume "db": clones depend on it (dependents: c1, c2); delete the dependent clones first`
	if err.Error() != want || !errors.Is(err, storage.ErrInUse) {
		t.Fatalf("%q", err.Error())
	}
}

func TestBlockdevNode(t *testing.T) {
	a := storage.Access{Pool: "p1", Volume: "vm disk", Cache: storage.CacheNone, Key: bytes.Repeat([]byte{7}, 32),
		Chain: []storage.Layer{
			{Path: "/pool/layers/top.qcow2", Format: storage.FormatQcow2, Encrypted: true},
			{Path: "/pool/layers/base.qcow2", Format: storage.FormatQcow2, Encrypted: true},
		}}
	var got map[string]any
	if err := json.Unmarshal([]byte(a.BlockdevJSON("drive0")), &got); err != nil {
		t.Fatal(err)
	}
	if got["node-name"] != "drive0" || got["driver"] != "qcow2" {
		t.Fatalf("top node %v", got)
	}
	enc := got["encrypt"].(map[string]any)
	if enc["key-secret"] != "sec-p1-vm_disk" || enc["format"] != "luks" {
		t.Fatalf("encrypt %v", enc)
	}
	cache := got["cache"].(map[string]any)
	if cache["direct"] != true || cache["no-flush"] != false {
		t.Fatalf("cache %v", cache)
	}
	back := got["backing"].(map[string]any)
	if back["read-only"] != true || back["backing"] != nil || back["encrypt"].(map[string]any)["key-secret"] != "sec-p1-vm_disk" {
		t.Fatalf("backing %v", back)
	}
	if back["file"].(map[string]any)["filename"] != "/pool/layers/base.qcow2" {
		t.Fatalf("backing file %v", back["file"])
	}
	sec := a.SecretObject()
	if sec["qom-type"] != "secret" || sec["id"] != a.SecretID() || sec["format"] != "base64" {
		t.Fatalf("secret %v", sec)
	}
	if args := a.BlockdevArgs("drive0"); args[0] != "-blockdev" || !strings.HasPrefix(args[1], "{") {
		t.Fatalf("args %v", args)
	}
	for _, tt := range []struct {
		p      storage.CachePolicy
		direct bool
		wc     string
	}{{storage.CacheNone, true, "on"}, {storage.CacheWritethrough, false, "off"}, {storage.CacheWriteback, false, "on"}} {
		if tt.p.CacheOptions()["direct"] != tt.direct || tt.p.DeviceWriteCache() != tt.wc {
			t.Errorf("%s: %v %s", tt.p, tt.p.CacheOptions(), tt.p.DeviceWriteCache())
		}
	}
}

// TestQEMUAcceptsBlockdev starts a real QEMU (no guest, -M none) with the -blockdev and
// -object arguments of an encrypted clone's chain, and checks it opened every node.
func TestQEMUAcceptsBlockdev(t *testing.T) {
	storagetest.RequireTools(t, "qemu-system-x86_64", "qemu-img")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := t.TempDir()
	p, err := storage.CreatePool(ctx, storage.PoolConfig{Name: "q", Driver: "dir", Path: filepath.Join(root, "p"), MasterKeyFile: filepath.Join(root, "k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateVolume(ctx, "base", 64<<20, storage.VolumeOpts{Encrypted: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CloneVolume(ctx, "base", "clone"); err != nil {
		t.Fatal(err)
	}
	a, err := p.Access(ctx, "clone")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Chain) != 2 {
		t.Fatalf("clone chain %v", a.Chain)
	}
	args := []string{"-M", "none", "-nodefaults", "-display", "none", "-monitor", "stdio", "-object", a.SecretObjectArg()}
	args = append(args, a.BlockdevArgs("drive0")...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdin = strings.NewReader("info block -n\nquit\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	for _, want := range []string{"drive0", "drive0-b1", "encrypted"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("info block lacks %q:\n%s", want, out)
		}
	}
}
