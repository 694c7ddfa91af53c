package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/client"
	"github.com/finvirt/finvirt/internal/daemon"
	dt "github.com/finvirt/finvirt/internal/daemon/daemontest"
)

func TestProjectLifecycleAndQuotas(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	c := td.Local
	p, err := c.CreateProject(ctx, api.ProjectsPost{Name: "bank", Description: "Retail bank", Limits: api.ProjectLimits{Instances: 10, VCPUs: 32, Memory: 64 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.Instances != 10 || p.Revision == 0 {
		t.Fatalf("created project = %+v", p)
	}
	got, err := c.GetProject(ctx, "bank")
	if err != nil || got.Description != "Retail bank" || got.Limits.Memory != 64<<30 {
		t.Fatalf("GetProject = %+v, %v", got, err)
	}
	ps, err := c.ListProjects(ctx)
	if err != nil || len(ps) != 2 || ps[0].Name != "bank" || ps[1].Name != daemon.DefaultProject {
		t.Fatalf("ListProjects = %+v, %v", ps, err)
	}
	if !reflect.DeepEqual(ps[0], got) {
		t.Fatalf("listed project differs from the one read alone:\n%+v\n%+v", ps[0], got)
	}
	desc := "Retail and SME bank"
	up, err := c.UpdateProject(ctx, "bank", api.ProjectPatch{Description: &desc, Limits: &api.ProjectLimits{Instances: 20}})
	if err != nil || up.Description != desc || up.Limits.Instances != 20 || up.Revision <= got.Revision {
		t.Fatalf("UpdateProject = %+v, %v", up, err)
	}
	if err := c.DeleteProject(ctx, "bank"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetProject(ctx, "bank"); client.StatusOf(err) != 404 {
		t.Fatalf("deleted project still readable: %v", err)
	}
}

// rawRequest sends exactly the given body over the unix socket.
func rawRequest(t *testing.T, td *dt.Daemon, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", td.Socket)
	}}
	req, _ := http.NewRequest(method, "http://finvirt"+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestBadInputChangesNothing sends each malformed request and checks the precise 4xx, that
// projects are unchanged and that the audit log grew by exactly the record of the refusal.
func TestBadInputChangesNothing(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	td.MustProject(t, "bank", false)
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		msg                      string
	}{
		{"unknown field", "POST", "/1.0/projects", `{"name":"x","colour":"red"}`, nil, 400, `unknown field "colour"`},
		{"wrong type", "POST", "/1.0/projects", `{"name":5}`, nil, 400, `field "name" must be a string`},
		{"wrong nested type", "POST", "/1.0/projects", `{"name":"x","limits":{"memory":"lots"}}`, nil, 400, `field "limits.memory" must be a number`},
		{"not json", "POST", "/1.0/projects", `name=x`, nil, 400, "syntax error"},
		{"empty body", "POST", "/1.0/projects", ``, nil, 400, "empty"},
		{"trailing data", "POST", "/1.0/projects", `{"name":"x"}{"name":"y"}`, nil, 400, "after the object"},
		{"bad name", "POST", "/1.0/projects", `{"name":"Bank/../x"}`, nil, 400, "invalid"},
		{"long name", "POST", "/1.0/projects", `{"name":"` + strings.Repeat("a", 64) + `"}`, nil, 400, "invalid"},
		{"negative limit", "POST", "/1.0/projects", `{"name":"x","limits":{"instances":-1}}`, nil, 400, "zero (unlimited) or positive"},
		{"duplicate", "POST", "/1.0/projects", `{"name":"bank"}`, nil, 409, "already exists"},
		{"oversized body", "POST", "/1.0/projects", `{"name":"x","description":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "larger than"},
		{"long description", "POST", "/1.0/projects", `{"name":"x","description":"` + strings.Repeat("x", 2000) + `"}`, nil, 400, "longer than 1024"},
		{"unknown project patch", "PATCH", "/1.0/projects/nosuch", `{"description":"d"}`, nil, 404, "project nosuch not found"},
		{"stale if-match", "PATCH", "/1.0/projects/bank", `{"description":"d"}`, map[string]string{"If-Match": "1"}, 412, "changed"},
		{"delete default", "DELETE", "/1.0/projects/default", ``, nil, 400, "cannot be deleted"},
		{"unknown role", "POST", "/1.0/tokens", `{"identity":"alice","role":"root"}`, nil, 400, "unknown role"},
		{"operator without project", "POST", "/1.0/tokens", `{"identity":"alice","role":"operator"}`, nil, 400, "needs a project"},
		{"token for unknown project", "POST", "/1.0/tokens", `{"identity":"alice","role":"viewer","project":"nosuch"}`, nil, 404, "project nosuch not found"},
		{"bad expiry", "POST", "/1.0/tokens", `{"identity":"alice","role":"auditor","expires_in":"soon"}`, nil, 400, "expires_in"},
		{"bad identity name", "POST", "/1.0/tokens", `{"identity":"a b","role":"auditor"}`, nil, 400, "identity name"},
		{"bad backup name", "POST", "/1.0/backups", `{"name":"../etc"}`, nil, 400, "backup name"},
		{"unknown route", "POST", "/1.0/nothing", `{}`, nil, 404, "no API route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := td.Local.ListProjects(ctx)
			ids, _ := td.Local.ListIdentities(ctx)
			n := auditCount(t, td.Local)
			status, body := rawRequest(t, td, tt.method, tt.path, tt.body, tt.hdr)
			var e api.Error
			if status != tt.status || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tt.msg) || e.Code != tt.status {
				t.Fatalf("%s %s: status %d body %.200s; want %d with %q", tt.method, tt.path, status, body, tt.status, tt.msg)
			}
			after, _ := td.Local.ListProjects(ctx)
			ids2, _ := td.Local.ListIdentities(ctx)
			if !reflect.DeepEqual(before, after) || !reflect.DeepEqual(ids, ids2) {
				t.Fatalf("state changed by a rejected request")
			}
			// Every refused request to a known route leaves exactly one record.
			wantAudit := n + 1
			if tt.name == "unknown route" {
				wantAudit = n
			}
			if got := auditCount(t, td.Local); got != wantAudit {
				t.Fatalf("audit records %d -> %d, want %d (exactly the refusal)", n, got, wantAudit)
			}
		})
	}
}

func TestEventsStream(t *testing.T) {
	td := dt.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := td.Local.Events(ctx, "lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	td.MustProject(t, "securities", false)
	for ev := range ch {
		if ev.Action == "project-created" && ev.Project == "securities" && ev.Metadata["request_id"] != "" {
			return
		}
	}
	t.Fatal("event stream ended without project-created")
}

func TestBackupOperation(t *testing.T) {
	td := dt.Start(t)
	ctx := context.Background()
	td.MustProject(t, "bank", false)
	op, err := td.Local.Backup(ctx, "nightly")
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	final, err := td.Local.WaitOperation(ctx, op.ID, func(o api.Operation) { seen = append(seen, o.Progress) })
	if err != nil || final.Status != api.OperationSuccess || final.Progress != 100 || !strings.Contains(final.Message, "sha256") {
		t.Fatalf("backup operation = %+v, %v", final, err)
	}
	if seen[len(seen)-1] != 100 {
		t.Fatalf("progress never reached 100: %v", seen)
	}
	if _, err := td.Local.Backup(ctx, "nightly"); client.StatusOf(err) != 409 {
		t.Fatalf("second backup with the same name: %v, want 409", err)
	}
	if _, err := td.Local.GetOperation(ctx, "nosuch", 0); client.StatusOf(err) != 404 {
		t.Fatalf("unknown operation: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	td := dt.Start(t)
	td.MustProject(t, "bank", false)
	var raw []byte
	if err := td.Local.Do(context.Background(), "GET", "/1.0/metrics", nil, &raw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`finvirt_api_requests_total{code="201",method="POST",route="/1.0/projects"} 1`,
		`finvirt_objects{kind="project"} 2`,
		`finvirt_api_request_duration_seconds_bucket{method="POST",route="/1.0/projects"`,
		`finvirt_objects{kind="audit_record"} 1`,
	} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	td := dt.Start(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := td.Local.Do(context.Background(), "GET", "/1.0/openapi.json", nil, &doc); err != nil {
		t.Fatal(err)
	}
	documented := 0
	for path, methods := range doc.Paths {
		for method := range methods {
			documented++
			concrete := daemon.PathParamRe.ReplaceAllString(path, "probe")
			if strings.HasSuffix(path, "/events") {
				continue // a stream; checked by TestEventsStream
			}
			status, body := rawRequest(t, td, strings.ToUpper(method), concrete, `{}`, nil)
			if status == http.StatusMethodNotAllowed || strings.Contains(body, "no API route") {
				t.Errorf("documented %s %s is not served: %d %s", method, path, status, body)
			}
		}
	}
	if documented != len(td.D.Routes()) {
		t.Fatalf("OpenAPI documents %d operations, daemon serves %d", documented, len(td.D.Routes()))
	}
	// And an undocumented path really is refused.
	if status, body := rawRequest(t, td, "GET", "/1.0/undocumented", "", nil); status != 404 || !strings.Contains(body, "no API route") {
		t.Fatalf("undocumented path: %d %s", status, body)
	}
	_ = fmt.Sprint
}
