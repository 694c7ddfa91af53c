package daemon_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/finvirt/finvirt/client"
)

func auditCount(t testing.TB, c *client.Client) int {
	t.Helper()
	recs, err := c.AuditList(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

func tlsLoad(cert, key string) (tls.Certificate, error) { return tls.LoadX509KeyPair(cert, key) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
