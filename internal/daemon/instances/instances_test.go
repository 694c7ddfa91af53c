package instances_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/image"
)

// TestInstanceLifecycle drives one real appliance (QEMU under the probed accelerator, the
// Debian kernel, the real agent) through the API: host, image build, launch, exec, files,
// console, metrics, pause/resume, graceful stop, start, delete; and the bad-input table on
// the same daemon, checking that nothing is left behind.
func TestInstanceLifecycle(t *testing.T) {
	needVM(t)
	sd := stateDir(t)
	td := start(t, sd)
	c := td.Local
	ctx := ctxT(t, 5*time.Minute)
	cleanupInstances(t, c, "default")

	h, err := c.Host(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Accel != "kvm" && h.Accel != "tcg" || h.CPUs < 1 || h.MemoryBytes <= 0 || h.KernelVersion == "" {
		t.Fatalf("host: %+v", h)
	}
	if h.Accel == "tcg" && h.AccelWarning == "" {
		t.Fatalf("TCG without a warning: %+v", h)
	}

	im := buildImage(t, c, "busy")
	if im.Kind != api.ImageAppliance || !contains(im.Files, "/bin/busybox") {
		t.Fatalf("image: %+v", im)
	}
	t0 := time.Now()
	in := launch(t, c, "", api.InstancesPost{Name: "vm1", Image: "busy", Balloon: true, Command: "echo workload-started; sleep 3600", Env: map[string]string{"GREETING": "hello"}})
	t.Logf("launch to agent ready through the API: %s", time.Since(t0).Round(time.Millisecond))

	t.Run("exec guest kernel", func(t *testing.T) {
		k, _ := image.FindKernel(image.KernelDir())
		res := execIn(t, c, "", "vm1", "cat", "/proc/version")
		host, _ := os.ReadFile("/proc/version")
		if res.ExitCode != 0 || !strings.Contains(string(res.Stdout), k.Version) || string(res.Stdout) == string(host) {
			t.Fatalf("guest /proc/version = %d %q; want the guest kernel %s (host: %q)", res.ExitCode, res.Stdout, k.Version, host)
		}
		if res := execIn(t, c, "", "vm1", "hostname"); strings.TrimSpace(string(res.Stdout)) != "vm1" {
			t.Fatalf("hostname = %q", res.Stdout)
		}
	})
	t.Run("exec exit codes, stdin, env", func(t *testing.T) {
		if res := execIn(t, c, "", "vm1", "sh", "-c", "echo oops >&2; exit 7"); res.ExitCode != 7 || string(res.Stderr) != "oops\n" {
			t.Fatalf("exit 7: %+v", res)
		}
		res, err := c.Exec(ctx, "", "vm1", api.InstanceExecPost{Command: []string{"sh", "-c", "tr a-z A-Z; echo $X"}, Stdin: []byte("piped\n"), Env: map[string]string{"X": "env-ok"}})
		if err != nil || res.ExitCode != 0 || string(res.Stdout) != "PIPED\nenv-ok\n" {
			t.Fatalf("stdin/env: %+v %v", res, err)
		}
		_, err = c.Exec(ctx, "", "vm1", api.InstanceExecPost{Command: []string{"/no/such/program"}})
		wantStatus(t, err, 400, "/no/such/program")
		_, err = c.Exec(ctx, "", "vm1", api.InstanceExecPost{Command: []string{}})
		wantStatus(t, err, 400, "command is empty")
	})
	t.Run("workload runs with the env", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			log, err := c.ConsoleLog(ctx, "", "vm1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(log, []byte("workload-started")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("workload output not on the console:\n%s", log)
			}
			time.Sleep(300 * time.Millisecond)
		}
		if res := execIn(t, c, "", "vm1", "sh", "-c", "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c GREETING=hello"); res.ExitCode != 0 {
			t.Fatalf("workload env not found: %+v", res)
		}
		log, _ := c.ConsoleLog(ctx, "", "vm1", 3)
		if n := bytes.Count(log, []byte("\n")); n > 3 {
			t.Fatalf("lines=3 returned %d lines", n)
		}
	})
	t.Run("console follow", func(t *testing.T) {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(c.FollowConsole(fctx, "", "vm1", 1, pw)) }()
		found := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "follow-marker-42") {
					found <- true
					return
				}
			}
			found <- false
		}()
		time.Sleep(500 * time.Millisecond) // the stream is open before the guest writes
		execIn(t, c, "", "vm1", "sh", "-c", "echo follow-marker-42 > /dev/console")
		if !<-found {
			t.Fatal("the followed console did not show what the guest wrote")
		}
		cancel()
	})
	t.Run("files push and pull", func(t *testing.T) {
		data := bytes.Repeat([]byte("ledger\x00\xff"), 100_000)
		f, err := c.PushFile(ctx, "", "vm1", "/tmp/blob", 0o600, bytes.NewReader(data))
		if err != nil || f.Bytes != int64(len(data)) {
			t.Fatalf("push: %+v %v", f, err)
		}
		var back bytes.Buffer
		if _, err := c.PullFile(ctx, "", "vm1", "/tmp/blob", &back); err != nil || !bytes.Equal(back.Bytes(), data) {
			t.Fatalf("pull: %d bytes, %v", back.Len(), err)
		}
		if res := execIn(t, c, "", "vm1", "stat", "-c", "%a %s", "/tmp/blob"); strings.TrimSpace(string(res.Stdout)) != "600 800000" {
			t.Fatalf("stat = %q", res.Stdout)
		}
		_, err = c.PullFile(ctx, "", "vm1", "/no/such/file", &back)
		wantStatus(t, err, 404, "/no/such/file")
		_, err = c.PushFile(ctx, "", "vm1", "relative/path", 0, strings.NewReader("x"))
		wantStatus(t, err, 400, "absolute")
	})
	t.Run("metrics", func(t *testing.T) {
		m, err := c.InstanceMetrics(ctx, "", "vm1")
		if err != nil || m["mem_total"] == nil || m["mem_total"].(float64) <= 0 {
			t.Fatalf("metrics: %v %v", m, err)
		}
	})
	t.Run("balloon", func(t *testing.T) {
		before, _ := c.InstanceMetrics(ctx, "", "vm1")
		big := int64(1 << 30)
		_, err := c.UpdateInstance(ctx, "", "vm1", api.InstancePatch{BalloonTarget: &big})
		wantStatus(t, err, 400, "balloon target")
		target := int64(128 << 20)
		if in, err := c.UpdateInstance(ctx, "", "vm1", api.InstancePatch{BalloonTarget: &target}); err != nil || in.BalloonTarget != target {
			t.Fatalf("set balloon: %+v %v", in, err)
		}
		// The guest's balloon driver gives the pages back: MemTotal shrinks by about 64 MiB.
		deadline := time.Now().Add(30 * time.Second)
		for {
			m, err := c.InstanceMetrics(ctx, "", "vm1")
			if err == nil && before["mem_total"].(float64)-m["mem_total"].(float64) > 40<<20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("guest MemTotal did not shrink: before %v, now %v (%v)", before["mem_total"], m["mem_total"], err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	t.Run("pause resume", func(t *testing.T) {
		state(t, c, "", "vm1", "pause")
		if in, _ := c.GetInstance(ctx, "", "vm1"); in.Status != api.InstancePaused {
			t.Fatalf("after pause: %+v", in)
		}
		_, err := c.Exec(ctx, "", "vm1", api.InstanceExecPost{Command: []string{"true"}})
		wantStatus(t, err, 409, "paused")
		state(t, c, "", "vm1", "resume")
		if res := execIn(t, c, "", "vm1", "true"); res.ExitCode != 0 {
			t.Fatal(res)
		}
	})
	t.Run("image in use cannot be deleted", func(t *testing.T) {
		wantStatus(t, c.DeleteImage(ctx, "busy"), 409, "default/vm1")
	})
	t.Run("running instance needs force to delete", func(t *testing.T) {
		wantStatus(t, c.DeleteInstance(ctx, "", "vm1", false), 409, "stop it first")
	})
	t.Run("graceful stop, exec refused, start again", func(t *testing.T) {
		state(t, c, "", "vm1", "stop")
		in, _ := c.GetInstance(ctx, "", "vm1")
		if in.Status != api.InstanceStopped || !strings.Contains(in.StatusReason, "agent") || len(qemuPids(sd)) != 0 {
			t.Fatalf("after stop: %+v, QEMUs %v", in, qemuPids(sd))
		}
		_, err := c.Exec(ctx, "", "vm1", api.InstanceExecPost{Command: []string{"true"}})
		wantStatus(t, err, 409, "start it first")
		_, err = c.SetInstanceState(ctx, "", "vm1", api.InstanceStatePut{Action: "pause"})
		wantStatus(t, err, 409, "stopped")
		state(t, c, "", "vm1", "start")
		if res := execIn(t, c, "", "vm1", "true"); res.ExitCode != 0 {
			t.Fatal(res)
		}
		state(t, c, "", "vm1", "stop")
	})
	t.Run("delete", func(t *testing.T) {
		if err := c.DeleteInstance(ctx, "", "vm1", false); err != nil {
			t.Fatal(err)
		}
		_, err := c.GetInstance(ctx, "", "vm1")
		wantStatus(t, err, 404, "vm1")
		p, _ := c.GetProject(ctx, "default")
		if p.Usage != (api.ProjectUsage{}) {
			t.Fatalf("usage after delete: %+v", p.Usage)
		}
		if ents, _ := os.ReadDir(filepath.Join(sd, "instances")); len(ents) != 0 {
			t.Fatalf("driver dirs left: %v", ents)
		}
		if ents, _ := os.ReadDir(filepath.Join(sd, "instance-files")); len(ents) != 0 {
			t.Fatalf("boot files left: %v", ents)
		}
		recs, _ := c.AuditList(ctx, "", 0)
		seen := map[string]bool{}
		for _, r := range recs {
			seen[r.Action] = true
		}
		for _, a := range []string{"image.build", "instance.create", "instance.state", "instance.exec", "instance.file-push", "instance.delete"} {
			if !seen[a] {
				t.Errorf("no audit record %s", a)
			}
		}
	})
	_ = in
	t.Run("bad input", func(t *testing.T) { badInput(t, c, sd) })
	t.Run("image export, delete, import", func(t *testing.T) {
		var tarball bytes.Buffer
		if _, err := c.ExportImage(ctx, "busy", &tarball); err != nil {
			t.Fatal(err)
		}
		_, err := c.ImportImage(ctx, bytes.NewReader(tarball.Bytes()))
		wantStatus(t, err, 409, "already exists")
		if err := c.DeleteImage(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, c.DeleteImage(ctx, "busy"), 404, "busy")
		// A truncated archive is refused and leaves nothing.
		_, err = c.ImportImage(ctx, bytes.NewReader(tarball.Bytes()[:tarball.Len()/2]))
		wantStatus(t, err, 400, "import")
		if ims, _ := c.ListImages(ctx); len(ims) != 0 {
			t.Fatalf("truncated import left %+v", ims)
		}
		back, err := c.ImportImage(ctx, bytes.NewReader(tarball.Bytes()))
		if err != nil || back.ID != im.ID || back.Name != "busy" {
			t.Fatalf("import: %+v %v (want id %s)", back, err, im.ID)
		}
		if err := c.DeleteImage(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
	})
}

// badInput: every refusal is a precise 4xx that names the object, and changes nothing.
func badInput(t *testing.T, c *client.Client, sd string) {
	ctx := ctxT(t, 3*time.Minute)
	// A stopped instance for the collision and exec rows (created, never booted).
	no := false
	op, err := c.CreateInstance(ctx, "", api.InstancesPost{Name: "parked", Image: "busy", VCPUs: 1, Memory: 128 << 20, Start: &no})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, op.ID, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteInstance(context.Background(), "", "parked", true) })
	before, _ := c.GetProject(ctx, "default")
	ok := func(f func(*api.InstancesPost)) api.InstancesPost {
		r := api.InstancesPost{Name: "fresh", Image: "busy", VCPUs: 1, Memory: 128 << 20}
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name   string
		req    api.InstancesPost
		status int
		msg    string
	}{
		{"unknown image", ok(func(r *api.InstancesPost) { r.Image = "nosuch" }), 404, "image nosuch not found"},
		{"no image", ok(func(r *api.InstancesPost) { r.Image = "" }), 400, "image is empty"},
		{"vcpus 0", ok(func(r *api.InstancesPost) { r.VCPUs = 0 }), 400, "vcpus 0 is out of range"},
		{"vcpus 1000", ok(func(r *api.InstancesPost) { r.VCPUs = 1000 }), 400, "vcpus 1000 is out of range"},
		{"memory 1MiB", ok(func(r *api.InstancesPost) { r.Memory = 1 << 20 }), 400, "memory 1MiB is out of range"},
		{"memory 10TiB", ok(func(r *api.InstancesPost) { r.Memory = 10 << 40 }), 400, "memory 10240GiB is out of range"},
		{"memory not MiB", ok(func(r *api.InstancesPost) { r.Memory = 128<<20 + 1 }), 400, "whole number of MiB"},
		{"bad name", ok(func(r *api.InstancesPost) { r.Name = "Bad_Name" }), 400, "instance name"},
		{"bad restart", ok(func(r *api.InstancesPost) { r.Restart = "sometimes" }), 400, "restart policy"},
		{"bad env", ok(func(r *api.InstancesPost) { r.Env = map[string]string{"A=B": "c"} }), 400, "env name"},
		{"duplicate name", ok(func(r *api.InstancesPost) { r.Name = "parked" }), 409, "parked already exists"},
		{"unknown project", ok(func(r *api.InstancesPost) {}), 404, "project nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			project := ""
			if tc.name == "unknown project" {
				project = "nosuch"
			}
			_, err := c.CreateInstance(ctx, project, tc.req)
			wantStatus(t, err, tc.status, tc.msg)
		})
	}
	t.Run("exec into stopped instance", func(t *testing.T) {
		_, err := c.Exec(ctx, "", "parked", api.InstanceExecPost{Command: []string{"true"}})
		wantStatus(t, err, 409, "parked")
	})
	t.Run("bad state action", func(t *testing.T) {
		_, err := c.SetInstanceState(ctx, "", "parked", api.InstanceStatePut{Action: "explode"})
		wantStatus(t, err, 400, "explode")
		_, err = c.SetInstanceState(ctx, "", "nosuch", api.InstanceStatePut{Action: "start"})
		wantStatus(t, err, 404, "nosuch")
	})
	t.Run("bad patch", func(t *testing.T) {
		bad := "sometimes"
		_, err := c.UpdateInstance(ctx, "", "parked", api.InstancePatch{Restart: &bad})
		wantStatus(t, err, 400, "restart policy")
		target := int64(64 << 20)
		_, err = c.UpdateInstance(ctx, "", "parked", api.InstancePatch{BalloonTarget: &target})
		wantStatus(t, err, 409, "--balloon")
	})
	t.Run("bad image builds", func(t *testing.T) {
		for _, tc := range []struct {
			req    api.ImagesPost
			status int
			msg    string
		}{
			{api.ImagesPost{Name: "Bad Name"}, 400, "image name"},
			{api.ImagesPost{Name: "x", Binaries: []string{"busybox"}}, 400, "absolute path"},
			{api.ImagesPost{Name: "x", Binaries: []string{"/no/such/bin"}}, 400, "/no/such/bin"},
			{api.ImagesPost{Name: "x", Kind: "vm"}, 400, "kind"},
			{api.ImagesPost{Name: "x", KernelPackage: "finvirt-no-such-kernel"}, 404, "no such Debian package: finvirt-no-such-kernel"},
			{api.ImagesPost{Name: "x", KernelPackage: "rel/kernel"}, 400, "neither a Debian package name nor an absolute directory"},
			{api.ImagesPost{Name: "x", KernelPackage: "/no/such/dir"}, 400, "kernel_package"},
			{api.ImagesPost{Name: "busy"}, 409, "busy already exists"},
		} {
			_, err := c.BuildImage(ctx, tc.req)
			wantStatus(t, err, tc.status, tc.msg)
		}
		_, err := c.ImportImage(ctx, strings.NewReader("not a tar"))
		wantStatus(t, err, 400, "import")
	})
	after, _ := c.GetProject(ctx, "default")
	list, _ := c.ListInstances(ctx, "")
	if after.Usage != before.Usage || len(list) != 1 || len(qemuPids(sd)) != 0 {
		t.Fatalf("bad input changed something: usage %+v -> %+v, instances %d, QEMUs %v", before.Usage, after.Usage, len(list), qemuPids(sd))
	}
	if ims, _ := c.ListImages(ctx); len(ims) != 1 {
		t.Fatalf("images after bad builds: %+v", ims)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
