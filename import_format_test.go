package main

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// The import format, whole: every field Kratos's admin import takes, through
// GraphQL, on every database.

// noValidateSchema marks an email and a phone trait for verification and
// recovery with formats that turn the channel check off: "no-validate", and
// "noformat" (the name Kratos's own code registers).
const noValidateSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string",
          "format": "no-validate",
          "ory.sh/kratos": {
            "credentials": { "password": { "identifier": true } },
            "verification": { "via": "email" },
            "recovery": { "via": "email" }
          }
        },
        "phone": {
          "type": "string",
          "format": "noformat",
          "ory.sh/kratos": { "verification": { "via": "sms" } }
        }
      }
    }
  }
}`

// importFormatFragment selects an identity with its external id.
const importFormatFragment = `
fragment G on Identity {
  id externalId schemaId state traits
  credentials { type identifiers }
  verifiableAddresses { id value via verified status verifiedAt }
  recoveryAddresses { id value via }
}`

const (
	qfCreate = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { ...G } userErrors { code message path } } }` + importFormatFragment
	qfUpdate = `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { identity { ...G } userErrors { code message path } } }` + importFormatFragment
	qfPatch  = `mutation($id: UUID!, $patch: [JSONPatchOperation!]!) { patchIdentity(id: $id, patch: $patch) { identity { ...G } userErrors { code message path } } }` + importFormatFragment
	qfImport = `mutation($in: [CreateIdentityInput]!) { importIdentities(input: $in) { results { index identity { ...G } userErrors { code message path } } } }` + importFormatFragment
	qfByExt  = `query($x: String!) { identityByExternalId(externalId: $x) { ...G } }` + importFormatFragment
	qfList   = `query($filter: IdentityFilter) { identities(first: 100, filter: $filter) { edges { node { ...G } } } }` + importFormatFragment
)

type fmtAddress struct {
	ID, Value, Via, Status string
	Verified               bool
	VerifiedAt             *time.Time
}

type fmtIdentity struct {
	ID          string
	ExternalID  *string
	SchemaID    string
	State       string
	Traits      map[string]any
	Credentials []struct {
		Type        string
		Identifiers []string
	}
	VerifiableAddresses []fmtAddress
	RecoveryAddresses   []struct{ ID, Value, Via string }
}

// verifiable finds the verifiable address via:value.
func (i *fmtIdentity) verifiable(via, value string) *fmtAddress {
	for k := range i.VerifiableAddresses {
		if a := &i.VerifiableAddresses[k]; a.Via == via && a.Value == value {
			return a
		}
	}
	return nil
}

func (i *fmtIdentity) recovery() []string {
	var out []string
	for _, a := range i.RecoveryAddresses {
		out = append(out, a.Via+":"+a.Value)
	}
	slices.Sort(out)
	return out
}

func (i *fmtIdentity) identifiers(typ string) []string {
	for _, c := range i.Credentials {
		if c.Type == typ {
			return c.Identifiers
		}
	}
	return nil
}

type fmtPayload struct {
	Identity   *fmtIdentity
	UserErrors []adminUserError
}

func fmtMutate(t *testing.T, s *testServer, query, name string, vars map[string]any) fmtPayload {
	t.Helper()
	var p fmtPayload
	dataField(t, adminPost(t, s, query, vars), name, &p)
	if (p.Identity != nil) == (len(p.UserErrors) > 0) {
		t.Fatalf("%s: identity %v with userErrors %v: want exactly one of them", name, p.Identity != nil, errorsAt(p.UserErrors))
	}
	return p
}

func fmtCreate(t *testing.T, s *testServer, in map[string]any) fmtPayload {
	t.Helper()
	return fmtMutate(t, s, qfCreate, "createIdentity", map[string]any{"in": in})
}

func fmtMustCreate(t *testing.T, s *testServer, in map[string]any) fmtIdentity {
	t.Helper()
	p := fmtCreate(t, s, in)
	if p.Identity == nil {
		t.Fatalf("createIdentity(%v): %v", in, errorsAt(p.UserErrors))
	}
	return *p.Identity
}

func fmtUpdate(t *testing.T, s *testServer, id string, in map[string]any) fmtPayload {
	t.Helper()
	return fmtMutate(t, s, qfUpdate, "updateIdentity", map[string]any{"id": id, "in": in})
}

func fmtPatch(t *testing.T, s *testServer, id string, ops ...map[string]any) fmtPayload {
	t.Helper()
	return fmtMutate(t, s, qfPatch, "patchIdentity", map[string]any{"id": id, "patch": ops})
}

type fmtResult struct {
	Index      int
	Identity   *fmtIdentity
	UserErrors []adminUserError
}

func fmtImport(t *testing.T, s *testServer, in []any) []fmtResult {
	t.Helper()
	var p struct{ Results []fmtResult }
	dataField(t, adminPost(t, s, qfImport, map[string]any{"in": in}), "importIdentities", &p)
	if len(p.Results) != len(in) {
		t.Fatalf("import of %d items: %d results", len(in), len(p.Results))
	}
	return p.Results
}

