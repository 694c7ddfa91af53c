package accel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeProbeEnv gives a probe whose "QEMU" is a script that counts its runs and prints the
// marker: this tests the cache logic around the probe, not KVM (TestProbeRealBoot does that).
func fakeProbeEnv(t *testing.T) (Options, func() int) {
	t.Helper()
	t.Setenv(EnvOverride, "")
	dir := t.TempDir()
	counter := filepath.Join(dir, "runs")
	bin := filepath.Join(dir, "qemu")
	script := "#!/bin/sh\necho run >> " + counter + "\necho 'Linux version fake'\nexec sleep 30\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(dir, "boot_id")
	os.WriteFile(boot, []byte("boot-1\n"), 0o644)
	old := bootIDFile
	bootIDFile = boot
	t.Cleanup(func() { bootIDFile = old; ResetCache() })
	runs := func() int {
		b, _ := os.ReadFile(counter)
		return strings.Count(string(b), "run")
	}
	return Options{Binary: bin, Device: "/dev/null", Kernel: kernel, Deadline: 20 * time.Second,
		CacheFile: filepath.Join(dir, "state", "accel-probe.json")}, runs
}

// TestPersistedVerdict: a second process (simulated by ResetCache) with the same inputs reuses
// the saved verdict without booting; each input that decides the verdict invalidates it.
func TestPersistedVerdict(t *testing.T) {
	o, runs := fakeProbeEnv(t)
	ctx := context.Background()
	ResetCache()
	r, err := Probe(ctx, o)
	if err != nil || r.Accel != KVM || r.Cached || runs() != 1 || r.ProbedAt.IsZero() {
		t.Fatalf("first probe: %+v %v runs=%d", r, err, runs())
	}
	if fi, err := os.Stat(o.CacheFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}
	ResetCache()
	r2, err := Probe(ctx, o)
	if err != nil || !r2.Cached || r2.Accel != KVM || runs() != 1 || !r2.ProbedAt.Equal(r.ProbedAt) {
		t.Fatalf("restart with the same inputs probed again or lost the verdict: %+v runs=%d", r2, runs())
	}

	later := time.Now().Add(time.Hour)
	changes := []struct {
		name   string
		change func()
	}{
		{"kernel rebuilt", func() { os.Chtimes(o.Kernel, later, later) }},
		{"qemu upgraded", func() { os.Chtimes(o.Binary, later, later) }},
		{"host rebooted", func() { os.WriteFile(bootIDFile, []byte("boot-2\n"), 0o644) }},
		{"other deadline", func() { o.Deadline = 19 * time.Second }},
		{"cache file corrupt", func() { os.WriteFile(o.CacheFile, []byte("{not json"), 0o600) }},
	}
	for i, c := range changes {
		c.change()
		ResetCache()
		r, err := Probe(ctx, o)
		if err != nil || r.Cached || runs() != i+2 {
			t.Fatalf("%s: verdict reused or not re-probed: %+v runs=%d", c.name, r, runs())
		}
	}
	if n := probeProcesses(); n != 0 {
		t.Fatalf("%d probe processes left", n)
	}
}

// TestForcedVerdictNotPersisted: an override never writes the cache (it proves nothing).
func TestForcedVerdictNotPersisted(t *testing.T) {
	o, runs := fakeProbeEnv(t)
	o.Override = TCG
	if r, err := Probe(context.Background(), o); err != nil || r.Accel != TCG {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := os.Stat(o.CacheFile); !os.IsNotExist(err) || runs() != 0 {
		t.Fatalf("forced verdict wrote a cache (%v) or ran the probe (%d)", err, runs())
	}
}
