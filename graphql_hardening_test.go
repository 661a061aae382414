//go:build unix

// The CPU check reads getrusage(2), which Windows does not have.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/graph/hostile"
)

// hostileTimeout is how long a hostile request may take to be refused:
// generous (a refusal takes microseconds to milliseconds), but the shapes
// below kept a core busy for seconds to minutes before the limits.
const hostileTimeout = 5 * time.Second

// TestGraphQLHardening sends each hostile document shape over real HTTP to
// a server with the default limits and wants a quick client error naming
// the limit and its config key, and the server's CPU idle right after (the
// old fragment bomb kept a core busy after its client had gone). These
// shapes are refused before a resolver runs, so one database (SQLite)
// stands for both; TestGraphQLAdminImportBody, which writes, runs on each.
func TestGraphQLHardening(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	query := func(q string) []byte {
		b, _ := json.Marshal(map[string]any{"query": q})
		return b
	}
	manyVars := map[string]any{}
	for i := range 20000 {
		manyVars[fmt.Sprint("v", i)] = i
	}
	sentVars, _ := json.Marshal(map[string]any{"query": "{ __typename }", "variables": manyVars})
	tests := []struct {
		name   string
		body   []byte
		admin  bool
		status int
		code   string
		key    string
	}{
		{"fragment bomb, query", query(hostile.FragmentBomb("query", "Query", 30)), false, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_fields (1000)"},
		{"fragment bomb, mutation", query(hostile.FragmentBomb("mutation", "Mutation", 30)), false, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_fields (1000)"},
		{"fragment bomb, admin", query(hostile.FragmentBomb("query", "Query", 30)), true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_fields (1000)"},
		{"10,000 __typename", query("{" + strings.Repeat(" __typename", 10000) + " }"), false, 413, "QUERY_TOO_LARGE", "graphql.limits.max_body_bytes (65536 bytes)"},
		{"10,000 __typename, admin", query("{" + strings.Repeat(" __typename", 10000) + " }"), true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_fields (1000)"},
		{"20,000 __typename, admin", query("{" + strings.Repeat(" __typename", 20000) + " }"), true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_fields (1000)"},
		{"20,000 variables declared, admin", query(hostile.Variables(20000)), true, 422, "QUERY_TOO_LARGE", "graphql.limits.admin_max_tokens (50000)"},
		{"10,000 variables declared, admin", query(hostile.Variables(10000)), true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_variables (50)"},
		{"20,000 variables sent, admin", sentVars, true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_variables (50)"},
		{"deep nesting", query(strings.Repeat("{ whoami ", 500) + strings.Repeat("}", 500)), false, 422, "QUERY_TOO_DEEP", "graphql.limits.max_depth"},
		{"many aliases", query(`{ identitySchemas {` + strings.Repeat(" a: id b: id c: id d: id", 50) + ` } }`), false, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_aliases (15)"},
		{"many aliases, admin", query(`{ identitySchemas {` + strings.Repeat(" a: id b: id c: id d: id", 50) + ` } }`), true, 422, "QUERY_TOO_COMPLEX", "graphql.limits.admin_max_aliases (100)"},
		{"many directives", query(`{ __typename` + strings.Repeat(" @skip(if: false)", 50) + ` }`), false, 422, "QUERY_TOO_COMPLEX", "graphql.limits.max_directives (5)"},
		{"over-size body", []byte(`{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("a", 100<<10) + `"}}`), false, 413, "QUERY_TOO_LARGE", "graphql.limits.max_body_bytes (65536 bytes)"},
		{"over-size admin body", []byte(`{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("a", 9<<20) + `"}}`), true, 413, "QUERY_TOO_LARGE", "graphql.limits.admin_max_body_bytes (8388608 bytes)"},
		{"huge token count", query("{ a" + strings.Repeat(" b", 20000) + " }"), false, 422, "QUERY_TOO_LARGE", "graphql.limits.max_tokens (5000)"},
		{"huge token count, admin", query("{ a" + strings.Repeat(" b", 60000) + " }"), true, 422, "QUERY_TOO_LARGE", "graphql.limits.admin_max_tokens (50000)"},
		{"fragment cycle", query(`{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`), false, 422, "GRAPHQL_VALIDATION_FAILED", "within itself"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := ""
			if tc.admin {
				token = testAdminKey
			}
			r, took := hostilePost(t, s, token, tc.body)
			if r.Status != tc.status || r.code(0) != tc.code || !strings.Contains(r.Errors[0].Message, tc.key) {
				t.Errorf("%d %+v, want %d %s naming %q", r.Status, r.Errors, tc.status, tc.code, tc.key)
			}
			if len(r.Data) > 0 && string(r.Data) != "null" {
				t.Errorf("data %s: nothing may run", r.Data)
			}
			t.Logf("refused in %v", took)
			assertCPUIdle(t)
		})
	}
	// The limits leave room for what clients send: the playground's
	// introspection and a plain query.
	for _, q := range []string{hostile.GraphiQLIntrospection, `{ identitySchemas { id } }`} {
		r, _ := hostilePost(t, s, "", query(q))
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Errorf("%.30q: %d %+v", q, r.Status, r.Errors)
		}
	}
}

// TestGraphQLAdminImportBody: an admin's import, larger than the public body
// limit, goes through (the identities travel in a variable, which costs no
// tokens), and the same body from anyone else is refused with 413.
func TestGraphQLAdminImportBody(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		in := make([]map[string]any, 1000)
		for i := range in {
			in[i] = map[string]any{
				"schemaId":       "default",
				"traits":         map[string]any{"email": fmt.Sprintf("import%04d@example.com", i)},
				"metadataPublic": map[string]any{"note": strings.Repeat("n", 100)},
			}
		}
		body, _ := json.Marshal(map[string]any{
			"query":     `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { id } userErrors { code } } } }`,
			"variables": map[string]any{"in": in},
		})
		if len(body) <= 64<<10 {
			t.Fatalf("the import is %d bytes, not over the public limit", len(body))
		}
		r, _ := hostilePost(t, s, "", body)
		if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(r.Errors[0].Message, "graphql.limits.max_body_bytes") {
			t.Errorf("anonymous import of %d bytes: %d %+v, want 413", len(body), r.Status, r.Errors)
		}
		r, _ = hostilePost(t, s, testAdminKey, body)
		var out struct {
			ImportIdentities struct {
				Results []struct {
					Identity   *struct{ ID string }
					UserErrors []struct{ Code string }
				}
			}
		}
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("admin import of %d bytes: %d %+v", len(body), r.Status, r.Errors)
		}
		r.decode(t, &out)
		if n := len(out.ImportIdentities.Results); n != len(in) {
			t.Fatalf("%d results, want %d", n, len(in))
		}
		for i, res := range out.ImportIdentities.Results {
			if res.Identity == nil || len(res.UserErrors) > 0 {
				t.Fatalf("item %d: %+v", i, res)
			}
		}
	})
}

// hostilePost sends body with a client that gives up after hostileTimeout,
// failing the test then, and says how long the answer took.
func hostilePost(t *testing.T, s *testServer, token string, body []byte) (*gqlResponse, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: hostileTimeout}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("no answer within %v: %v", hostileTimeout, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	out := &gqlResponse{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("HTTP %d, body is not JSON: %.300q", resp.StatusCode, raw)
	}
	if len(out.Errors) == 0 && resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d without errors: %.300s", resp.StatusCode, raw)
	}
	return out, took
}

// assertCPUIdle watches the process's CPU time (user and system, every
// thread) over a short window and fails when it used more than half a core:
// an idle server uses next to none, a walk left running a whole one.
func assertCPUIdle(t *testing.T) {
	t.Helper()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	const window = 300 * time.Millisecond
	before, start := cpu(), time.Now()
	time.Sleep(window)
	used, wall := cpu()-before, time.Since(start)
	if used > wall/2 {
		t.Errorf("the server used %v of CPU in the %v after answering: work left running", used, wall.Round(time.Millisecond))
	}
}
