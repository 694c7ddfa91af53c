package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/auth"
	"github.com/finvirt/finvirt/internal/store"
)

const (
	identityPrefix = "identities/"
	tokenPrefix    = "tokens/"
	certPrefix     = "certs/"
)

type tokenRecord struct {
	api.Token
	Hash string `json:"hash"`
}

// sourceOf names where a request came from, for the audit log.
func sourceOf(r *http.Request) string {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if uc, ok := c.(*net.UnixConn); ok {
		if cred, err := peerCred(uc); err == nil {
			return fmt.Sprintf("unix:pid=%d,uid=%d", cred.Pid, cred.Uid)
		}
		return "unix"
	}
	return r.RemoteAddr
}

func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return cred, cerr
}

// authenticate sets rc.identity and rc.grants. The unix socket (mode 0600) is the local
// administrator; TCP callers present a client certificate or a bearer token.
func (d *Daemon) authenticate(r *http.Request, rc *Request) error {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if uc, ok := c.(*net.UnixConn); ok {
		name := "local"
		if cred, err := peerCred(uc); err == nil {
			name = "local:" + strconv.Itoa(int(cred.Uid))
			if u, err := user.LookupId(strconv.Itoa(int(cred.Uid))); err == nil {
				name = "local:" + u.Username
			}
		}
		rc.identity = name
		rc.grants = []api.Grant{{Role: api.RoleAdmin}}
		return nil
	}
	ctx := r.Context()
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		fp := auth.CertFingerprint(r.TLS.PeerCertificates[0].Raw)
		if e, err := d.store.Get(ctx, certPrefix+fp); err == nil {
			return d.loadIdentity(ctx, string(e.Value), rc)
		}
		// An unknown certificate may still carry a token.
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		rc.identity = "anonymous"
		return errorf(http.StatusUnauthorized, "authentication required: send 'Authorization: Bearer <token>' (finvirt token create) or a trusted client certificate")
	}
	bearer, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		rc.identity = "anonymous"
		return errorf(http.StatusUnauthorized, "unsupported Authorization scheme: use 'Bearer <token>'")
	}
	id, err := auth.ParseBearer(strings.TrimSpace(bearer))
	if err != nil {
		rc.identity = "anonymous"
		return errorf(http.StatusUnauthorized, "%v", err)
	}
	e, err := d.store.Get(ctx, tokenPrefix+id)
	if err != nil {
		rc.identity = "token:" + id
		return errorf(http.StatusUnauthorized, "token %s is not known (revoked or never issued)", id)
	}
	var tr tokenRecord
	if err := json.Unmarshal(e.Value, &tr); err != nil {
		return err
	}
	if !auth.SecretMatches(strings.TrimSpace(bearer), tr.Hash) {
		rc.identity = "token:" + id
		return errorf(http.StatusUnauthorized, "token %s: wrong secret", id)
	}
	if tr.ExpiresAt != nil && time.Now().After(*tr.ExpiresAt) {
		rc.identity = tr.Identity
		return errorf(http.StatusUnauthorized, "token %s of %s expired at %s: issue a new one", id, tr.Identity, tr.ExpiresAt.Format(time.RFC3339))
	}
	return d.loadIdentity(ctx, tr.Identity, rc)
}

func (d *Daemon) loadIdentity(ctx context.Context, name string, rc *Request) error {
	id, err := d.getIdentity(ctx, name)
	if err != nil {
		rc.identity = name
		return errorf(http.StatusUnauthorized, "identity %s no longer exists", name)
	}
	rc.identity = id.Name
	rc.grants = id.Grants
	return nil
}

func (d *Daemon) getIdentity(ctx context.Context, name string) (api.Identity, error) {
	var id api.Identity
	e, err := d.store.Get(ctx, identityPrefix+name)
	if err != nil {
		return id, err
	}
	return id, json.Unmarshal(e.Value, &id)
}

// grantsOf returns the current grants of an identity (the local admin has all rights).
func (d *Daemon) grantsOf(ctx context.Context, name string) ([]api.Grant, error) {
	if name == "local" || strings.HasPrefix(name, "local:") {
		return []api.Grant{{Role: api.RoleAdmin}}, nil
	}
	id, err := d.getIdentity(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("identity %s no longer exists", name)
	}
	return id.Grants, err
}
