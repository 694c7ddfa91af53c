package instances

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/agent"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/compute"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/image"
	"github.com/finvirt/finvirt/internal/store"
)

func (s *Subsystem) instanceRoutes() []*daemon.Route {
	P := daemon.QueryProject
	R, W := auth.PermProjectRead, auth.PermProjectWrite
	const n = "/1.0/instances/{name}"
	return []*daemon.Route{
		{Method: "GET", Path: "/1.0/instances", Summary: "List a project's instances", Perm: R, Project: P, Reply: []api.Instance{}, Handler: s.handleList},
		{Method: "POST", Path: "/1.0/instances", Summary: "Create an instance from an image and boot it (an operation)", Perm: W, Project: P, Action: "instance.create", Body: api.InstancesPost{}, Reply: api.Operation{}, Status: 202, Handler: s.handleCreate},
		{Method: "GET", Path: n, Summary: "Show an instance", Perm: R, Project: P, Reply: api.Instance{}, Handler: s.handleGet},
		{Method: "PATCH", Path: n, Summary: "Change an instance's restart policy or balloon target", Perm: W, Project: P, Action: "instance.update", Body: api.InstancePatch{}, Reply: api.Instance{}, Handler: s.handlePatch},
		{Method: "DELETE", Path: n, Summary: "Delete a stopped instance (?force=true kills a running one)", Perm: W, Project: P, Action: "instance.delete", Destructive: daemon.Always, Handler: s.handleDelete},
		{Method: "POST", Path: n + "/state", Summary: "Start, stop, restart, pause or resume an instance (an operation)", Perm: W, Project: P, Action: "instance.state", Body: api.InstanceStatePut{}, Reply: api.Operation{}, Status: 202, Handler: s.handleState},
		{Method: "POST", Path: n + "/exec", Summary: "Run a command in the guest through its agent (output buffered, 8 MiB cap)", Perm: W, Project: P, Action: "instance.exec", Body: api.InstanceExecPost{}, Reply: api.InstanceExecResult{}, Handler: s.handleExec},
		{Method: "PUT", Path: n + "/files", Summary: "Write a guest file (?path=, ?mode=; body streamed)", Perm: W, Project: P, Action: "instance.file-push", StreamBody: true, Reply: api.InstanceFile{}, Handler: s.handlePush},
		{Method: "GET", Path: n + "/files", Summary: "Read a guest file (?path=)", Perm: R, Project: P, Handler: s.handlePull},
		{Method: "GET", Path: n + "/console", Summary: "The serial console log (?lines=N: the last N lines; ?follow=true: then stream what the guest prints)", Perm: R, Project: P, Handler: s.handleConsole},
		{Method: "GET", Path: n + "/console/attach", Summary: "Attach the interactive serial console (Connection: Upgrade, Upgrade: finvirt-console; then a raw byte stream; one session per instance)", Perm: W, Project: P, Action: "instance.console", Handler: s.handleConsoleAttach},
		{Method: "GET", Path: n + "/metrics", Summary: "Guest CPU, memory, load and workload usage from the agent", Perm: R, Project: P, Handler: s.handleMetrics},
	}
}

func (s *Subsystem) handleList(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	list, err := s.listRecords(r.Context(), rq.Project())
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, list)
}

