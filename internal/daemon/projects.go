package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/quota"
	"github.com/finvirt/finvirt/internal/store"
)

const projectPrefix = "projects/"

// DefaultProject exists on every daemon and cannot be deleted.
const DefaultProject = "default"

var nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validName checks object names: lower-case letters, digits and dashes, 1-63 characters,
// so a name is safe in paths, interface names, DNS labels and nft identifiers.
func validName(kind, name string) error {
	if name == "" {
		return badRequest("%s name is empty", kind)
	}
	if !nameRe.MatchString(name) {
		return badRequest("%s name %q is invalid: use 1-63 lower-case letters, digits and dashes, starting and ending with a letter or digit", kind, name)
	}
	return nil
}

func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// encodeProject is the stored form of a project: its API JSON with revision 0, because
// the store's ModRev is the revision.
func encodeProject(p api.Project) []byte {
	p.Revision = 0
	b, _ := json.Marshal(p)
	return b
}

func decodeProject(e store.Entry) (api.Project, error) {
	var p api.Project
	err := json.Unmarshal(e.Value, &p)
	p.Revision = e.ModRev
	return p, err
}

func (d *Daemon) getProject(ctx context.Context, name string) (api.Project, error) {
	e, err := d.store.Get(ctx, projectPrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Project{}, notFound("project %s not found: see 'finvirt project list'", name)
	}
	if err != nil {
		return api.Project{}, err
	}
	return decodeProject(e)
}

func getProjectTx(tx store.Tx, name string) (api.Project, store.Entry, error) {
	e, err := tx.Get(projectPrefix + name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Project{}, e, notFound("project %s not found: see 'finvirt project list'", name)
	}
	if err != nil {
		return api.Project{}, e, err
	}
	p, err := decodeProject(e)
	return p, e, err
}

func (d *Daemon) bootstrap(ctx context.Context) error {
	return d.store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(projectPrefix + DefaultProject); err == nil {
			return nil
		}
		now := time.Now().UTC()
		return tx.Create(projectPrefix+DefaultProject, encodeProject(api.Project{Name: DefaultProject, Description: "Default project", CreatedAt: now, UpdatedAt: now}))
	})
}

// handleProjectList streams the stored project documents without decoding them: the
// stored JSON already is the API form, only its trailing revision is filled in from the
// store. This keeps a list of 10,000 projects well inside the 50 ms budget.
func (d *Daemon) handleProjectList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	entries, err := d.store.List(r.Context(), projectPrefix)
	if err != nil {
		return err
	}
	all := auth.Allowed(rc.grants, auth.PermGlobalRead, "")
	buf := make([]byte, 0, 64+len(entries)*320)
	buf = append(buf, '[')
	first := true
	for _, e := range entries {
		name := e.Key[len(projectPrefix):]
		if !all && !auth.VisibleProject(rc.grants, name) {
			continue
		}
		doc, ok := bytes.CutSuffix(bytes.TrimRight(e.Value, "\n"), []byte(revisionTail))
		if !ok {
			// Not in the canonical stored form: decode and re-encode.
			p, err := decodeProject(e)
			if err != nil {
				return err
			}
			doc, _ = bytes.CutSuffix(encodeProject(p), []byte(revisionTail))
			doc = append(doc, `"revision":`...)
		} else {
			doc = append(doc[:len(doc):len(doc)], `"revision":`...)
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, doc...)
		buf = strconv.AppendInt(buf, e.ModRev, 10)
		buf = append(buf, '}')
	}
	buf = append(buf, ']', '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(buf)
	return err
}

// revisionTail ends every stored project document: projects are stored with revision 0
// (the store's ModRev is the truth) and Revision is the struct's last field.
const revisionTail = `"revision":0}`

func (d *Daemon) handleProjectGet(w http.ResponseWriter, r *http.Request, rc *Request) error {
	p, err := d.getProject(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.FormatInt(p.Revision, 10))
	return writeJSON(w, http.StatusOK, p)
}

