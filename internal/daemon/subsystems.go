package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/quota"
	"github.com/finvirt/finvirt/internal/store"
)

// subsystem is a part of the daemon that owns one kind of object (instances, images,
// storage pools and volumes, networks). Each lives in its own files and registers itself
// from init(), so the core never lists them and they never edit each other's files.
type subsystem interface {
	// name is used in logs and errors.
	name() string
	// routes are added to the API (RBAC, audit, OpenAPI and metrics come with them).
	routes() []*route
	// start runs after the store is open and before the API serves: re-attach to what
	// survived a daemon restart, clean strays, start reconcile loops.
	start(ctx context.Context) error
	// stop is called on shutdown before the store closes; it must not stop workloads
	// (VMs keep running across daemon restarts).
	stop()
}

var (
	subsystemMu        sync.Mutex
	subsystemFactories []func(*Daemon) (subsystem, error)
)

// registerSubsystem is called from init() in a subsystem's file.
func registerSubsystem(f func(*Daemon) (subsystem, error)) {
	subsystemMu.Lock()
	defer subsystemMu.Unlock()
	subsystemFactories = append(subsystemFactories, f)
}

func (d *Daemon) loadSubsystems() error {
	subsystemMu.Lock()
	factories := append([]func(*Daemon) (subsystem, error){}, subsystemFactories...)
	subsystemMu.Unlock()
	for _, f := range factories {
		s, err := f(d)
		if err != nil {
			return err
		}
		for _, rt := range s.routes() {
			d.register(rt)
		}
		d.subsystems = append(d.subsystems, s)
	}
	return nil
}

func (d *Daemon) startSubsystems(ctx context.Context) error {
	for _, s := range d.subsystems {
		if err := s.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", s.name(), err)
		}
	}
	return nil
}

func (d *Daemon) stopSubsystems() {
	for i := len(d.subsystems) - 1; i >= 0; i-- {
		d.subsystems[i].stop()
	}
}

// queryProject resolves the project of a request from ?project= (default "default"), the
// convention of every project-scoped object route (/1.0/instances?project=bank).
func queryProject(_ *Daemon, r *http.Request) (string, error) {
	p := r.URL.Query().Get("project")
	if p == "" {
		return DefaultProject, nil
	}
	if err := validName("project", p); err != nil {
		return "", err
	}
	return p, nil
}

// adjustUsage changes a project's usage inside tx, refusing growth beyond its quota. Every
// create, resize and delete of a quota-counted object calls it in the transaction that
// records the object, so usage can never drift from the objects.
func adjustUsage(tx store.Tx, project string, delta api.ProjectUsage) (api.Project, error) {
	p, e, err := getProjectTx(tx, project)
	if err != nil {
		return p, err
	}
	if err := quota.Check(p, delta); err != nil {
		return p, errorf(http.StatusConflict, "%v", err)
	}
	p.Usage = quota.Add(p.Usage, delta)
	if p.Usage.Instances < 0 || p.Usage.VCPUs < 0 || p.Usage.Memory < 0 || p.Usage.Disk < 0 {
		return p, errors.New("project usage would go negative: the state store is inconsistent")
	}
	if err := tx.CompareAndSwap(projectPrefix+project, encodeProject(p), e.ModRev); err != nil {
		return p, err
	}
	return p, nil
}