func (s *Subsystem) handleGet(_ *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	in, err := s.getRecord(r.Context(), rq.Project(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return daemon.WriteJSON(w, http.StatusOK, in)
}

func validRestart(name, p string) error {
	switch p {
	case api.RestartNever, api.RestartOnFailure, api.RestartAlways:
		return nil
	}
	return daemon.BadRequest("instance %s: restart policy %q is unknown: use never, on-failure or always", name, p)
}

// validateCreate fills defaults and checks a launch request against the image and the host
// before anything is stored, so bad input changes nothing.
func (s *Subsystem) validateCreate(project string, req *api.InstancesPost) (api.Instance, *image.Image, error) {
	if err := daemon.ValidName("instance", req.Name); err != nil {
		return api.Instance{}, nil, err
	}
	if req.Image == "" {
		return api.Instance{}, nil, daemon.BadRequest("instance %s: image is empty: name one from 'finvirt image list'", req.Name)
	}
	im, err := s.getImage(req.Image)
	if err != nil {
		return api.Instance{}, nil, err
	}
	if err := s.validateSize(req.Name, req.VCPUs, req.Memory); err != nil {
		return api.Instance{}, nil, err
	}
	if req.Restart == "" {
		req.Restart = api.RestartNever
	}
	if err := validRestart(req.Name, req.Restart); err != nil {
		return api.Instance{}, nil, err
	}
	for k := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return api.Instance{}, nil, daemon.BadRequest("instance %s: env name %q is invalid: use KEY=VALUE with a KEY without '='", req.Name, k)
		}
	}
	vols, err := validateAttachments(req.Name, req.Volumes, req.Networks)
	if err != nil {
		return api.Instance{}, nil, err
	}
	now := time.Now().UTC()
	in := api.Instance{Volumes: vols, Name: req.Name, Project: project, ID: instanceID(project, req.Name), Image: im.Name, ImageID: im.ID, Profile: im.Kind,
		VCPUs: req.VCPUs, Memory: req.Memory, Balloon: req.Balloon, Env: req.Env, Command: req.Command, Restart: req.Restart,
		Status: api.InstanceCreating, Accel: s.host.Accel, CreatedAt: now, UpdatedAt: now}
	cfg, err := agentConfig(in, im)
	if err != nil {
		return api.Instance{}, nil, daemon.BadRequest("instance %s: %v", req.Name, err)
	}
	if err := cfg.Validate(); err != nil {
		return api.Instance{}, nil, daemon.BadRequest("instance %s: %v", req.Name, err)
	}
	if err := compute.Validate(s.spec(in, im, nil), s.limits); err != nil {
		return api.Instance{}, nil, daemon.BadRequest("%v", err)
	}
	return in, im, nil
}

// agentConfig is the guest side of an instance: hostname and the --cmd workload, supervised
// by the agent with the instance's restart policy.
func agentConfig(in api.Instance, im *image.Image) (agent.Config, error) {
	cfg := agent.Config{Hostname: in.Name}
	guestConfig(&cfg, in)
	if strings.TrimSpace(in.Command) == "" {
		return cfg, nil
	}
	wl := agent.Workload{Name: "main", Restart: in.Restart}
	// Contents lists regular files only; busybox's applets (/bin/sh among them) are links.
	if hasFile(im, "/bin/sh") || hasFile(im, "/bin/busybox") {
		// A shell is in the image: let --cmd be a shell command line (quotes, pipes, &&).
		wl.Command, wl.Args = "/bin/sh", []string{"-c", in.Command}
	} else {
		f := strings.Fields(in.Command)
		if !strings.HasPrefix(f[0], "/") {
			return cfg, fmt.Errorf("command %q: image %s has no /bin/sh, so the program must be an absolute path (e.g. /bin/%s)", in.Command, im.Name, f[0])
		}
		wl.Command, wl.Args = f[0], f[1:]
	}
	keys := make([]string, 0, len(in.Env))
	for k := range in.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		wl.Env = append(wl.Env, k+"="+in.Env[k])
	}
	cfg.Workloads = []agent.Workload{wl}
	return cfg, nil
}

func hasFile(im *image.Image, p string) bool {
	for _, e := range im.Contents {
		if e.Path == p {
			return true
		}
	}
	return false
}

func (s *Subsystem) handleCreate(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	var req api.InstancesPost
	if err := daemon.DecodeJSON(rq.Body(), &req); err != nil {
		return err
	}
	project := rq.Project()
	rq.SetTarget("instance/" + project + "/" + req.Name)
	s.imageMu.RLock()
	in, im, err := s.validateCreate(project, &req)
	if err != nil {
		s.imageMu.RUnlock()
		return err
	}
	key := recordKey(project, in.Name)
	if !s.acquire(key, "launch") {
		s.imageMu.RUnlock()
		return daemon.Conflict("instance %s already exists in project %s (being created)", in.Name, project)
	}
	// The record and the quota usage commit together with the audit record: over quota or a
	// name collision changes nothing and starts no QEMU.
	err = d.Commit(r.Context(), r, rq, http.StatusAccepted, func(tx store.Tx) error {
		if err := tx.Create(key, encode(in)); err != nil {
			if errors.Is(err, store.ErrExists) {
				return daemon.Conflict("instance %s already exists in project %s: choose another name or delete it first", in.Name, project)
			}
			return err
		}
		_, err := daemon.AdjustUsage(tx, project, usageOf(in, 1))
		return err
	})
	s.imageMu.RUnlock()
	if err != nil {
		s.release(key)
		return err
	}
	d.Lifecycle(rq, "instance-created", project, instanceSource(project, in.Name))
	start := req.Start == nil || *req.Start
	op := s.startOp("Launching instance "+in.Name, project, map[string]string{"instances": instanceSource(project, in.Name)}, func(ctx context.Context, progress daemon.ProgressFunc) error {
		defer s.release(key)
		return s.launch(ctx, in, im, req.Networks, start, progress)
	})
	w.Header().Set("Location", "/1.0/operations/"+op.ID)
	return daemon.WriteJSON(w, http.StatusAccepted, op)
}

