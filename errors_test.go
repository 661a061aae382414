package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// These tests hold the server to saying what went wrong in words a client
// or an operator can act on: a client's mistake is a client error that says
// what to send instead, and start-up says what is wrong with a schema and
// where.

// logRecords is a slog.Handler that keeps every record, for tests that want
// to know what was logged and at which level.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// at returns the messages logged at exactly level.
func (l *logRecords) at(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level == level {
			out = append(out, r.Message)
		}
	}
	return out
}

// newLoggedServer is newTestServer on SQLite with the server's log kept.
func newLoggedServer(t *testing.T, change func(*Config)) (*testServer, *logRecords) {
	t.Helper()
	cfg := defaultConfig()
	cfg.DSN = dbtest.NewSQLite(t)
	cfg.Admin.APIKeys = []string{testAdminKey}
	cfg.Hashers.Argon2 = Argon2Config{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	if change != nil {
		change(&cfg)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logRecords{}
	a, err := newApp(context.Background(), cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.handler)
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	return &testServer{URL: srv.URL, app: a}, logs
}

// TestIntrospectionOffIsAClientError: with serve.introspection off, an
// introspection query (GraphiQL's, say) is the client's error, 422 with
// INTROSPECTION_DISABLED and a message naming the config key, and nothing
// is logged at error level. It was an INTERNAL_SERVER_ERROR, logged as a
// failed resolver.
func TestIntrospectionOffIsAClientError(t *testing.T) {
	s, logs := newLoggedServer(t, func(c *Config) { c.Serve.Introspection = false })
	r := s.gql(t, "", `{ __schema { queryType { name } } }`, nil)
	if r.code(0) != "INTROSPECTION_DISABLED" || len(r.Errors) != 1 {
		t.Fatalf("codes %v (%+v), want [INTROSPECTION_DISABLED]", r.codes(), r.Errors)
	}
	if msg := r.Errors[0].Message; !strings.Contains(msg, "introspection is disabled on this server") || !strings.Contains(msg, "serve.introspection") {
		t.Errorf("message %q does not say introspection is off and which key turns it on", msg)
	}
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("status %d, want 422", r.Status)
	}
	if errs := logs.at(slog.LevelError); len(errs) > 0 {
		t.Errorf("logged at error level: %q", errs)
	}
	if ok := s.gql(t, "", `{ __typename identitySchemas { id } }`, nil); len(ok.Errors) > 0 {
		t.Errorf("an ordinary query with introspection off: %+v", ok.Errors)
	}
}

// syncBuffer is a bytes.Buffer safe to write from the server's goroutine
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// serveBanner runs `serve` in process with env on top of a temporary
// SQLite database and a free port, and returns what it printed once it is
// listening, and its log.
func serveBanner(t *testing.T, env map[string]string) (stdout, stderr string) {
	t.Helper()
	vars := map[string]string{
		"DSN":            "sqlite://" + filepath.Join(t.TempDir(), "identity.db"),
		"SERVE_ADDRESS":  "127.0.0.1:0",
		"ADMIN_API_KEYS": testAdminKey,
		// Set, so that serve leaves the test process's runtime alone.
		"GOGC": "100", "GOMEMLIMIT": "off",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve"}, &out, &errOut, envOf(vars)) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "GraphQL endpoint") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d: %s%s", code, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve printed no banner: %s%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited with %d: %s", code, errOut.String())
	}
	return out.String(), errOut.String()
}

// TestBannerSaysThePlaygroundNeedsIntrospection: with introspection off the
// start-up banner still says where the playground is, and that it needs
// serve.introspection: true; with it on (the default), the line is as
// before.
func TestBannerSaysThePlaygroundNeedsIntrospection(t *testing.T) {
	off, _ := serveBanner(t, map[string]string{"SERVE_INTROSPECTION": "false"})
	line := bannerLine(off, "GraphQL playground:")
	if !strings.Contains(line, "needs introspection") || !strings.Contains(line, "serve.introspection: true") {
		t.Errorf("introspection off: playground line %q does not say it needs serve.introspection: true\n%s", line, off)
	}
	on, _ := serveBanner(t, nil)
	if line := bannerLine(on, "GraphQL playground:"); line == "" || strings.Contains(line, "introspection") {
		t.Errorf("introspection on: playground line %q\n%s", line, on)
	}
}

func bannerLine(out, prefix string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestSchemaWithoutPasswordIdentifierWarns: start-up warns, once for each
// schema, about a configured schema that marks no login identifier for
// passwords (register will refuse passwords for it), and about no other.
func TestSchemaWithoutPasswordIdentifierWarns(t *testing.T) {
	_, logs := newLoggedServer(t, func(c *Config) {
		c.Identity.Schemas = append(c.Identity.Schemas,
			schemas.Source{ID: "staff", URL: "preset://blank"}, schemas.Source{ID: "customer", URL: "preset://username"}, schemas.Source{ID: "guest", URL: "preset://blank"})
	})
	var got []string
	for _, m := range logs.at(slog.LevelWarn) {
		if strings.Contains(m, "password login identifier") {
			got = append(got, m)
		}
	}
	want := []string{
		`identity schema "staff" has no password login identifier: register will refuse passwords for it`,
		`identity schema "guest" has no password login identifier: register will refuse passwords for it`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("warnings %q\nwant %q", got, want)
	}
}

// TestSchemaJSONErrorAtStart: a schema file that is not JSON stops the start
// naming the schema, its url, and the line and column of the mistake.
func TestSchemaJSONErrorAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "customer.schema.json")
	if err := os.WriteFile(path, []byte("{\n  \"type\": \"object\",\n  \"properties\": {\"traits\": {\"type\": \"object\"}},,\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.ToSlash(path)
	vars := map[string]string{
		"DSN":                        "sqlite://" + filepath.Join(t.TempDir(), "identity.db"),
		"ADMIN_API_KEYS":             testAdminKey,
		"IDENTITY_SCHEMAS":           `[{"id": "customer", "url": "` + url + `"}]`,
		"IDENTITY_DEFAULT_SCHEMA_ID": "customer",
		"SERVE_ADDRESS":              "127.0.0.1:0",
		"GOGC":                       "100", "GOMEMLIMIT": "off",
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"serve"}, &out, &errOut, envOf(vars)); code == 0 {
		t.Fatalf("serve started on a broken schema: %s", out.String())
	}
	want := `identity schema "customer" (` + url + `): invalid JSON at line 3, column 48: invalid character ','`
	if !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q\nwant it to contain %q", errOut.String(), want)
	}
}