func fmtByExternalID(t *testing.T, s *testServer, x string) *fmtIdentity {
	t.Helper()
	var out *fmtIdentity
	dataField(t, adminPost(t, s, qfByExt, map[string]any{"x": x}), "identityByExternalId", &out)
	return out
}

func fmtList(t *testing.T, s *testServer, filter map[string]any) []fmtIdentity {
	t.Helper()
	var c struct{ Edges []struct{ Node fmtIdentity } }
	dataField(t, adminPost(t, s, qfList, map[string]any{"filter": filter}), "identities", &c)
	out := make([]fmtIdentity, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

func wantErrors(t *testing.T, what string, got []adminUserError, want ...string) {
	t.Helper()
	if g := errorsAt(got); !slices.Equal(g, want) {
		t.Errorf("%s: userErrors %v, want %v (%+v)", what, g, want, got)
	}
	for _, e := range got {
		if e.Message == "" {
			t.Errorf("%s: %s without a message", what, e.at())
		}
	}
}

// eachImportFormatServer runs fn on every database against a server with
// the default email schema and the blank, sms and no-validate ones.
func eachImportFormatServer(t *testing.T, fn func(t *testing.T, s *testServer)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) {
		fn(t, newTestServer(t, dsn, func(c *Config) {
			c.Identity.Schemas = append(c.Identity.Schemas,
				schemas.Source{ID: "blank", URL: "preset://blank"},
				schemas.Source{ID: "sms", URL: "preset://sms"},
				schemas.Source{ID: "novalidate", URL: "base64://" + base64.StdEncoding.EncodeToString([]byte(noValidateSchema))})
		}))
	})
}

func email(addr string) map[string]any { return map[string]any{"email": addr} }