func usageOf(in api.Instance, sign int) api.ProjectUsage {
	return api.ProjectUsage{Instances: sign, VCPUs: sign * in.VCPUs, Memory: int64(sign) * in.Memory}
}

func sizeStr(b int64) string {
	if b%(1<<30) == 0 {
		return fmt.Sprintf("%dGiB", b>>30)
	}
	if b%(1<<20) == 0 {
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", b)
}

func (s *Subsystem) handlePatch(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	var patch api.InstancePatch
	if err := daemon.DecodeJSON(rq.Body(), &patch); err != nil {
		return err
	}
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	if patch.Restart != nil {
		if err := validRestart(name, *patch.Restart); err != nil {
			return err
		}
	}
	mem := in.Memory
	if patch.Memory != nil {
		mem = *patch.Memory
	}
	if t := patch.BalloonTarget; t != nil {
		if !in.Balloon {
			return daemon.Conflict("instance %s has no memory balloon: launch it with --balloon to change its memory at run time", name)
		}
		if *t != 0 && (*t < int64(compute.MinMemoryMiB)<<20 || *t > mem || *t%(1<<20) != 0) {
			return daemon.BadRequest("instance %s: balloon target %s must be whole MiB between %dMiB and the instance memory %s (0 = no target)", name, sizeStr(*t), compute.MinMemoryMiB, sizeStr(mem))
		}
		if *t != 0 && in.Status == api.InstanceRunning {
			// Apply to the running guest first: a target the hypervisor refuses is not stored.
			if err := s.drv.Balloon(r.Context(), in.ID, int(*t>>20)); err != nil {
				return daemon.Conflict("instance %s: set balloon: %v", name, err)
			}
		}
	}
	resized := in
	if patch.VCPUs != nil {
		resized.VCPUs = *patch.VCPUs
	}
	if patch.Memory != nil {
		resized.Memory = *patch.Memory
	}
	resize := resized.VCPUs != in.VCPUs || resized.Memory != in.Memory
	key := recordKey(project, name)
	if resize {
		if err := s.validateSize(name, resized.VCPUs, resized.Memory); err != nil {
			return err
		}
		if t := in.BalloonTarget; patch.BalloonTarget == nil && t > resized.Memory {
			return daemon.BadRequest("instance %s: memory %s is below its balloon target %s: lower the target too", name, sizeStr(resized.Memory), sizeStr(t))
		}
		if !s.acquire(key, "resize") {
			return busyErr(in, s.busyWith(key))
		}
		defer s.release(key)
		if st, err := s.drv.State(r.Context(), in.ID); err != nil || (in.Status != api.InstanceStopped && in.Status != api.InstanceError) || st.State != compute.StateStopped && st.State != compute.StateError {
			return daemon.Conflict("instance %s in project %s is %s: stop it before changing vcpus or memory ('finvirt stop %s%s')", name, project, in.Status, name, projectFlag(project))
		}
	}
	delta := api.ProjectUsage{VCPUs: resized.VCPUs - in.VCPUs, Memory: resized.Memory - in.Memory}
	var out api.Instance
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		e, err := tx.Get(key)
		if err != nil {
			return daemon.NotFound("instance %s not found in project %s", name, project)
		}
		cur, err := decode(e)
		if err != nil {
			return err
		}
		if patch.Restart != nil {
			cur.Restart = *patch.Restart
		}
		if patch.BalloonTarget != nil {
			cur.BalloonTarget = *patch.BalloonTarget
		}
		if resize {
			cur.VCPUs, cur.Memory = resized.VCPUs, resized.Memory
			// The quota sees the difference, in the transaction that stores the new size.
			if _, err := daemon.AdjustUsage(tx, project, delta); err != nil {
				return err
			}
		}
		cur.UpdatedAt = time.Now().UTC()
		out = cur
		return tx.CompareAndSwap(e.Key, encode(cur), e.ModRev)
	})
	if err != nil {
		return err
	}
	if resize {
		if err := s.redefine(r.Context(), in, out); err != nil {
			// Put the record and the usage back: the VM keeps its old size.
			s.d.Store().Update(context.Background(), func(tx store.Tx) error {
				if err := tx.Put(key, encode(in)); err != nil {
					return err
				}
				_, err := daemon.AdjustUsage(tx, project, api.ProjectUsage{VCPUs: -delta.VCPUs, Memory: -delta.Memory})
				return err
			})
			return err
		}
	}
	d.Lifecycle(rq, "instance-updated", project, instanceSource(project, name))
	return daemon.WriteJSON(w, http.StatusOK, out)
}

