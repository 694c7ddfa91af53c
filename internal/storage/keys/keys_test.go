package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "master.key")
	m1, err := LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o, want 600", st.Mode().Perm())
	}
	m2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m1.ID() != m2.ID() {
		t.Fatalf("reloaded key id %s != %s", m2.ID(), m1.ID())
	}
	os.Chmod(path, 0o644)
	if _, err := Load(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("world-readable key accepted: %v", err)
	}
}

func TestWrapUnwrap(t *testing.T) {
	a, _ := FromBytes(bytes.Repeat([]byte{1}, 32))
	b, _ := FromBytes(bytes.Repeat([]byte{2}, 32))
	vk := NewVolumeKey()
	w, err := a.Wrap(vk, "pool/vol1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Unwrap(w, "pool/vol1")
	if err != nil || !bytes.Equal(got, vk) {
		t.Fatalf("unwrap: %v", err)
	}
	tests := []struct {
		name    string
		m       *Master
		wrapped string
		aad     string
		want    error
	}{
		{"wrong master", b, w, "pool/vol1", ErrWrongMasterKey},
		{"other volume", a, w, "pool/vol2", ErrCorrupt},
		{"garbage", a, "xx", "pool/vol1", ErrCorrupt},
		{"tampered", a, w[:len(w)-4] + "AAA=", "pool/vol1", ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.m.Unwrap(tt.wrapped, tt.aad); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRewrap(t *testing.T) {
	a, _ := FromBytes(bytes.Repeat([]byte{1}, 32))
	b, _ := FromBytes(bytes.Repeat([]byte{2}, 32))
	c, _ := FromBytes(bytes.Repeat([]byte{3}, 32))
	vk := NewVolumeKey()
	w, _ := a.Wrap(vk, "v")
	w2, changed, err := Rewrap(a, b, w, "v")
	if err != nil || !changed {
		t.Fatalf("rewrap: %v %v", changed, err)
	}
	if got, err := b.Unwrap(w2, "v"); err != nil || !bytes.Equal(got, vk) {
		t.Fatalf("unwrap with new: %v", err)
	}
	if _, changed, err := Rewrap(a, b, w2, "v"); err != nil || changed {
		t.Fatalf("second rewrap: %v %v", changed, err)
	}
	if _, _, err := Rewrap(c, b, w, "v"); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("rewrap with unrelated keys: %v", err)
	}
}
