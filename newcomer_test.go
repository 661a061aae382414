package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// TestRegisterNeedsALoginIdentifier: a schema with no password identifier
// (preset://blank) cannot make accounts nobody can sign in to again; the
// admin API refuses such a password too, and nothing is stored.
func TestRegisterNeedsALoginIdentifier(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, func(c *Config) {
			c.Identity.Schemas = []schemas.Source{{ID: "default", URL: "preset://email"}, {ID: "blank", URL: "preset://blank"}}
		})
		out := s.register(t, map[string]any{"schemaId": "blank", "traits": map[string]any{}, "password": pw1})
		if len(out.UserErrors) != 1 || out.UserErrors[0].Code != "VALIDATION_FAILED" || out.UserErrors[0].Path == nil || *out.UserErrors[0].Path != "/traits" || out.SessionToken != nil {
			t.Fatalf("register on a schema without identifiers: %+v", out)
		}
		r := s.admin(t, `mutation { createIdentity(input: {schemaId: "blank", traits: {}, credentials: {password: {password: "`+pw1+`"}}}) { identity { id } userErrors { code path } } }`, nil)
		var got struct {
			CreateIdentity struct {
				Identity   *struct{ ID string }
				UserErrors []userError
			}
		}
		r.decode(t, &got)
		if got.CreateIdentity.Identity != nil || len(got.CreateIdentity.UserErrors) != 1 || got.CreateIdentity.UserErrors[0].Code != "VALIDATION_FAILED" {
			t.Fatalf("admin create with a password and no identifier: %+v", got.CreateIdentity)
		}
		r = s.admin(t, `{ identities(first: 10, filter: {schemaId: "blank"}) { edges { node { id } } } }`, nil)
		if string(r.Data) != `{"identities":{"edges":[]}}` {
			t.Fatalf("something was stored: %s", r.Data)
		}
		// Without a password a blank identity is fine (an admin may hold it).
		r = s.admin(t, `mutation { createIdentity(input: {schemaId: "blank", traits: {}}) { identity { id } userErrors { code } } }`, nil)
		r.decode(t, &got)
		if got.CreateIdentity.Identity == nil {
			t.Fatalf("a blank identity without a password: %+v", got.CreateIdentity)
		}
	})
}

// TestAuthorizationShapeIsExplained: a token without "Bearer ", Basic auth
// or an empty bearer gets a message that says what header shape is expected,
// and never repeats what was sent.
func TestAuthorizationShapeIsExplained(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	for _, tc := range []struct{ header, want string }{
		{testAdminKey, "has no scheme"},
		{"Basic dXNlcjpwYXNz", "Basic scheme"},
		{"Bearer ", "Bearer token is empty"},
		{"Secretish " + testAdminKey, "a scheme other than Bearer"},
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", strings.NewReader(`{"query":"{ identities(first: 1) { edges { cursor } } whoami { id } }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", tc.header)
		r := s.do(t, req)
		if len(r.Errors) == 0 || r.code(0) != "UNAUTHENTICATED" {
			t.Fatalf("%q: %+v", tc.header, r.Errors)
		}
		for _, e := range r.Errors {
			if !strings.Contains(e.Message, `Authorization: Bearer <admin API key or session token>`) || !strings.Contains(e.Message, tc.want) {
				t.Errorf("%q: message %q, want the expected shape and %q", tc.header, e.Message, tc.want)
			}
			if strings.Contains(e.Message, "dXNlcjpwYXNz") || strings.Contains(e.Message, "Secretish") || strings.Contains(e.Message, testAdminKey) {
				t.Errorf("%q: the message repeats what was sent: %q", tc.header, e.Message)
			}
		}
	}
}
