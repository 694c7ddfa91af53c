package daemon

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/store"
)

// addGrant adds g to identity name (creating it), enforcing grant shape, that the project
// exists, and segregation of duties — all inside tx.
func addGrant(tx store.Tx, name string, g api.Grant) (api.Identity, error) {
	if err := validName("identity", name); err != nil {
		return api.Identity{}, err
	}
	if err := auth.ValidateGrant(g); err != nil {
		return api.Identity{}, badRequest("%v", err)
	}
	if g.Project != "" {
		if _, _, err := getProjectTx(tx, g.Project); err != nil {
			return api.Identity{}, err
		}
	}
	id := api.Identity{Name: name, CreatedAt: time.Now().UTC()}
	if e, err := tx.Get(identityPrefix + name); err == nil {
		if err := json.Unmarshal(e.Value, &id); err != nil {
			return id, err
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return id, err
	}
	has := false
	for _, old := range id.Grants {
		has = has || old == g
	}
	if !has {
		grants := append(append([]api.Grant{}, id.Grants...), g)
		if err := auth.CheckSegregation(name, grants); err != nil {
			return id, conflict("%v", err)
		}
		id.Grants = grants
	}
	b, _ := json.Marshal(id)
	return id, tx.Put(identityPrefix+name, b)
}

func (d *Daemon) handleTokenCreate(w http.ResponseWriter, r *http.Request, rc *Request) error {
	var req api.TokensPost
	if err := decodeJSON(rc.body, &req); err != nil {
		return err
	}
	var expires *time.Time
	if req.ExpiresIn != "" {
		dur, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || dur <= 0 {
			return badRequest("expires_in %q: give a positive duration such as 720h", req.ExpiresIn)
		}
		t := time.Now().UTC().Add(dur)
		expires = &t
	}
	tokID, bearer, err := auth.NewTokenSecret()
	if err != nil {
		return err
	}
	tok := api.Token{ID: tokID, Identity: req.Identity, Description: req.Description, CreatedAt: time.Now().UTC(), ExpiresAt: expires}
	rc.project = req.Project
	rc.target = "identity/" + req.Identity
	err = d.commit(r.Context(), r, rc, http.StatusCreated, func(tx store.Tx) error {
		if _, err := addGrant(tx, req.Identity, api.Grant{Role: req.Role, Project: req.Project}); err != nil {
			return err
		}
		b, _ := json.Marshal(tokenRecord{Token: tok, Hash: auth.HashSecret(bearer)})
		return tx.Create(tokenPrefix+tokID, b)
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "token-created", req.Project, "/1.0/tokens/"+tokID)
	tok.Secret = bearer
	return writeJSON(w, http.StatusCreated, tok)
}

func (d *Daemon) handleTokenList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	entries, err := d.store.List(r.Context(), tokenPrefix)
	if err != nil {
		return err
	}
	out := make([]api.Token, 0, len(entries))
	for _, e := range entries {
		var tr tokenRecord
		if err := json.Unmarshal(e.Value, &tr); err != nil {
			return err
		}
		out = append(out, tr.Token)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleTokenDelete(w http.ResponseWriter, r *http.Request, rc *Request) error {
	id := r.PathValue("id")
	err := d.commit(r.Context(), r, rc, http.StatusOK, func(tx store.Tx) error {
		if err := tx.Delete(tokenPrefix + id); errors.Is(err, store.ErrNotFound) {
			return notFound("token %s not found: see 'finvirt token list'", id)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "token-revoked", "", "/1.0/tokens/"+id)
	return writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
}

func (d *Daemon) handleCertificateAdd(w http.ResponseWriter, r *http.Request, rc *Request) error {
	var req api.CertificatesPost
	if err := decodeJSON(rc.body, &req); err != nil {
		return err
	}
	block, _ := pem.Decode([]byte(req.Certificate))
	if block == nil || block.Type != "CERTIFICATE" {
		return badRequest("certificate: expected a PEM 'CERTIFICATE' block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return badRequest("certificate: %v", err)
	}
	fp := auth.CertFingerprint(cert.Raw)
	rc.project = req.Project
	var out api.Identity
	err = d.commit(r.Context(), r, rc, http.StatusCreated, func(tx store.Tx) error {
		if e, err := tx.Get(certPrefix + fp); err == nil && string(e.Value) != req.Identity {
			return conflict("certificate %s is already trusted for identity %s", fp[:16], e.Value)
		}
		id, err := addGrant(tx, req.Identity, api.Grant{Role: req.Role, Project: req.Project})
		if err != nil {
			return err
		}
		if !contains(id.Certificates, fp) {
			id.Certificates = append(id.Certificates, fp)
		}
		b, _ := json.Marshal(id)
		if err := tx.Put(identityPrefix+id.Name, b); err != nil {
			return err
		}
		out = id
		return tx.Put(certPrefix+fp, []byte(id.Name))
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (d *Daemon) handleIdentityList(w http.ResponseWriter, r *http.Request, rc *Request) error {
	entries, err := d.store.List(r.Context(), identityPrefix)
	if err != nil {
		return err
	}
	out := make([]api.Identity, 0, len(entries))
	for _, e := range entries {
		var id api.Identity
		if err := json.Unmarshal(e.Value, &id); err != nil {
			return err
		}
		out = append(out, id)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleIdentityGet(w http.ResponseWriter, r *http.Request, rc *Request) error {
	id, err := d.getIdentity(r.Context(), r.PathValue("name"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("identity %s not found: see 'finvirt identity list'", r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, id)
}

// handleIdentityDelete removes an identity with its tokens and certificates.
func (d *Daemon) handleIdentityDelete(w http.ResponseWriter, r *http.Request, rc *Request) error {
	name := r.PathValue("name")
	err := d.commit(r.Context(), r, rc, http.StatusOK, func(tx store.Tx) error {
		e, err := tx.Get(identityPrefix + name)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("identity %s not found: see 'finvirt identity list'", name)
		}
		if err != nil {
			return err
		}
		var id api.Identity
		if err := json.Unmarshal(e.Value, &id); err != nil {
			return err
		}
		for _, fp := range id.Certificates {
			tx.Delete(certPrefix + fp)
		}
		toks, err := tx.List(tokenPrefix)
		if err != nil {
			return err
		}
		for _, te := range toks {
			var tr tokenRecord
			if json.Unmarshal(te.Value, &tr) == nil && tr.Identity == name {
				if err := tx.Delete(te.Key); err != nil {
					return err
				}
			}
		}
		return tx.Delete(identityPrefix + name)
	})
	if err != nil {
		return err
	}
	d.lifecycle(rc, "identity-deleted", "", "/1.0/identities/"+name)
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (d *Daemon) handleInfo(w http.ResponseWriter, r *http.Request, rc *Request) error {
	host, _ := osHostname()
	return writeJSON(w, http.StatusOK, api.ServerInfo{
		APIVersion: api.Version, Version: d.cfg.Version, Hostname: host, StateDir: d.cfg.StateDir,
		StartedAt: d.started, Identity: rc.identity, Roles: rc.grants, TLSCertSHA: d.tlsFingerprint, TCPAddress: d.Addr(),
		StoreDriver: "bbolt",
	})
}
