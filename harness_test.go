package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
)

// testAdminKey is the admin API key every test server accepts.
const testAdminKey = "test-admin-key-0123456789abcdef"

// testSecret keys the one-time codes of every test server.
const testSecret = "test-secret-0123456789abcdef"

// testServer is the whole service, wired as `serve` wires it, behind an
// httptest server: tests talk to it over real HTTP.
type testServer struct {
	URL string
	app *app
}

// newTestServer starts the service on dsn (migrated first when PostgreSQL).
// change may adjust the config.
func newTestServer(t testing.TB, dsn string, change func(*Config)) *testServer {
	t.Helper()
	cfg := defaultConfig()
	cfg.DSN = dsn
	cfg.Admin.APIKeys = []string{testAdminKey}
	// A secret of its own, so no test writes one into ./data.
	cfg.Secrets.Default = []string{testSecret}
	// Cheap hashes keep tests fast; the default parameters have benchmarks.
	cfg.Hashers.Argon2 = Argon2Config{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	if change != nil {
		change(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dsn, "sqlite") {
		dbtest.Open(t, dsn) // serve refuses an unmigrated PostgreSQL
	}
	a, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(testLogOut(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	return &testServer{URL: srv.URL, app: a}
}

// syncCache waits until the server's session cache has seen every change
// committed so far, for tests that write to the database behind its back.
func (s *testServer) syncCache(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.app.store.SyncSessionCache(ctx); err != nil {
		t.Fatalf("sync the session cache: %v", err)
	}
}

// eachServer runs fn against a fresh server on every database.
func eachServer(t *testing.T, fn func(t *testing.T, s *testServer)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) {
		fn(t, newTestServer(t, dsn, nil))
	})
}

// gqlResponse is a GraphQL answer.
type gqlResponse struct {
	Status int
	Header http.Header
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// code returns the extensions.code of error i.
func (r *gqlResponse) code(i int) string {
	if i >= len(r.Errors) {
		return ""
	}
	c, _ := r.Errors[i].Extensions["code"].(string)
	return c
}

// codes lists every error code, in order.
func (r *gqlResponse) codes() []string {
	out := make([]string, len(r.Errors))
	for i := range r.Errors {
		out[i] = r.code(i)
	}
	return out
}

// decode unmarshals data into v.
func (r *gqlResponse) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// gql POSTs a GraphQL request with the bearer token (none when empty).
func (s *testServer) gql(t *testing.T, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.do(t, req)
}

// admin is gql with the admin key, failing on any top-level error.
func (s *testServer) admin(t *testing.T, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	r := s.gql(t, testAdminKey, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("admin request failed: %+v", r.Errors)
	}
	return r
}

func (s *testServer) do(t *testing.T, req *http.Request) *gqlResponse {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &gqlResponse{Status: resp.StatusCode, Header: resp.Header}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("HTTP %d, body is not JSON: %q", resp.StatusCode, raw)
	}
	return out
}

// testLogOut is where test servers log: stderr with IDENTITYD_TEST_LOG=1
// (to see why a request failed), nowhere otherwise.
func testLogOut() io.Writer {
	if os.Getenv("IDENTITYD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