func (d *Daemon) handleProjectCreate(w http.ResponseWriter, r *http.Request, rc *Request) error {
	var req api.ProjectsPost
	if err := decodeJSON(rc.body, &req); err != nil {
		return err
	}
	rc.target = "project/" + req.Name
	if err := validName("project", req.Name); err != nil {
		return err
	}
	if len(req.Description) > 1024 {
		return badRequest("project %s: description is longer than 1024 characters", req.Name)
	}
	if err := quota.ValidateLimits(req.Name, req.Limits, api.ProjectUsage{}); err != nil {
		return badRequest("%v", err)
	}
	now := time.Now().UTC()
	p := api.Project{Name: req.Name, Description: req.Description, Protected: req.Protected, Limits: req.Limits, CreatedAt: now, UpdatedAt: now}
	rc.project = p.Name
	err := d.commit(r.Context(), r, rc, http.StatusCreated, func(tx store.Tx) error {
		if err := tx.Create(projectPrefix+p.Name, encodeProject(p)); err != nil {
			if errors.Is(err, store.ErrExists) {
				return conflict("project %s already exists", p.Name)
			}
			return err
		}
		p.Revision = tx.Rev()
		return nil
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "project-created", p.Name, "/1.0/projects/"+p.Name)
	return writeJSON(w, http.StatusCreated, p)
}

func patchDestructive(r *http.Request, body []byte) bool {
	var patch api.ProjectPatch
	if json.Unmarshal(body, &patch) != nil {
		return false
	}
	// Removing protection, or shrinking limits, weakens a protected project's controls.
	return patch.Protected != nil && !*patch.Protected
}

func (d *Daemon) handleProjectPatch(w http.ResponseWriter, r *http.Request, rc *Request) error {
	name := r.PathValue("name")
	rc.target = "project/" + name
	var patch api.ProjectPatch
	if err := decodeJSON(rc.body, &patch); err != nil {
		return err
	}
	if patch.Description != nil && len(*patch.Description) > 1024 {
		return badRequest("project %s: description is longer than 1024 characters", name)
	}
	var expect int64 = -1
	if m := r.Header.Get("If-Match"); m != "" {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return badRequest("If-Match %q: give the project's revision (ETag)", m)
		}
		expect = n
	}
	var out api.Project
	err := d.commit(r.Context(), r, rc, http.StatusOK, func(tx store.Tx) error {
		p, e, err := getProjectTx(tx, name)
		if err != nil {
			return err
		}
		if expect >= 0 && e.ModRev != expect {
			return errorf(http.StatusPreconditionFailed, "project %s changed (revision %d, you sent %d): re-read it and retry", name, e.ModRev, expect)
		}
		if patch.Description != nil {
			p.Description = *patch.Description
		}
		if patch.Protected != nil {
			p.Protected = *patch.Protected
		}
		if patch.Limits != nil {
			if err := quota.ValidateLimits(name, *patch.Limits, p.Usage); err != nil {
				return conflict("%v", err)
			}
			p.Limits = *patch.Limits
		}
		p.UpdatedAt = time.Now().UTC()
		if err := tx.CompareAndSwap(projectPrefix+name, encodeProject(p), e.ModRev); err != nil {
			return err
		}
		p.Revision = tx.Rev()
		out = p
		return nil
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "project-updated", name, "/1.0/projects/"+name)
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleProjectDelete(w http.ResponseWriter, r *http.Request, rc *Request) error {
	name := r.PathValue("name")
	rc.target = "project/" + name
	if name == DefaultProject {
		return badRequest("project %s cannot be deleted", DefaultProject)
	}
	err := d.commit(r.Context(), r, rc, http.StatusOK, func(tx store.Tx) error {
		p, _, err := getProjectTx(tx, name)
		if err != nil {
			return err
		}
		if u := p.Usage; u.Instances > 0 || u.Disk > 0 {
			return conflict("project %s is not empty (%d instances, %d bytes of disk): delete its objects first", name, u.Instances, u.Disk)
		}
		held, err := d.projectObjects(tx, name)
		if err != nil {
			return err
		}
		if len(held) > 0 {
			return conflict("project %s still holds %s: delete them first", name, strings.Join(held, ", "))
		}
		// Grants on a deleted project must not come back to life if the name is reused.
		if err := dropProjectGrants(tx, name); err != nil {
			return err
		}
		return tx.Delete(projectPrefix + name)
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "project-deleted", name, "/1.0/projects/"+name)
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func dropProjectGrants(tx store.Tx, project string) error {
	ids, err := tx.List(identityPrefix)
	if err != nil {
		return err
	}
	for _, e := range ids {
		var id api.Identity
		if err := json.Unmarshal(e.Value, &id); err != nil {
			return err
		}
		kept := id.Grants[:0]
		for _, g := range id.Grants {
			if g.Project != project {
				kept = append(kept, g)
			}
		}
		if len(kept) != len(id.Grants) {
			id.Grants = kept
			b, _ := json.Marshal(id)
			if err := tx.Put(e.Key, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
