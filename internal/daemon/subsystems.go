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

// Subsystem is a part of the daemon that owns one kind of object (instances, images,
// storage pools and volumes, networks). Each lives in its own files and registers itself
// from init(), so the core never lists them and they never edit each other's files.
type Subsystem interface {
	// Name is used in logs and errors.
	Name() string
	// Routes are added to the API (RBAC, audit, OpenAPI and metrics come with them).
	Routes() []*Route
	// Start runs after the store is open and before the API serves: re-attach to what
	// survived a daemon restart, clean strays, start reconcile loops.
	Start(ctx context.Context) error
	// Stop is called on shutdown before the store closes; it must not stop workloads
	// (VMs keep running across daemon restarts).
	Stop()
}

// ProjectUser is implemented by subsystems whose objects belong to projects without being
// counted in the quota (networks, ACLs): a project is deleted only when none remains.
type ProjectUser interface {
	// ProjectObjects describes what project still holds ("2 networks"), "" for nothing.
	ProjectObjects(tx store.Tx, project string) (string, error)
}

// projectObjects asks every subsystem what a project still holds.
func (d *Daemon) projectObjects(tx store.Tx, project string) ([]string, error) {
	var held []string
	for _, s := range d.subsystems {
		if pu, ok := s.(ProjectUser); ok {
			what, err := pu.ProjectObjects(tx, project)
			if err != nil {
				return nil, err
			}
			if what != "" {
				held = append(held, what)
			}
		}
	}
	return held, nil
}

var (
	subsystemMu        sync.Mutex
	subsystemFactories []func(*Daemon) (Subsystem, error)
)

// Register is called from init() in a subsystem's package; the binary imports the
// package for that side effect.
func Register(f func(*Daemon) (Subsystem, error)) {
	subsystemMu.Lock()
	defer subsystemMu.Unlock()
	subsystemFactories = append(subsystemFactories, f)
}

func (d *Daemon) loadSubsystems() error {
	subsystemMu.Lock()
	factories := append([]func(*Daemon) (Subsystem, error){}, subsystemFactories...)
	subsystemMu.Unlock()
	for _, f := range factories {
		s, err := f(d)
		if err != nil {
			return err
		}
		for _, rt := range s.Routes() {
			d.register(rt)
		}
		d.subsystems = append(d.subsystems, s)
	}
	return nil
}

func (d *Daemon) startSubsystems(ctx context.Context) error {
	for _, s := range d.subsystems {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", s.Name(), err)
		}
	}
	return nil
}

func (d *Daemon) stopSubsystems() {
	for i := len(d.subsystems) - 1; i >= 0; i-- {
		d.subsystems[i].Stop()
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
