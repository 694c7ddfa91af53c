package instances

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/daemon"
	"github.com/finvirt/finvirt/internal/store"
)

const prefix = "instances/"

func recordKey(project, name string) string { return prefix + project + "/" + name }

// instanceID is the host-wide name of an instance for the driver: the name (readable in ps
// and in the state dir) plus a hash of project/name, because two projects may both have a
// "web" and "a-b"+"c" must not collide with "a"+"b-c".
func instanceID(project, name string) string {
	h := sha256.Sum256([]byte(project + "/" + name))
	n := name
	if len(n) > 40 {
		n = n[:40]
	}
	return n + "-" + hex.EncodeToString(h[:4])
}

func decode(e store.Entry) (api.Instance, error) {
	var in api.Instance
	err := json.Unmarshal(e.Value, &in)
	return in, err
}

func encode(in api.Instance) []byte {
	b, _ := json.Marshal(in)
	return b
}

func (s *Subsystem) getRecord(ctx context.Context, project, name string) (api.Instance, error) {
	e, err := s.d.Store().Get(ctx, recordKey(project, name))
	if errors.Is(err, store.ErrNotFound) {
		return api.Instance{}, daemon.NotFound("instance %s not found in project %s: see 'finvirt list --project %s'", name, project, project)
	}
	if err != nil {
		return api.Instance{}, err
	}
	return decode(e)
}

// listRecords lists the instances of project ("" for every project).
func (s *Subsystem) listRecords(ctx context.Context, project string) ([]api.Instance, error) {
	p := prefix
	if project != "" {
		p += project + "/"
	}
	entries, err := s.d.Store().List(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]api.Instance, 0, len(entries))
	for _, e := range entries {
		in, err := decode(e)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// update changes a stored record in its own transaction (changes the daemon makes on its own:
// boot progress, crash detection). It returns the updated record; a deleted record is
// ErrNotFound.
func (s *Subsystem) update(ctx context.Context, project, name string, fn func(*api.Instance)) (api.Instance, error) {
	return s.updateIf(ctx, project, name, func(in *api.Instance) error { fn(in); return nil })
}

// updateIf is update where fn may refuse the change (its error aborts the transaction).
func (s *Subsystem) updateIf(ctx context.Context, project, name string, fn func(*api.Instance) error) (api.Instance, error) {
	var out api.Instance
	err := s.d.Store().Update(ctx, func(tx store.Tx) error {
		e, err := tx.Get(recordKey(project, name))
		if err != nil {
			return err
		}
		in, err := decode(e)
		if err != nil {
			return err
		}
		if err := fn(&in); err != nil {
			return err
		}
		in.UpdatedAt = time.Now().UTC()
		out = in
		return tx.CompareAndSwap(e.Key, encode(in), e.ModRev)
	})
	return out, err
}

// errChanged says a record changed since the caller read it.
var errChanged = errors.New("instance record changed meanwhile")

// setStatus records a status and publishes the lifecycle event for the transition.
func (s *Subsystem) setStatus(ctx context.Context, project, name, status, reason string) (api.Instance, error) {
	return s.setStatusIf(ctx, api.Instance{Project: project, Name: name}, status, reason)
}

// setStatusIf is setStatus only if the record is unchanged since seen was read (seen's
// UpdatedAt set), else errChanged: the monitor acts on what it saw, and a stop or start the
// user made in between must not be taken for a crash (and restarted).
func (s *Subsystem) setStatusIf(ctx context.Context, seen api.Instance, status, reason string) (api.Instance, error) {
	project, name := seen.Project, seen.Name
	var old string
	in, err := s.updateIf(ctx, project, name, func(in *api.Instance) error {
		if !seen.UpdatedAt.IsZero() && !in.UpdatedAt.Equal(seen.UpdatedAt) {
			return errChanged
		}
		old = in.Status
		in.Status, in.StatusReason = status, reason
		if status != api.InstanceRunning && status != api.InstancePaused {
			in.AgentReady = false
			if status != api.InstanceStarting {
				in.PID = 0
			}
		}
		return nil
	})
	if err == nil && old != status {
		md := map[string]string{"status": status}
		if reason != "" {
			md["reason"] = reason
		}
		s.d.Publish(lifecycleEvent("instance-"+status, project, instanceSource(project, name), md))
	}
	return in, err
}

func instanceSource(project, name string) string {
	return "/1.0/instances/" + name + "?project=" + project
}

func lifecycleEvent(action, project, source string, md map[string]string) api.Event {
	return api.Event{Type: "lifecycle", Action: action, Source: source, Project: project, Identity: "finvirt", Time: time.Now().UTC(), Metadata: md}
}

// acquire marks key busy with what; false when something else holds it.
func (s *Subsystem) acquire(key, what string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.busy[key]; ok {
		return false
	}
	s.busy[key] = what
	return true
}

func (s *Subsystem) release(key string) {
	s.mu.Lock()
	delete(s.busy, key)
	s.mu.Unlock()
}

func (s *Subsystem) busyWith(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[key]
}

func busyErr(in api.Instance, what string) error {
	return daemon.Conflict("instance %s in project %s is busy (%s in progress): wait for that operation, see 'finvirt operation list'", in.Name, in.Project, what)
}

func projectFlag(p string) string {
	if p == daemon.DefaultProject {
		return ""
	}
	return " --project " + p
}
