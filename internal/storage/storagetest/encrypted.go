package storagetest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/internal/storage"
)

func runQemuIO(t testing.TB, args []string) (string, error) {
	out, err := exec.CommandContext(Ctx(t), "qemu-io", args...).CombinedOutput()
	if err == nil && strings.Contains(string(out), "failed") {
		err = errors.New("qemu-io reported a failure")
	}
	return string(out), err
}

var marker = []byte("FINVIRT-SECRET-LEDGER-MARKER-7c1e")

// writeMarker writes marker repeated over 256 KiB at offset off, via qemu-io -s.
func writeMarker(t *testing.T, p storage.Pool, vol, off string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "marker")
	os.WriteFile(src, bytes.Repeat(marker, 256*1024/len(marker)+1)[:256*1024], 0o600)
	MustQemuIO(t, p, vol, "write -s "+src+" "+off+" 256k")
}

// hostFiles lists every file of the layers of a volume.
func hostFiles(t *testing.T, p storage.Pool, vol string) []string {
	a := toolAccess(t, p, vol)
	var out []string
	for _, l := range a.Chain {
		if !l.Encrypted {
			t.Fatalf("%s: layer %s of an encrypted volume is not encrypted", vol, l.Path)
		}
		out = append(out, l.Path)
	}
	return out
}

func wantHidden(t *testing.T, p storage.Pool, vol string) {
	t.Helper()
	for _, f := range hostFiles(t, p, vol) {
		if FileContains(t, f, marker) {
			t.Fatalf("%s: marker found in plaintext in host file %s", vol, f)
		}
	}
	raw := Export(t, p, vol, storage.FormatRaw)
	if !FileContains(t, raw, marker) {
		t.Fatalf("%s: marker does not read back through the decrypted volume", vol)
	}
}

func testEncrypted(t *testing.T, p storage.Pool) {
	ctx := Ctx(t)
	v := mustCreate(t, p, "sec", 64*MiB, storage.VolumeOpts{Encrypted: true})
	if !v.Encrypted {
		t.Fatal("volume not reported encrypted")
	}
	a := toolAccess(t, p, "sec")
	if len(a.Key) != 32 || a.SecretObject()["id"] != a.SecretID() {
		t.Fatalf("access key %d bytes, secret %v", len(a.Key), a.SecretObject())
	}
	// Without the secret the image does not open.
	noKey := a
	noKey.Key = nil
	if out, err := runQemuIO(t, append([]string{"-c", "read 0 4k"}, noKey.QemuIOArgs()...)); err == nil {
		t.Fatalf("encrypted volume opened without its key:\n%s", out)
	}
	writeMarker(t, p, "sec", "1M")
	wantHidden(t, p, "sec")

	if _, err := p.CreateSnapshot(ctx, "sec", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CloneVolume(ctx, "sec@s1", "secclone"); err != nil {
		t.Fatal(err)
	}
	c, _ := p.GetVolume(ctx, "secclone")
	if !c.Encrypted {
		t.Fatal("clone of an encrypted volume is not encrypted")
	}
	writeMarker(t, p, "secclone", "8M")
	wantHidden(t, p, "secclone")
	writeMarker(t, p, "sec", "16M")
	if err := p.RestoreSnapshot(ctx, "sec", "s1"); err != nil {
		t.Fatal(err)
	}
	wantHidden(t, p, "sec")

	// Resizing keeps the volume encrypted and readable.
	if err := p.ResizeVolume(ctx, "sec", 96*MiB); err != nil {
		t.Fatal(err)
	}
	writeMarker(t, p, "sec", "90M")
	wantHidden(t, p, "sec")

	// An import with Encrypted set encrypts the plaintext source.
	src := filepath.Join(t.TempDir(), "plain.raw")
	plain := make([]byte, 4*MiB)
	copy(plain[MiB:], bytes.Repeat(marker, 1000))
	os.WriteFile(src, plain, 0o600)
	if _, err := p.ImportVolume(ctx, src, "secimp", storage.ImportOpts{VolumeOpts: storage.VolumeOpts{Encrypted: true}}); err != nil {
		t.Fatal(err)
	}
	wantHidden(t, p, "secimp")

	// Another master key cannot open the volumes of this pool.
	cfg := p.Config()
	cfg.MasterKeyFile = filepath.Join(t.TempDir(), "other.key")
	d, err := storage.Load(cfg.Driver)
	if err != nil {
		t.Fatal(err)
	}
	other, err := d.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Access(ctx, "sec")
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("access with the wrong master key: %v, want a master key error", err)
	}
	WantErr(t, "wrong master key", err, storage.ErrInvalid)
}

func testKeyRotation(t *testing.T, p storage.Pool) {
	kr, ok := p.(storage.KeyRotator)
	if !ok {
		t.Skipf("%s pools do not rotate master keys", p.Driver())
	}
	ctx := Ctx(t)
	mustCreate(t, p, "k", 64*MiB, storage.VolumeOpts{Encrypted: true})
	mustCreate(t, p, "plain", 64*MiB, storage.VolumeOpts{})
	writeMarker(t, p, "k", "0")
	if _, err := p.CreateSnapshot(ctx, "k", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CloneVolume(ctx, "k@s", "kc"); err != nil {
		t.Fatal(err)
	}
	MustQemuIO(t, p, "k", "write -P 0x77 0 64k")
	oldCfg := p.Config()
	newKey := filepath.Join(t.TempDir(), "rotated.key")
	n, err := kr.RotateMasterKey(ctx, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("rotated %d keys, want at least the volume and its clone", n)
	}
	if p.Config().MasterKeyFile != newKey {
		t.Fatalf("pool still uses %s", p.Config().MasterKeyFile)
	}
	// Idempotent: a second run finds nothing to do.
	if n, err := kr.RotateMasterKey(ctx, newKey); err != nil || n != 0 {
		t.Fatalf("second rotation: %d, %v", n, err)
	}
	WantPattern(t, p, "k", "0x77", "0", "64k")
	wantHidden(t, p, "kc")
	if err := p.RestoreSnapshot(ctx, "k", "s"); err != nil {
		t.Fatal(err)
	}
	wantHidden(t, p, "k")
	// The old master key no longer opens anything.
	d, _ := storage.Load(oldCfg.Driver)
	old, err := d.Open(ctx, oldCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Access(ctx, "k"); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("old master key still opens the volume: %v", err)
	}
}