// TestPostThatIsNotOneJSONRequest: a POST whose media type is not
// application/json answers 415 saying what is taken (application/json, or
// GET with query parameters for queries); a batch and a broken body answer
// 400 in words, without Go type names and without repeating the body.
func TestPostThatIsNotOneJSONRequest(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	post := func(contentType, body string) *gqlResponse {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return s.do(t, req)
	}
	query := `{"query":"{ identitySchemas { id } }"}`
	for _, ct := range []string{"text/plain", "", "application/x-www-form-urlencoded"} {
		r := post(ct, query)
		if r.Status != http.StatusUnsupportedMediaType || len(r.Errors) != 1 {
			t.Fatalf("Content-Type %q: %d %+v, want 415", ct, r.Status, r.Errors)
		}
		msg := r.Errors[0].Message
		if !strings.Contains(msg, "application/json") || !strings.Contains(msg, "GET and query parameters") || strings.Contains(msg, "transport not supported") {
			t.Errorf("Content-Type %q: message %q does not say what is taken", ct, msg)
		}
	}

	const secret = "correct-horse-battery-staple"
	for body, says := range map[string]string{
		`[{"query":"mutation { login(input: {identifier: \"a@example.com\", password: \"` + secret + `\"}) { sessionToken } }"}]`:                 "batched requests (a JSON array) are not supported: send one operation per request",
		`{"query":"mutation($p: String!) { login(input: {identifier: \"a\", password: $p}) { sessionToken } }","variables":{"p":` + secret + `}}`: "the request body is not valid JSON (it breaks at line 1, column",
		`{"query":["` + secret + `"]}`: `"query" in the request body must be a string, not an array`,
	} {
		r := post("application/json", body)
		if r.Status != http.StatusBadRequest || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, says) {
			t.Errorf("%.50s…: %d %+v, want 400 saying %q", body, r.Status, r.Errors, says)
			continue
		}
		raw, _ := json.Marshal(r.Errors)
		for _, leak := range []string{secret, "Go value", "graphql.RawParams", "unmarshal"} {
			if bytes.Contains(raw, []byte(leak)) {
				t.Errorf("%.50s…: answer %s shows %q", body, raw, leak)
			}
		}
	}
}

// TestInlineBigNumbersAreBadUserInput: a number written inline that cannot
// be kept exactly is BAD_USER_INPUT suggesting a variable, wherever it
// stands: in a JSON argument, deep in an object or list literal inside an
// input object, in a directive's argument. README promises it; the
// server's own test still let GRAPHQL_VALIDATION_FAILED pass.
func TestInlineBigNumbersAreBadUserInput(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	for _, q := range []string{
		`mutation { createIdentity(input: {traits: {n: 123456789012345678901234567890}}) { identity { id } } }`,
		`mutation { createIdentity(input: {traits: {email: "a@example.com", tags: [{n: [1e400]}]}}) { identity { id } } }`,
		`mutation { createIdentity(input: {traits: {email: "b@example.com"}, metadataPublic: {n: 3.14159265358979323846264338327950288}}) { identity { id } } }`,
		`mutation { createIdentity(input: {traits: {email: "c@example.com"}, metadataAdmin: [0.1, -123456789012345678901234567890]}) { identity { id } } }`,
		`query($j: JSON = {a: {b: 123456789012345678901234567890}}) { identitySchemas { id } }`,
		`{ identitySchemas @include(if: 123456789012345678901234567890) { id } }`,
		`{ ...F } fragment F on Query { identitySchemas @skip(if: {n: 1e400}) { id } }`,
	} {
		r := s.gql(t, testAdminKey, q, nil)
		if r.code(0) != "BAD_USER_INPUT" || len(r.Errors) != 1 {
			t.Errorf("%s\n  codes %v (%+v), want [BAD_USER_INPUT]", q, r.codes(), r.Errors)
			continue
		}
		if msg := r.Errors[0].Message; !strings.Contains(msg, "cannot be kept exactly") || !strings.Contains(msg, "in a variable") {
			t.Errorf("%s\n  message %q does not suggest a variable", q, msg)
		}
	}
	list := s.admin(t, `{ identities { edges { node { id } } } }`, nil)
	if strings.Contains(string(list.Data), `"node"`) {
		t.Errorf("a refused mutation ran: %s", list.Data)
	}
}
