package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/identityd/identityd/db/dbtest"
)

func TestHealth(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		for _, path := range []string{"/health/alive", "/health/ready"} {
			resp, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
				t.Errorf("GET %s = %d %s, want 200 ok", path, resp.StatusCode, body)
			}
		}
	})
}

func TestIdentitySchemasArePublic(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		r := s.gql(t, "", `{ identitySchemas { id schema } one: identitySchema(id: "default") { id } none: identitySchema(id: "nope") { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("errors: %+v", r.Errors)
		}
		var got struct {
			IdentitySchemas []struct {
				ID     string
				Schema map[string]any
			}
			One  *struct{ ID string }
			None *struct{ ID string }
		}
		r.decode(t, &got)
		if len(got.IdentitySchemas) != 1 || got.IdentitySchemas[0].ID != "default" {
			t.Fatalf("identitySchemas = %+v, want [default]", got.IdentitySchemas)
		}
		if _, ok := got.IdentitySchemas[0].Schema["properties"]; !ok {
			t.Errorf("schema document has no properties: %v", got.IdentitySchemas[0].Schema)
		}
		if got.One == nil || got.One.ID != "default" || got.None != nil {
			t.Errorf("identitySchema: one=%+v none=%+v", got.One, got.None)
		}
	})
}

func TestWhoamiWithoutSessionIsUnauthenticated(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		for _, token := range []string{"", "not-a-session", testAdminKey} {
			r := s.gql(t, token, `{ whoami { id } identitySchemas { id } }`, nil)
			if got := r.codes(); len(got) != 1 || got[0] != "UNAUTHENTICATED" {
				t.Errorf("token %q: codes %v, want [UNAUTHENTICATED]", token, got)
			}
			if !strings.Contains(string(r.Data), `"whoami":null`) || !strings.Contains(string(r.Data), `"default"`) {
				t.Errorf("token %q: data %s: want whoami null and the rest intact", token, r.Data)
			}
		}
	})
}

func TestGetRunsQueriesButNeverMutations(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		q := url.Values{"query": {`{ identitySchemas { id } }`}}
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/graphql?"+q.Encode(), nil)
		if r := s.do(t, req); r.Status != 200 || len(r.Errors) > 0 {
			t.Fatalf("GET query: %d %+v", r.Status, r.Errors)
		}

		m := url.Values{"query": {`mutation { createIdentity(input: {traits: {email: "get@example.com"}}) { identity { id } } }`}}
		req, _ = http.NewRequest(http.MethodGet, s.URL+"/graphql?"+m.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		r := s.do(t, req)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Errorf("GET mutation: status %d Allow %q, want 405 POST", r.Status, r.Header.Get("Allow"))
		}
		list := s.admin(t, `{ identities { edges { node { id } } } }`, nil)
		if strings.Contains(string(list.Data), `"node"`) {
			t.Errorf("the GET mutation ran: %s", list.Data)
		}
	})
}

func TestGraphQLResponseContentType(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	body := `{"query":"{ identitySchemas { id } }"}`
	for _, tc := range []struct{ accept, want string }{
		{"application/graphql-response+json", "application/graphql-response+json"},
		{"application/json", "application/json"},
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", tc.accept)
		r := s.do(t, req)
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Accept %s: Content-Type %q, want %s", tc.accept, got, tc.want)
		}
	}
}

func TestQueryLimits(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.GraphQL.Limits.MaxDepth = 3
		c.GraphQL.Limits.MaxComplexity = 20
		c.GraphQL.Limits.MaxBodyBytes = 4096
		c.GraphQL.Limits.AdminMaxBodyBytes = 4096
	})
	tests := []struct {
		name, query, wantCode string
	}{
		{"depth", `{ whoami { identity { verifiableAddresses { id } } } }`, "QUERY_TOO_DEEP"},
		{"depth through fragments", `{ whoami { ...S } } fragment S on Session { identity { recoveryAddresses { id } } }`, "QUERY_TOO_DEEP"},
		{"complexity", `{ ` + strings.Repeat(`a%d: identitySchemas { id } `, 1) + `}`, ""},
		{"complexity over", `{ a: identitySchemas { id } b: identitySchemas { id } c: identitySchemas { id } d: identitySchemas { id } e: identitySchemas { id } f: identitySchemas { id } g: identitySchemas { id } h: identitySchemas { id } i: identitySchemas { id } j: identitySchemas { id } k: identitySchemas { id } }`, "COMPLEXITY_LIMIT_EXCEEDED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.query
			if strings.Contains(q, "%d") {
				q = fmt.Sprintf(q, 1)
			}
			r := s.gql(t, "", q, nil)
			if tc.wantCode == "" {
				if len(r.Errors) > 0 {
					t.Fatalf("errors %+v", r.Errors)
				}
				return
			}
			if r.code(0) != tc.wantCode {
				t.Fatalf("codes %v, want %s (%+v)", r.codes(), tc.wantCode, r.Errors)
			}
		})
	}
	t.Run("body limit", func(t *testing.T) {
		big := `{"query":"{ identitySchemas { id } }","variables":{"x":"` + strings.Repeat("a", 8000) + `"}}`
		resp, err := http.Post(s.URL+"/graphql", "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("oversized body: status %d, want a 4xx", resp.StatusCode)
		}
	})
}

func TestIntrospectionSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) { c.Serve.Introspection = on })
		r := s.gql(t, "", `{ __schema { queryType { name } } }`, nil)
		if got := len(r.Errors) == 0; got != on {
			t.Errorf("introspection %v: answered=%v errors=%+v", on, got, r.Errors)
		}
	}
}

// TestJSONNumbersStayExact sends big and precise numbers in variables (kept
// exactly, end to end) and inline (refused with BAD_USER_INPUT when the
// parser could not keep them, never an internal error).
func TestJSONNumbersStayExact(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		const create = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { metadataPublic metadataAdmin } userErrors { code path } } }`
		var in map[string]any
		dec := json.NewDecoder(strings.NewReader(`{"traits":{"email":"num@example.com"},"metadataPublic":{"big":9007199254740993,"huge":123456789012345678901234567890,"frac":0.1000000000000000055511151231257827},"metadataAdmin":[1.5,-0,1e400]}`))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			t.Fatal(err)
		}
		r := s.admin(t, create, map[string]any{"in": in})
		for _, want := range []string{"9007199254740993", "123456789012345678901234567890", "0.1000000000000000055511151231257827", "1e400"} {
			if !bytes.Contains(r.Data, []byte(want)) {
				t.Errorf("number %s did not come back as written: %s", want, r.Data)
			}
		}

		inline := []string{
			`mutation { createIdentity(input: {traits: {email: "a@example.com"}, metadataPublic: {n: 123456789012345678901234567890}}) { identity { id } } }`,
			`mutation { createIdentity(input: {traits: {email: "b@example.com"}, metadataPublic: {n: 3.14159265358979323846264338327950288}}) { identity { id } } }`,
			`mutation { createIdentity(input: {traits: {email: "c@example.com"}, metadataPublic: [1e400]}) { identity { id } } }`,
		}
		for _, q := range inline {
			// Inside an input object the GraphQL validator refuses the
			// literal itself; as a direct JSON argument our guard does. Either
			// way it is the client's error, never an internal one.
			r := s.gql(t, testAdminKey, q, nil)
			if c := r.code(0); c != "BAD_USER_INPUT" && c != "GRAPHQL_VALIDATION_FAILED" {
				t.Errorf("inline literal: codes %v (%+v), want BAD_USER_INPUT or GRAPHQL_VALIDATION_FAILED", r.codes(), r.Errors)
			}
		}
		ok := s.admin(t, `mutation { createIdentity(input: {traits: {email: "d@example.com"}, metadataPublic: {n: 9007199254740993, f: 0.1}}) { identity { metadataPublic } } }`, nil)
		if !bytes.Contains(ok.Data, []byte("9007199254740993")) || !bytes.Contains(ok.Data, []byte("0.1")) {
			t.Errorf("representable inline numbers changed: %s", ok.Data)
		}
	})
}

// TestConcurrentSQLiteWritersNeverSeeLocked runs many writers at once on the
// embedded database: every write succeeds, none reports "database is locked".
func TestConcurrentSQLiteWritersNeverSeeLocked(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	const n = 48
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			r := s.gql(t, testAdminKey, `mutation($e: JSON!) { createIdentity(input: {traits: $e}) { identity { id } userErrors { code } } }`,
				map[string]any{"e": map[string]any{"email": fmt.Sprintf("c%d@example.com", i)}})
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"userErrors":[]`) {
				errs <- fmt.Sprintf("%s %+v", r.Data, r.Errors)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestPlaygroundIsServed(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	resp, err := http.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(string(body)), "graphiql") {
		t.Fatalf("GET / = %d, body without graphiql", resp.StatusCode)
	}
}
