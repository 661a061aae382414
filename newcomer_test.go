package main

import (
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