func TestImportFormatExternalID(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		a := fmtMustCreate(t, s, map[string]any{"traits": email("a@example.com"), "externalId": "auth0|Ext-1",
			"credentials": map[string]any{"password": map[string]any{"password": "a long enough password"}}})
		if a.ExternalID == nil || *a.ExternalID != "auth0|Ext-1" {
			t.Fatalf("created externalId %v, want auth0|Ext-1", a.ExternalID)
		}
		fmtMustCreate(t, s, map[string]any{"traits": email("none@example.com")})
		fmtMustCreate(t, s, map[string]any{"traits": email("empty@example.com"), "externalId": ""})

		t.Run("found exactly", func(t *testing.T) {
			if got := fmtByExternalID(t, s, "auth0|Ext-1"); got == nil || got.ID != a.ID {
				t.Errorf("identityByExternalId: %+v, want %s", got, a.ID)
			}
			for _, x := range []string{"auth0|ext-1", "auth0|Ext-1 ", "", "nobody", "a\x00b", strings.Repeat("x", 300)} {
				if got := fmtByExternalID(t, s, x); got != nil {
					t.Errorf("identityByExternalId(%q) = %s, want null", x, got.ID)
				}
			}
			got := fmtList(t, s, map[string]any{"externalId": "auth0|Ext-1"})
			if len(got) != 1 || got[0].ID != a.ID {
				t.Errorf("filter externalId: %v, want [%s]", got, a.ID)
			}
			if got := fmtList(t, s, map[string]any{"externalId": "auth0|Ext-1", "state": "INACTIVE"}); len(got) != 0 {
				t.Errorf("filter externalId and state INACTIVE: %d identities, want none", len(got))
			}
			if got := fmtList(t, s, map[string]any{"externalId": ""}); len(got) != 0 {
				t.Errorf("filter externalId \"\": %d identities, want none (empty is unset)", len(got))
			}
			if got := fmtList(t, s, nil); len(got) != 3 {
				t.Errorf("unfiltered: %d identities, want 3", len(got))
			}
		})

		t.Run("whoami shows it", func(t *testing.T) {
			token, _ := s.mustLogin(t, "a@example.com", "a long enough password")
			r := s.gql(t, token, `{ whoami { identity { externalId } } }`, nil)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"externalId":"auth0|Ext-1"`) {
				t.Errorf("whoami: %s %+v", r.Data, r.Errors)
			}
		})

		t.Run("unique", func(t *testing.T) {
			p := fmtCreate(t, s, map[string]any{"traits": email("b@example.com"), "externalId": "auth0|Ext-1"})
			wantErrors(t, "create with a taken external id", p.UserErrors, "IDENTIFIER_TAKEN /externalId")
			res := fmtImport(t, s, []any{
				map[string]any{"traits": email("i1@example.com"), "externalId": "dup"},
				map[string]any{"traits": email("i2@example.com"), "externalId": "dup"},
				map[string]any{"traits": email("i3@example.com"), "externalId": "auth0|Ext-1"},
				map[string]any{"traits": email("i4@example.com"), "externalId": "fine"},
			})
			if res[0].Identity == nil || res[3].Identity == nil {
				t.Fatalf("import: %+v", res)
			}
			wantErrors(t, "second of a duplicate in one batch", res[1].UserErrors, "IDENTIFIER_TAKEN /externalId")
			wantErrors(t, "taken before the batch", res[2].UserErrors, "IDENTIFIER_TAKEN /externalId")
		})

		t.Run("validated", func(t *testing.T) {
			for _, x := range []string{strings.Repeat("x", 256), "tab\there", "line\nbreak", "nul\x00"} {
				p := fmtCreate(t, s, map[string]any{"traits": email("v@example.com"), "externalId": x})
				wantErrors(t, "external id "+x[:3], p.UserErrors, "VALIDATION_FAILED /externalId")
			}
			p := fmtCreate(t, s, map[string]any{"traits": email("not an email"), "externalId": "\x7f",
				"verifiableAddresses": []any{map[string]any{"value": "x@example.com", "via": "pigeon"}}})
			wantErrors(t, "a bad external id and bad traits", p.UserErrors, "VALIDATION_FAILED /externalId", "VALIDATION_FAILED /traits/email")
			p = fmtCreate(t, s, map[string]any{"traits": email("ok@example.com"), "externalId": "\x7f",
				"verifiableAddresses": []any{map[string]any{"value": "x@example.com", "via": "pigeon"}}})
			wantErrors(t, "a bad external id and a bad address", p.UserErrors, "VALIDATION_FAILED /externalId", "VALIDATION_FAILED /verifiableAddresses/0/via")
			if p := fmtCreate(t, s, map[string]any{"traits": email("v@example.com"), "externalId": strings.Repeat("é", 127)}); p.Identity == nil {
				t.Errorf("254 bytes: %v", errorsAt(p.UserErrors))
			}
		})

		t.Run("update", func(t *testing.T) {
			id := fmtMustCreate(t, s, map[string]any{"traits": email("u@example.com"), "externalId": "u-1"}).ID
			p := fmtUpdate(t, s, id, map[string]any{"traits": email("u@example.com")})
			if p.Identity == nil || p.Identity.ExternalID == nil || *p.Identity.ExternalID != "u-1" {
				t.Fatalf("absent keeps: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
			p = fmtUpdate(t, s, id, map[string]any{"traits": email("u@example.com"), "externalId": "u-2"})
			if p.Identity == nil || p.Identity.ExternalID == nil || *p.Identity.ExternalID != "u-2" {
				t.Fatalf("set: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
			p = fmtUpdate(t, s, id, map[string]any{"traits": email("u@example.com"), "externalId": "auth0|Ext-1"})
			wantErrors(t, "update to a taken one", p.UserErrors, "IDENTIFIER_TAKEN /externalId")
			p = fmtUpdate(t, s, id, map[string]any{"traits": email("u@example.com"), "externalId": "x\x01"})
			wantErrors(t, "update to a bad one", p.UserErrors, "VALIDATION_FAILED /externalId")
			p = fmtUpdate(t, s, id, map[string]any{"traits": email("u@example.com"), "externalId": ""})
			if p.Identity == nil || p.Identity.ExternalID != nil {
				t.Fatalf("\"\" clears: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
			// Cleared, the old one is free again.
			if fmtByExternalID(t, s, "u-2") != nil {
				t.Error("the cleared external id still finds the identity")
			}
		})

		t.Run("patch", func(t *testing.T) {
			id := fmtMustCreate(t, s, map[string]any{"traits": email("p@example.com")}).ID
			p := fmtPatch(t, s, id, op("add", "/external_id", "p-1"))
			if p.Identity == nil || p.Identity.ExternalID == nil || *p.Identity.ExternalID != "p-1" {
				t.Fatalf("add: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
			p = fmtPatch(t, s, id, op("test", "/external_id", "p-1"), op("replace", "/external_id", "p-2"))
			if p.Identity == nil || *p.Identity.ExternalID != "p-2" {
				t.Fatalf("replace: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
			p = fmtPatch(t, s, id, op("replace", "/external_id", "auth0|Ext-1"))
			wantErrors(t, "patch to a taken one", p.UserErrors, "IDENTIFIER_TAKEN /external_id")
			p = fmtPatch(t, s, id, op("replace", "/state", "active"), op("replace", "/external_id", strings.Repeat("y", 256)))
			wantErrors(t, "patch to a long one", p.UserErrors, "VALIDATION_FAILED /patch/1")
			p = fmtPatch(t, s, id, op("replace", "/external_id", 7))
			wantErrors(t, "patch to a number", p.UserErrors, "INVALID_PATCH /patch")
			p = fmtPatch(t, s, id, op("remove", "/external_id"))
			if p.Identity == nil || p.Identity.ExternalID != nil {
				t.Fatalf("remove: %+v %v", p.Identity, errorsAt(p.UserErrors))
			}
		})
	})
}

func TestImportFormatAddresses(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		verifiedAt := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
		t.Run("states merge onto the traits' addresses", func(t *testing.T) {
			before := time.Now().UTC().Add(-time.Second)
			id := fmtMustCreate(t, s, map[string]any{
				"traits": map[string]any{"email": "Ada@Example.com"},
				"verifiableAddresses": []any{
					// Normalised as the traits' are: the same address.
					map[string]any{"value": " ADA@example.COM", "via": "email", "verified": true, "verifiedAt": verifiedAt.Format(time.RFC3339Nano)},
					map[string]any{"value": "old@example.com", "via": "email", "status": "sent"},
					map[string]any{"value": "+1 415 555 2671", "via": "sms", "verified": true},
				},
				"recoveryAddresses": []any{
					map[string]any{"value": "ada@example.com", "via": "email"},
					map[string]any{"value": "Backup@Example.com", "via": "email"},
				},
			})
			ada := id.verifiable("email", "ada@example.com")
			if len(id.VerifiableAddresses) != 3 || ada == nil || !ada.Verified || ada.Status != "completed" ||
				ada.VerifiedAt == nil || !ada.VerifiedAt.Equal(verifiedAt.Truncate(time.Microsecond)) {
				t.Fatalf("addresses %+v", id.VerifiableAddresses)
			}
			if old := id.verifiable("email", "old@example.com"); old == nil || old.Verified || old.Status != "sent" || old.VerifiedAt != nil {
				t.Errorf("extra address %+v, want unverified, sent", old)
			}
			if tel := id.verifiable("sms", "+14155552671"); tel == nil || !tel.Verified || tel.Status != "completed" || tel.VerifiedAt == nil || tel.VerifiedAt.Before(before) {
				t.Errorf("verified without a time: %+v, want verified now", tel)
			}
			if got := id.recovery(); !slices.Equal(got, []string{"email:ada@example.com", "email:backup@example.com"}) {
				t.Errorf("recovery %v", got)
			}
			// A fresh read agrees with what the write answered.
			got := fmtByID(t, s, id.ID)
			if !sameAddresses(got.VerifiableAddresses, id.VerifiableAddresses) || !slices.Equal(got.recovery(), id.recovery()) {
				t.Errorf("read back %+v\nwrote %+v", got, id)
			}

			t.Run("kept while the traits stay", func(t *testing.T) {
				p := fmtUpdate(t, s, id.ID, map[string]any{"traits": map[string]any{"email": "Ada@Example.com"}, "metadataPublic": map[string]any{"x": 1}})
				if p.Identity == nil || !sameAddresses(p.Identity.VerifiableAddresses, id.VerifiableAddresses) || !slices.Equal(p.Identity.recovery(), id.recovery()) {
					t.Fatalf("update with the same traits: %+v %v", p.Identity, errorsAt(p.UserErrors))
				}
				p = fmtPatch(t, s, id.ID, op("add", "/metadata_public/y", 2))
				if p.Identity == nil || !sameAddresses(p.Identity.VerifiableAddresses, id.VerifiableAddresses) {
					t.Fatalf("patch beside the traits: %+v %v", p.Identity, errorsAt(p.UserErrors))
				}
			})
			t.Run("gone when the traits change", func(t *testing.T) {
				p := fmtUpdate(t, s, id.ID, map[string]any{"traits": map[string]any{"email": "ada2@example.com"}})
				if p.Identity == nil || len(p.Identity.VerifiableAddresses) != 1 || p.Identity.VerifiableAddresses[0].Value != "ada2@example.com" ||
					!slices.Equal(p.Identity.recovery(), []string{"email:ada2@example.com"}) {
					t.Fatalf("update with new traits: %+v %v", p.Identity, errorsAt(p.UserErrors))
				}
			})
		})

		t.Run("update sets states on kept rows", func(t *testing.T) {
			id := fmtMustCreate(t, s, map[string]any{"traits": email("keep@example.com")})
			row := id.VerifiableAddresses[0]
			p := fmtUpdate(t, s, id.ID, map[string]any{"traits": email("keep@example.com"),
				"verifiableAddresses": []any{map[string]any{"value": "keep@example.com", "via": "email", "verified": true}}})
			if p.Identity == nil {
				t.Fatal(errorsAt(p.UserErrors))
			}
			got := p.Identity.VerifiableAddresses
			if len(got) != 1 || got[0].ID != row.ID || !got[0].Verified || got[0].Status != "completed" || got[0].VerifiedAt == nil {
				t.Errorf("after update %+v, want row %s verified", got, row.ID)
			}
			// Updating again without states leaves the state alone.
			p = fmtUpdate(t, s, id.ID, map[string]any{"traits": email("keep@example.com")})
			if p.Identity == nil || !sameAddresses(p.Identity.VerifiableAddresses, got) {
				t.Errorf("second update %+v, want %+v", p.Identity, got)
			}
		})

		t.Run("every problem at its path", func(t *testing.T) {
			p := fmtCreate(t, s, map[string]any{
				"traits": email("bad@example.com"),
				"verifiableAddresses": []any{
					map[string]any{"value": "bad@example.com", "via": "pigeon"},
					map[string]any{"value": "not an address", "via": "email"},
					map[string]any{"value": "bad@example.com", "via": "email", "verifiedAt": verifiedAt.Format(time.RFC3339)},
					map[string]any{"value": "bad@example.com", "via": "email", "status": "completed"},
					map[string]any{"value": "bad@example.com", "via": "email", "verified": true, "status": "bogus"},
					map[string]any{"value": "bad@example.com", "via": "email", "verified": true, "status": "sent"},
					map[string]any{"value": "+1 555", "via": "sms"},
					map[string]any{"value": "zero\u200bwidth@example.com", "via": "email"},
					map[string]any{"value": "  ", "via": "email"},
				},
				"recoveryAddresses": []any{
					map[string]any{"value": "0123", "via": "sms"},
					map[string]any{"value": "x@example.com", "via": "fax"},
				},
			})
			wantErrors(t, "bad addresses", p.UserErrors,
				"VALIDATION_FAILED /verifiableAddresses/0/via",
				"VALIDATION_FAILED /verifiableAddresses/1/value",
				"VALIDATION_FAILED /verifiableAddresses/2/verifiedAt",
				"VALIDATION_FAILED /verifiableAddresses/3/status",
				"VALIDATION_FAILED /verifiableAddresses/4/status",
				"VALIDATION_FAILED /verifiableAddresses/5/status",
				"VALIDATION_FAILED /verifiableAddresses/6/value",
				"VALIDATION_FAILED /verifiableAddresses/7/value",
				"VALIDATION_FAILED /verifiableAddresses/8/value",
				"VALIDATION_FAILED /recoveryAddresses/0/value",
				"VALIDATION_FAILED /recoveryAddresses/1/via")
			p = fmtCreate(t, s, map[string]any{"traits": email("twice@example.com"), "verifiableAddresses": []any{
				map[string]any{"value": "twice@example.com", "via": "email", "verified": true},
				map[string]any{"value": "TWICE@example.com", "via": "email"},
			}})
			wantErrors(t, "listed twice", p.UserErrors, "VALIDATION_FAILED /verifiableAddresses/1/value")
		})

		t.Run("an extra address is unique too", func(t *testing.T) {
			fmtMustCreate(t, s, map[string]any{"traits": email("holder@example.com")})
			p := fmtCreate(t, s, map[string]any{"traits": email("taker@example.com"),
				"verifiableAddresses": []any{map[string]any{"value": "holder@example.com", "via": "email"}},
				"recoveryAddresses":   []any{map[string]any{"value": "x@example.com", "via": "email"}, map[string]any{"value": "holder@example.com", "via": "email"}}})
			wantErrors(t, "taken extra addresses", p.UserErrors, "IDENTIFIER_TAKEN /verifiableAddresses/0/value", "IDENTIFIER_TAKEN /recoveryAddresses/1/value")
		})

		t.Run("import keeps states", func(t *testing.T) {
			res := fmtImport(t, s, []any{
				map[string]any{"traits": email("imp1@example.com"), "verifiableAddresses": []any{
					map[string]any{"value": "imp1@example.com", "via": "email", "verified": true, "verifiedAt": verifiedAt.Format(time.RFC3339Nano), "status": "completed"}}},
				map[string]any{"traits": email("imp2@example.com"), "verifiableAddresses": []any{
					map[string]any{"value": "imp2@example.com", "via": "email", "status": "sent"}}},
				map[string]any{"traits": email("imp3@example.com"), "verifiableAddresses": []any{
					map[string]any{"value": "imp3@example.com", "via": "sms"}}},
			})
			a, b := res[0].Identity, res[1].Identity
			if a == nil || b == nil {
				t.Fatalf("import: %+v", res)
			}
			if v := a.VerifiableAddresses[0]; !v.Verified || v.Status != "completed" || !v.VerifiedAt.Equal(verifiedAt.Truncate(time.Microsecond)) {
				t.Errorf("imported verified address %+v", v)
			}
			if v := b.VerifiableAddresses[0]; v.Verified || v.Status != "sent" {
				t.Errorf("imported sent address %+v", v)
			}
			wantErrors(t, "an email address as sms", res[2].UserErrors, "VALIDATION_FAILED /verifiableAddresses/0/value")
			if got := fmtByID(t, s, a.ID); !sameAddresses(got.VerifiableAddresses, a.VerifiableAddresses) {
				t.Errorf("read back %+v, imported %+v", got.VerifiableAddresses, a.VerifiableAddresses)
			}
		})

		t.Run("no code to an address given as verified", func(t *testing.T) {
			id := fmtMustCreate(t, s, map[string]any{"traits": email("mailme@example.com"), "sendVerification": true,
				"verifiableAddresses": []any{
					map[string]any{"value": "mailme@example.com", "via": "email", "verified": true},
					map[string]any{"value": "other@example.com", "via": "email"},
				}})
			if v := id.verifiable("email", "mailme@example.com"); v == nil || v.Status != "completed" {
				t.Errorf("verified address %+v", v)
			}
			if v := id.verifiable("email", "other@example.com"); v == nil || v.Status != "sent" {
				t.Errorf("unverified address %+v, want a code sent", v)
			}
			var msgs struct {
				Edges []struct{ Node struct{ Recipient string } }
			}
			dataField(t, adminPost(t, s, `{ courierMessages(first: 100) { edges { node { recipient } } } }`, nil), "courierMessages", &msgs)
			var to []string
			for _, e := range msgs.Edges {
				to = append(to, e.Node.Recipient)
			}
			if !slices.Contains(to, "other@example.com") || slices.Contains(to, "mailme@example.com") {
				t.Errorf("messages to %v, want other@example.com only", to)
			}
		})
	})
}

// TestImportFormatPatchVerified: admins patch a verifiable address's
// verification state at /verifiable_addresses/N, as in Kratos, and nothing
// else of it.
func TestImportFormatPatchVerified(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		id := fmtMustCreate(t, s, map[string]any{"traits": email("patch@example.com"), "verifiableAddresses": []any{
			map[string]any{"value": "extra@example.com", "via": "email"}}})
		row := id.verifiable("email", "patch@example.com")
		n := slices.IndexFunc(id.VerifiableAddresses, func(a fmtAddress) bool { return a.Value == "patch@example.com" })
		at := func(field string) string { return "/verifiable_addresses/" + string(rune('0'+n)) + field }

		p := fmtPatch(t, s, id.ID, op("test", at("/verified"), false), op("replace", at("/verified"), true))
		v := p.Identity.verifiable("email", "patch@example.com")
		if p.Identity == nil || v == nil || v.ID != row.ID || !v.Verified || v.Status != "completed" || v.VerifiedAt == nil {
			t.Fatalf("verify: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		if len(p.Identity.VerifiableAddresses) != 2 {
			t.Errorf("the patch dropped the extra address: %+v", p.Identity.VerifiableAddresses)
		}
		when := "2023-01-02T03:04:05Z"
		p = fmtPatch(t, s, id.ID, op("replace", at("/verified_at"), when))
		if v := p.Identity.verifiable("email", "patch@example.com"); v == nil || v.VerifiedAt == nil || v.VerifiedAt.Format(time.RFC3339) != when {
			t.Fatalf("verified_at: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		p = fmtPatch(t, s, id.ID, op("replace", at("/verified"), false))
		if v := p.Identity.verifiable("email", "patch@example.com"); v == nil || v.Verified || v.VerifiedAt != nil || v.Status != "pending" {
			t.Fatalf("unverify: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		p = fmtPatch(t, s, id.ID, op("replace", at("/status"), "sent"))
		if v := p.Identity.verifiable("email", "patch@example.com"); v == nil || v.Status != "sent" {
			t.Fatalf("status: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}

		refused := []struct {
			name string
			ops  []map[string]any
			want string
		}{
			{"value", []map[string]any{op("replace", at("/value"), "x@example.com")}, "INVALID_PATCH /patch/0"},
			{"via", []map[string]any{op("replace", "/state", "active"), op("replace", at("/via"), "sms")}, "INVALID_PATCH /patch/1"},
			{"id", []map[string]any{op("replace", at("/id"), uuid.NewString())}, "INVALID_PATCH /patch/0"},
			{"added", []map[string]any{op("add", "/verifiable_addresses/-", map[string]any{"value": "y@example.com", "via": "email"})}, "INVALID_PATCH /patch/0"},
			{"removed", []map[string]any{op("remove", at(""))}, "INVALID_PATCH /patch/0"},
			{"status completed, unverified", []map[string]any{op("replace", at("/status"), "completed")}, "INVALID_PATCH /patch/0"},
			{"status unknown", []map[string]any{op("replace", at("/status"), "done")}, "INVALID_PATCH /patch/0"},
			{"verified_at, unverified", []map[string]any{op("replace", at("/verified_at"), when)}, "INVALID_PATCH /patch/0"},
			{"unknown field", []map[string]any{op("add", at("/primary"), true)}, "INVALID_PATCH /patch"},
		}
		for _, r := range refused {
			p := fmtPatch(t, s, id.ID, r.ops...)
			wantErrors(t, r.name, p.UserErrors, r.want)
			if r.want != "INVALID_PATCH /patch" && !strings.Contains(p.UserErrors[0].Message, "verif") && !strings.Contains(p.UserErrors[0].Message, "status must be") {
				t.Errorf("%s: message %q does not say what may be patched", r.name, p.UserErrors[0].Message)
			}
		}
		if got := fmtByID(t, s, id.ID); !sameAddresses(got.VerifiableAddresses, p.Identity.VerifiableAddresses) {
			t.Errorf("a refused patch changed the addresses: %+v", got.VerifiableAddresses)
		}
	})
}

func TestImportFormatTraitsOptional(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		id := fmtMustCreate(t, s, map[string]any{"schemaId": "blank", "externalId": "no-traits"})
		if len(id.Traits) != 0 || id.Traits == nil {
			t.Errorf("traits %v, want {}", id.Traits)
		}
		p := fmtCreate(t, s, map[string]any{})
		wantErrors(t, "absent traits on a schema that requires one", p.UserErrors, "VALIDATION_FAILED /traits/email")
		p = fmtCreate(t, s, map[string]any{"schemaId": "blank", "traits": nil})
		if p.Identity == nil || p.Identity.Traits == nil {
			t.Errorf("null traits: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
	})
}

func TestImportFormatOIDC(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		org1, org2 := uuid.NewString(), uuid.NewString()
		provider := func(p, sub string, org ...string) map[string]any {
			m := map[string]any{"provider": p, "subject": sub}
			if len(org) > 0 {
				m["organization"] = org[0]
			}
			return m
		}
		oidc := func(ps ...map[string]any) map[string]any {
			list := []any{}
			for _, p := range ps {
				list = append(list, p)
			}
			return map[string]any{"oidc": map[string]any{"providers": list}}
		}
		id := fmtMustCreate(t, s, map[string]any{"traits": email("sso@example.com"), "credentials": oidc(provider("google", "g-1", org1))})
		links := func() string {
			ls, err := s.app.store.OIDCLinks(context.Background(), uuid.MustParse(id.ID))
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, l := range ls {
				out = append(out, l.Provider+":"+l.Subject+"@"+l.Organization)
			}
			return strings.Join(out, " ")
		}
		if got, want := links(), "google:g-1@"+org1; got != want {
			t.Errorf("stored %s, want %s", got, want)
		}
		p := fmtUpdate(t, s, id.ID, map[string]any{"traits": email("sso@example.com"), "credentials": oidc(provider("github", "gh-1"))})
		if p.Identity == nil || !slices.Equal(p.Identity.identifiers("OIDC"), []string{"github:gh-1", "google:g-1"}) {
			t.Fatalf("merge: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		if got, want := links(), "google:g-1@"+org1+" github:gh-1@"; got != want {
			t.Errorf("stored %s, want %s", got, want)
		}
		// One it has already keeps its place, and takes the organization
		// given; none given keeps the one it has.
		p = fmtUpdate(t, s, id.ID, map[string]any{"traits": email("sso@example.com"), "credentials": oidc(provider("github", "gh-1", org2), provider("google", "g-1"))})
		if p.Identity == nil || !slices.Equal(p.Identity.identifiers("OIDC"), []string{"github:gh-1", "google:g-1"}) {
			t.Fatalf("merge again: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		if got, want := links(), "google:g-1@"+org1+" github:gh-1@"+org2; got != want {
			t.Errorf("stored %s, want %s", got, want)
		}
		// An empty list removes nothing.
		p = fmtUpdate(t, s, id.ID, map[string]any{"traits": email("sso@example.com"), "credentials": oidc()})
		if p.Identity == nil || len(p.Identity.identifiers("OIDC")) != 2 {
			t.Fatalf("empty list: %+v %v", p.Identity, errorsAt(p.UserErrors))
		}
		other := fmtMustCreate(t, s, map[string]any{"traits": email("other-sso@example.com"), "credentials": oidc(provider("apple", "a-1"))})
		p = fmtUpdate(t, s, other.ID, map[string]any{"traits": email("other-sso@example.com"), "credentials": oidc(provider("google", "g-1"))})
		wantErrors(t, "merge a subject another identity holds", p.UserErrors, "IDENTIFIER_TAKEN /credentials/oidc/providers/0")
		// The linked accounts sign in: both links find the identity.
		for _, l := range [][2]string{{"google", "g-1"}, {"github", "gh-1"}} {
			found, err := s.app.store.FindOIDCIdentity(context.Background(), l[0], l[1])
			if err != nil || found.String() != id.ID {
				t.Errorf("%s:%s finds %v, %v; want %s", l[0], l[1], found, err, id.ID)
			}
		}
	})
}

// TestImportFormatPasswordPolicy: admins' cleartext passwords skip the
// policy (Kratos does, on purpose); sign-up keeps it.
func TestImportFormatPasswordPolicy(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		pw := func(p string) map[string]any {
			return map[string]any{"password": map[string]any{"password": p}}
		}
		fmtMustCreate(t, s, map[string]any{"traits": email("short@example.com"), "credentials": pw("short")})
		s.mustLogin(t, "short@example.com", "short")

		res := fmtImport(t, s, []any{
			map[string]any{"traits": email("common@example.com"), "credentials": pw("password")},
			map[string]any{"traits": email("same@example.com"), "credentials": pw("same@example.com")},
			map[string]any{"traits": email("empty@example.com"), "credentials": pw("")},
			map[string]any{"traits": email("huge@example.com"), "credentials": pw(strings.Repeat("x", 257))},
		})
		if res[0].Identity == nil || res[1].Identity == nil {
			t.Fatalf("import: %+v", res)
		}
		wantErrors(t, "empty password", res[2].UserErrors, "VALIDATION_FAILED /credentials/password/password")
		wantErrors(t, "password past the maximum", res[3].UserErrors, "VALIDATION_FAILED /credentials/password/password")
		s.mustLogin(t, "common@example.com", "password")

		id := fmtMustCreate(t, s, map[string]any{"traits": email("upd@example.com")}).ID
		if p := fmtUpdate(t, s, id, map[string]any{"traits": email("upd@example.com"), "credentials": pw("123")}); p.Identity == nil {
			t.Fatalf("update: %v", errorsAt(p.UserErrors))
		}
		s.mustLogin(t, "upd@example.com", "123")

		// Self-service keeps the policy.
		out := s.register(t, map[string]any{"traits": email("self@example.com"), "password": "short"})
		if got := codePaths(out.UserErrors); !slices.Equal(got, []string{"PASSWORD_POLICY@/password"}) || out.Session != nil {
			t.Errorf("register with a short password: %v, want PASSWORD_POLICY@/password", got)
		}
		out = s.register(t, map[string]any{"traits": email("self@example.com"), "password": "password"})
		if got := codePaths(out.UserErrors); !slices.Equal(got, []string{"PASSWORD_POLICY@/password"}) {
			t.Errorf("register with a common password: %v, want PASSWORD_POLICY@/password", got)
		}
	})
}

// TestImportFormatNoValidate: a verification or recovery trait whose format
// is "no-validate" (or Kratos's "noformat") takes any value as its address.
func TestImportFormatNoValidate(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		id := fmtMustCreate(t, s, map[string]any{"schemaId": "novalidate",
			"traits": map[string]any{"email": "Legacy User 42", "phone": "ext. 1234"},
			"verifiableAddresses": []any{
				map[string]any{"value": "legacy user 42", "via": "email", "verified": true},
				map[string]any{"value": "ext. 1234", "via": "sms", "status": "sent"},
			}})
		if v := id.verifiable("email", "legacy user 42"); v == nil || !v.Verified {
			t.Errorf("email address %+v", id.VerifiableAddresses)
		}
		if v := id.verifiable("sms", "ext. 1234"); v == nil || v.Status != "sent" {
			t.Errorf("sms address %+v", id.VerifiableAddresses)
		}
		if got := id.recovery(); !slices.Equal(got, []string{"email:legacy user 42"}) {
			t.Errorf("recovery %v", got)
		}
		// Still nothing that cannot be stored or seen.
		p := fmtCreate(t, s, map[string]any{"schemaId": "novalidate", "traits": map[string]any{"email": "a\u200bb"}})
		wantErrors(t, "invisible character", p.UserErrors, "VALIDATION_FAILED /traits/email")
		// Without the format, the channel check holds.
		p = fmtCreate(t, s, map[string]any{"traits": email("Legacy User 42")})
		wantErrors(t, "email schema", p.UserErrors, "VALIDATION_FAILED /traits/email")
		p = fmtCreate(t, s, map[string]any{"schemaId": "sms", "traits": map[string]any{"phone_number": "ext. 1234"}})
		wantErrors(t, "sms schema", p.UserErrors, "VALIDATION_FAILED /traits/phone_number")
	})
}

// TestImportFormatNullItems: a null item of importIdentities fails alone; a
// client's [CreateIdentityInput!]! variable still validates.
func TestImportFormatNullItems(t *testing.T) {
	eachImportFormatServer(t, func(t *testing.T, s *testServer) {
		res := fmtImport(t, s, []any{
			map[string]any{"traits": email("n0@example.com")},
			nil,
			map[string]any{},
			map[string]any{"schemaId": "blank"},
		})
		if res[0].Identity == nil || res[3].Identity == nil {
			t.Fatalf("import: %+v", res)
		}
		wantErrors(t, "null item", res[1].UserErrors, "VALIDATION_FAILED")
		wantErrors(t, "no traits", res[2].UserErrors, "VALIDATION_FAILED /traits/email")
		for i, r := range res {
			if r.Index != i {
				t.Errorf("result %d has index %d", i, r.Index)
			}
		}
		// The old, strict variable type still works.
		r := adminPost(t, s, qImport, map[string]any{"in": []any{map[string]any{"traits": email("strict@example.com")}}})
		if strings.Contains(string(r.Data), `"code"`) {
			t.Errorf("strict variable: %s", r.Data)
		}
		// What GraphQL itself refuses still fails the whole call: an
		// unknown enum value, a wrong scalar, a missing field of a nested
		// input. Nothing of it is written.
		for _, item := range []map[string]any{
			{"traits": email("w1@example.com"), "state": "BOGUS"},
			{"traits": email("w2@example.com"), "verifiableAddresses": []any{map[string]any{"value": "w2@example.com"}}},
			{"traits": email("w3@example.com"), "credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "p", "subject": "s", "organization": "not-a-uuid"}}}}},
		} {
			r := s.gql(t, testAdminKey, qfImport, map[string]any{"in": []any{map[string]any{"traits": email("fine@example.com")}, item}})
			if len(r.Errors) == 0 || string(r.Data) != "null" && !strings.Contains(string(r.Data), `"importIdentities":null`) {
				t.Errorf("%v: data %s errors %+v, want the call refused", item, r.Data, r.Errors)
			}
		}
		if got := fmtList(t, s, nil); len(got) != 3 {
			t.Errorf("%d identities, want the 3 imported", len(got))
		}
	})
}

func fmtByID(t *testing.T, s *testServer, id string) *fmtIdentity {
	t.Helper()
	var out *fmtIdentity
	dataField(t, adminPost(t, s, `query($id: UUID!) { identity(id: $id) { ...G } }`+importFormatFragment, map[string]any{"id": id}), "identity", &out)
	if out == nil {
		t.Fatalf("identity %s not found", id)
	}
	return out
}

// sameAddresses compares verifiable addresses, row for row.
func sameAddresses(a, b []fmtAddress) bool {
	return slices.EqualFunc(a, b, func(x, y fmtAddress) bool {
		return x.ID == y.ID && x.Value == y.Value && x.Via == y.Via && x.Status == y.Status && x.Verified == y.Verified &&
			((x.VerifiedAt == nil && y.VerifiedAt == nil) || (x.VerifiedAt != nil && y.VerifiedAt != nil && x.VerifiedAt.Equal(*y.VerifiedAt)))
	})
}