// redefine gives a stopped VM a new size: the driver fixes the spec at Create, so the driver
// instance is recreated (the boot files in instance-files/ stay). On failure the old
// definition is restored.
func (s *Subsystem) redefine(ctx context.Context, old, cur api.Instance) error {
	im, err := s.images.Get(cur.ImageID)
	if err != nil {
		return daemon.Conflict("instance %s: its image %s is gone: %v", cur.Name, cur.Image, err)
	}
	if err := s.drv.Delete(ctx, cur.ID); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return err
	}
	disks, err := s.currentDisks(ctx, cur)
	if err != nil {
		return daemon.Conflict("instance %s: %v", cur.Name, err)
	}
	if _, err := s.drv.Create(ctx, s.spec(cur, im, disks)); err != nil {
		if _, rerr := s.drv.Create(context.Background(), s.spec(old, im, disks)); rerr != nil {
			s.log.Error("restoring the VM definition failed", "instance", cur.Name, "err", rerr)
		}
		return daemon.BadRequest("instance %s: resize refused by the hypervisor: %v", cur.Name, err)
	}
	return nil
}

// validateSize checks vcpus and memory against the host (create and resize).
func (s *Subsystem) validateSize(name string, vcpus int, memory int64) error {
	maxCPU := compute.MaxVCPUsFor(s.limits.HostCPUs)
	if vcpus < 1 || vcpus > maxCPU {
		return daemon.BadRequest("instance %s: vcpus %d is out of range: this host allows 1 to %d", name, vcpus, maxCPU)
	}
	minMem, maxMem := int64(compute.MinMemoryMiB)<<20, int64(s.limits.HostMemoryMiB)<<20
	if memory < minMem || memory > maxMem {
		return daemon.BadRequest("instance %s: memory %s is out of range: give %dMiB to %dMiB (the host's RAM)", name, sizeStr(memory), compute.MinMemoryMiB, s.limits.HostMemoryMiB)
	}
	if memory%(1<<20) != 0 {
		return daemon.BadRequest("instance %s: memory %d bytes is not a whole number of MiB", name, memory)
	}
	return nil
}

func (s *Subsystem) handleDelete(d *daemon.Daemon, w http.ResponseWriter, r *http.Request, rq *daemon.Request) error {
	if err := s.wait(r.Context()); err != nil {
		return err
	}
	project, name := rq.Project(), r.PathValue("name")
	rq.SetTarget("instance/" + project + "/" + name)
	in, err := s.getRecord(r.Context(), project, name)
	if err != nil {
		return err
	}
	key := recordKey(project, name)
	if !s.acquire(key, "delete") {
		return busyErr(in, s.busyWith(key))
	}
	defer s.release(key)
	force := r.URL.Query().Get("force") == "true"
	st, err := s.drv.State(r.Context(), in.ID)
	exists := !errors.Is(err, compute.ErrNotFound)
	if err != nil && exists {
		return err
	}
	if exists && (st.State == compute.StateRunning || st.State == compute.StatePaused || st.State == compute.StateStarting || st.State == compute.StateStopping) {
		if !force {
			return daemon.Conflict("instance %s in project %s is %s: stop it first ('finvirt stop %s%s') or delete with --force", name, project, st.State, name, projectFlag(project))
		}
		if err := s.drv.Kill(r.Context(), in.ID); err != nil {
			return err
		}
	}
	s.dropAgent(in.ID)
	if exists {
		if err := s.drv.Delete(r.Context(), in.ID); err != nil && !errors.Is(err, compute.ErrNotFound) {
			return err
		}
	}
	os.RemoveAll(s.filesDir(in.ID))
	s.releaseAll(r.Context(), in)
	err = d.Commit(r.Context(), r, rq, http.StatusOK, func(tx store.Tx) error {
		if err := tx.Delete(key); err != nil {
			return err
		}
		_, err := daemon.AdjustUsage(tx, project, usageOf(in, -1))
		return err
	})
	if err != nil {
		return err
	}
	d.Lifecycle(rq, "instance-deleted", project, instanceSource(project, name))
	return daemon.WriteJSON(w, http.StatusOK, map[string]string{"deleted": name})
}
