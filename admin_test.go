package main

// The admin identity API over real HTTP, on SQLite and PostgreSQL: every
// operation, every error code an admin operation can answer, who may call
// what, imported password hashes, pagination under concurrent writes and the
// cost in queries of a page.

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/graph"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// identityFragment selects every field of an identity, admin-only ones too.
const identityFragment = `
fragment F on Identity {
  id schemaId state stateChangedAt traits metadataPublic metadataAdmin
  credentials { type identifiers createdAt updatedAt }
  verifiableAddresses { id value via verified status verifiedAt }
  recoveryAddresses { id value via }
  createdAt updatedAt
}`

const (
	qCreate = `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { ...F } userErrors { code message path } } }` + identityFragment
	qUpdate = `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { identity { ...F } userErrors { code message path } } }` + identityFragment
	qPatch  = `mutation($id: UUID!, $patch: [JSONPatchOperation!]!) { patchIdentity(id: $id, patch: $patch) { identity { ...F } userErrors { code message path } } }` + identityFragment
	qDelete = `mutation($id: UUID!) { deleteIdentity(id: $id) { deletedId userErrors { code message path } } }`
	qImport = `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { ...F } userErrors { code message path } } } }` + identityFragment
	qGet    = `query($id: UUID!) { identity(id: $id) { ...F } }` + identityFragment
	qList   = `query($first: Int, $after: String, $filter: IdentityFilter) {
  identities(first: $first, after: $after, filter: $filter) {
    edges { cursor node { ...F } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}` + identityFragment
)

// secretMarkers match what no answer may ever contain: the stored credential
// config's key and a hash in any supported format. They match hashes, not the
// bare prefixes: the message for an unrecognised hash lists the supported
// ones ("bcrypt ($2a$, $2b$, $2y$)").
var secretMarkers = []*regexp.Regexp{
	regexp.MustCompile(`hashed_password`),
	regexp.MustCompile(`\$argon2`),
	regexp.MustCompile(`\$2[aby]\$[0-9]{2}\$`),
	regexp.MustCompile(`\$pbkdf2-[a-z0-9]+\$`),
	regexp.MustCompile(`\$scrypt\$ln=`),
	regexp.MustCompile(`\$firescrypt\$ln=`),
	regexp.MustCompile(`\$(1|5|6|md5-crypt|sha256-crypt|sha512-crypt)\$(rounds=|[./0-9A-Za-z]*\$)`),
	regexp.MustCompile(`\$(sha1|sha256|sha512|md5)\$(pf=|[A-Za-z0-9+/])`),
	regexp.MustCompile(`\{SSHA(256|512)?\}[A-Za-z0-9+/]`),
	regexp.MustCompile(`\$hmac-[a-z0-9]+\$[A-Za-z0-9+/]`),
	// TOTP keys and their sealed form.
	regexp.MustCompile(`otpauth://`),
	regexp.MustCompile(`sealed_totp_url`),
}

type credentialJSON struct {
	Type        string
	Identifiers []string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

type identityJSON struct {
	ID                  string
	SchemaID            string
	State               string
	StateChangedAt      *time.Time
	Traits              json.RawMessage
	MetadataPublic      json.RawMessage
	MetadataAdmin       json.RawMessage
	Credentials         []credentialJSON
	VerifiableAddresses []struct {
		ID, Value, Via, Status string
		Verified               bool
		VerifiedAt             *time.Time
	}
	RecoveryAddresses []struct{ ID, Value, Via string }
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// credentials maps credential type to identifiers.
func (i *identityJSON) credentials() map[string][]string {
	out := map[string][]string{}
	for _, c := range i.Credentials {
		out[c.Type] = c.Identifiers
	}
	return out
}

func (i *identityJSON) addresses() (verifiable, recovery []string) {
	for _, a := range i.VerifiableAddresses {
		verifiable = append(verifiable, a.Via+":"+a.Value)
	}
	for _, a := range i.RecoveryAddresses {
		recovery = append(recovery, a.Via+":"+a.Value)
	}
	return verifiable, recovery
}

type adminUserError struct {
	Code    string
	Message string
	Path    *string
}

// at is "CODE path" ("CODE" when the path is null), for comparing lists.
func (e adminUserError) at() string {
	if e.Path == nil {
		return e.Code
	}
	return e.Code + " " + *e.Path
}

func errorsAt(errs []adminUserError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.at()
	}
	return out
}

type payloadJSON struct {
	Identity   *identityJSON
	DeletedID  *string
	UserErrors []adminUserError
}

type connectionJSON struct {
	Edges []struct {
		Cursor string
		Node   identityJSON
	}
	PageInfo struct {
		HasNextPage, HasPreviousPage bool
		StartCursor, EndCursor       *string
	}
}

func (c *connectionJSON) ids() []string {
	out := make([]string, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node.ID
	}
	return out
}

// assertNoSecrets fails when an answer (data or errors) carries anything of a
// password hash.
func assertNoSecrets(t *testing.T, r *gqlResponse) {
	t.Helper()
	errs, _ := json.Marshal(r.Errors)
	body := string(r.Data) + string(errs)
	for _, m := range secretMarkers {
		if m.MatchString(body) {
			t.Errorf("answer contains %s: %s", m, body)
		}
	}
}

// postAs is s.gql that also checks the answer for secrets.
func postAs(t *testing.T, s *testServer, token, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	r := s.gql(t, token, query, vars)
	assertNoSecrets(t, r)
	return r
}

// postAuth sends a request with a raw Authorization header (none when empty).
func postAuth(t *testing.T, s *testServer, authorization, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	r := s.do(t, req)
	assertNoSecrets(t, r)
	return r
}

// adminPost is s.admin (no top-level errors allowed) that also checks the
// answer for secrets.
func adminPost(t *testing.T, s *testServer, query string, vars map[string]any) *gqlResponse {
	t.Helper()
	r := s.admin(t, query, vars)
	assertNoSecrets(t, r)
	return r
}

// field decodes the data field name of r into v.
func dataField(t *testing.T, r *gqlResponse, name string, v any) {
	t.Helper()
	var m map[string]json.RawMessage
	r.decode(t, &m)
	raw, ok := m[name]
	if !ok {
		t.Fatalf("no field %q in %s", name, r.Data)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s %s: %v", name, raw, err)
	}
}

func mutate(t *testing.T, s *testServer, query, name string, vars map[string]any) payloadJSON {
	t.Helper()
	var p payloadJSON
	dataField(t, adminPost(t, s, query, vars), name, &p)
	if p.UserErrors == nil {
		t.Fatalf("%s: userErrors is null, want a list", name)
	}
	if (p.Identity != nil || p.DeletedID != nil) == (len(p.UserErrors) > 0) {
		t.Fatalf("%s: identity %v with userErrors %v: want exactly one of them", name, p.Identity != nil, errorsAt(p.UserErrors))
	}
	return p
}

func createIdentity(t *testing.T, s *testServer, in map[string]any) payloadJSON {
	t.Helper()
	return mutate(t, s, qCreate, "createIdentity", map[string]any{"in": in})
}

func mustCreate(t *testing.T, s *testServer, in map[string]any) identityJSON {
	t.Helper()
	p := createIdentity(t, s, in)
	if p.Identity == nil {
		t.Fatalf("createIdentity(%v): %v", in, errorsAt(p.UserErrors))
	}
	return *p.Identity
}

func updateIdentity(t *testing.T, s *testServer, id string, in map[string]any) payloadJSON {
	t.Helper()
	return mutate(t, s, qUpdate, "updateIdentity", map[string]any{"id": id, "in": in})
}

func patchIdentity(t *testing.T, s *testServer, id string, ops ...map[string]any) payloadJSON {
	t.Helper()
	return mutate(t, s, qPatch, "patchIdentity", map[string]any{"id": id, "patch": ops})
}

func deleteIdentity(t *testing.T, s *testServer, id string) payloadJSON {
	t.Helper()
	return mutate(t, s, qDelete, "deleteIdentity", map[string]any{"id": id})
}

type importResultJSON struct {
	Index      int
	Identity   *identityJSON
	UserErrors []adminUserError
}

func importIdentities(t *testing.T, s *testServer, in []map[string]any) []importResultJSON {
	t.Helper()
	var p struct{ Results []importResultJSON }
	dataField(t, adminPost(t, s, qImport, map[string]any{"in": in}), "importIdentities", &p)
	if len(p.Results) != len(in) {
		t.Fatalf("import of %d items: %d results", len(in), len(p.Results))
	}
	return p.Results
}

func getIdentity(t *testing.T, s *testServer, id string) *identityJSON {
	t.Helper()
	var out *identityJSON
	dataField(t, adminPost(t, s, qGet, map[string]any{"id": id}), "identity", &out)
	return out
}

func listIdentities(t *testing.T, s *testServer, vars map[string]any) connectionJSON {
	t.Helper()
	var c connectionJSON
	dataField(t, adminPost(t, s, qList, vars), "identities", &c)
	return c
}

// allIdentityIDs lists every identity id, in order.
func allIdentityIDs(t *testing.T, s *testServer) []string {
	t.Helper()
	c := listIdentities(t, s, map[string]any{"first": 1000})
	if c.PageInfo.HasNextPage {
		t.Fatal("more than 1000 identities")
	}
	return c.ids()
}

// jsonEqual compares two JSON documents by value (null and absent alike).
func jsonEqual(a, b json.RawMessage) bool {
	norm := func(r json.RawMessage) any {
		if len(r) == 0 {
			return nil
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return "invalid: " + string(r)
		}
		return v
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// adminTestSchemas are configured besides the default preset://email.
var adminTestSchemas = []struct{ id, url string }{
	{"username", "preset://username"},
	{"basic", "preset://basic"},
	{"sms", "preset://sms"},
	{"blank", "preset://blank"},
}

func newAdminTestServer(t *testing.T, dsn string) *testServer {
	return newTestServer(t, dsn, func(c *Config) {
		for _, sc := range adminTestSchemas {
			c.Identity.Schemas = append(c.Identity.Schemas, schemas.Source{ID: sc.id, URL: sc.url})
		}
	})
}

// eachAdminServer is eachServer with the schemas of adminTestSchemas too.
func eachAdminServer(t *testing.T, fn func(t *testing.T, s *testServer)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) { fn(t, newAdminTestServer(t, dsn)) })
}

// findPassword reads the stored password credential of an identifier.
func findPassword(t *testing.T, s *testServer, identifier string) (*db.PasswordCredential, error) {
	t.Helper()
	return s.app.store.FindPasswordCredential(context.Background(), []string{identifier})
}

// cheapBcrypt is a bcrypt hash of "imported secret 1" at cost 4, for tests
// that need some imported hash and not its cost.
var cheapBcrypt = sync.OnceValue(func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("imported secret 1"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
})

func TestAdminCreateIdentity(t *testing.T) {
	const plaintext = "Vq2!mZr-Lp0w@Tx8-kQ"
	tests := []struct {
		name  string
		in    map[string]any
		check func(t *testing.T, s *testServer, got identityJSON)
	}{{
		name: "default schema",
		in:   map[string]any{"traits": map[string]any{"email": "Ann@Example.com"}},
		check: func(t *testing.T, s *testServer, got identityJSON) {
			if got.SchemaID != "default" || got.State != "ACTIVE" || got.StateChangedAt == nil {
				t.Errorf("schemaId %q state %q stateChangedAt %v; want default, ACTIVE, set", got.SchemaID, got.State, got.StateChangedAt)
			}
			if !jsonEqual(got.Traits, raw(map[string]any{"email": "Ann@Example.com"})) {
				t.Errorf("traits %s: want them as given", got.Traits)
			}
			if !jsonEqual(got.MetadataPublic, nil) || !jsonEqual(got.MetadataAdmin, nil) {
				t.Errorf("metadata %s / %s, want null", got.MetadataPublic, got.MetadataAdmin)
			}
			v, r := got.addresses()
			if want := []string{"email:ann@example.com"}; !slices.Equal(v, want) || !slices.Equal(r, want) {
				t.Errorf("addresses verifiable %v recovery %v, want %v", v, r, want)
			}
			if a := got.VerifiableAddresses[0]; a.Verified || a.Status != "pending" || a.VerifiedAt != nil {
				t.Errorf("verifiable address %+v, want unverified and pending", a)
			}
			// No password was given: no credential, and the login
			// identifier is reserved all the same.
			if c := got.credentials(); len(c) != 0 {
				t.Errorf("credentials %v, want none without a password", c)
			}
			if n := s.identityCount(t, "ann@example.com"); n != 1 {
				t.Errorf("identifier ann@example.com finds %d identities, want 1", n)
			}
		},
	}, {
		name: "explicit schema",
		in:   map[string]any{"schemaId": "username", "traits": map[string]any{"username": "Bob_The_Builder"}},
		check: func(t *testing.T, s *testServer, got identityJSON) {
			if got.SchemaID != "username" {
				t.Errorf("schemaId %q, want username", got.SchemaID)
			}
			if c := got.credentials(); len(c) != 0 {
				t.Errorf("credentials %v, want none without a password", c)
			}
			if n := s.identityCount(t, "bob_the_builder"); n != 1 {
				t.Errorf("identifier bob_the_builder finds %d identities, want 1", n)
			}
			if len(got.VerifiableAddresses)+len(got.RecoveryAddresses) != 0 {
				t.Errorf("addresses %+v %+v, want none: the schema marks none", got.VerifiableAddresses, got.RecoveryAddresses)
			}
		},
	}, {
		name: "inactive",
		in:   map[string]any{"traits": map[string]any{"email": "cat@example.com"}, "state": "INACTIVE"},
		check: func(t *testing.T, s *testServer, got identityJSON) {
			if got.State != "INACTIVE" || got.StateChangedAt == nil {
				t.Errorf("state %q stateChangedAt %v, want INACTIVE and set", got.State, got.StateChangedAt)
			}
		},
	}, {
		name: "metadata",
		in: map[string]any{
			"traits":         map[string]any{"email": "dan@example.com"},
			"metadataPublic": map[string]any{"plan": "pro", "seats": json.Number("12"), "tags": []any{"a", "b"}},
			"metadataAdmin":  map[string]any{"note": "vip", "nested": map[string]any{"ok": true, "none": nil}},
		},
		check: func(t *testing.T, s *testServer, got identityJSON) {
			if want := `{"plan":"pro","seats":12,"tags":["a","b"]}`; !jsonEqual(got.MetadataPublic, json.RawMessage(want)) {
				t.Errorf("metadataPublic %s, want %s", got.MetadataPublic, want)
			}
			if want := `{"note":"vip","nested":{"ok":true,"none":null}}`; !jsonEqual(got.MetadataAdmin, json.RawMessage(want)) {
				t.Errorf("metadataAdmin %s, want %s", got.MetadataAdmin, want)
			}
		},
	}, {
		name: "password",
		in: map[string]any{
			"traits":      map[string]any{"email": "eve@example.com"},
			"credentials": map[string]any{"password": map[string]any{"password": plaintext}},
		},
		check: func(t *testing.T, s *testServer, got identityJSON) {
			if len(got.Credentials) != 1 || got.Credentials[0].Type != "PASSWORD" ||
				!slices.Equal(got.Credentials[0].Identifiers, []string{"eve@example.com"}) {
				t.Errorf("credentials %+v, want one PASSWORD identified by eve@example.com", got.Credentials)
			}
			cred, err := findPassword(t, s, "eve@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if cred.IdentityID.String() != got.ID || !strings.HasPrefix(cred.Hash, "$argon2id$") {
				t.Fatalf("stored credential of %s with hash prefix %.10q, want %s and argon2id", cred.IdentityID, cred.Hash, got.ID)
			}
			h := password.NewHasher(password.Params{}, 1)
			for pw, want := range map[string]bool{plaintext: true, plaintext + "!": false} {
				if ok, err := h.Compare(t.Context(), pw, cred.Hash); err != nil || ok != want {
					t.Errorf("Compare(%q) = %v, %v; want %v", pw, ok, err, want)
				}
			}
		},
	}}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := adminPost(t, s, qCreate, map[string]any{"in": tc.in})
				if pw, ok := tc.in["credentials"]; ok && strings.Contains(string(r.Data), plaintext) {
					t.Errorf("the answer repeats the password %v: %s", pw, r.Data)
				}
				var p payloadJSON
				dataField(t, r, "createIdentity", &p)
				if p.Identity == nil || len(p.UserErrors) != 0 {
					t.Fatalf("createIdentity: %v", errorsAt(p.UserErrors))
				}
				got := *p.Identity
				if _, err := uuid.Parse(got.ID); err != nil || got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
					t.Errorf("id %q createdAt %v updatedAt %v: want a UUID and equal times", got.ID, got.CreatedAt, got.UpdatedAt)
				}
				tc.check(t, s, got)
				// What was answered is what was stored.
				if stored := getIdentity(t, s, got.ID); stored == nil || !reflect.DeepEqual(*stored, got) {
					t.Errorf("identity(id) = %+v\nwant what createIdentity answered: %+v", stored, got)
				}
			})
		}
	})
}

func TestAdminUpdateIdentity(t *testing.T) {
	base := func(email string) map[string]any {
		return map[string]any{
			"traits":         map[string]any{"email": email},
			"state":          "INACTIVE",
			"metadataPublic": map[string]any{"foo": "old"},
			"metadataAdmin":  map[string]any{"secret": "s"},
			"credentials": map[string]any{
				"password": map[string]any{"hashedPassword": cheapBcrypt()},
				"oidc":     map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": email}}},
			},
		}
	}
	otherHash := "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq" // PHP manual: rasmuslerdorf
	tests := []struct {
		name       string
		in         func(email string) map[string]any
		wantErrors []string // when the update must fail, leaving the identity as it was
		check      func(t *testing.T, s *testServer, before, after identityJSON)
	}{{
		name: "replaces traits and clears absent metadata",
		in: func(email string) map[string]any {
			return map[string]any{"traits": map[string]any{"email": "new-" + email}}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			newEmail := "new-" + strings.ToLower(jsonString(t, before.Traits, "email"))
			if !jsonEqual(after.Traits, raw(map[string]any{"email": newEmail})) {
				t.Errorf("traits %s, want the new email only", after.Traits)
			}
			if !jsonEqual(after.MetadataPublic, nil) || !jsonEqual(after.MetadataAdmin, nil) {
				t.Errorf("metadata %s / %s: absent metadata must be cleared", after.MetadataPublic, after.MetadataAdmin)
			}
			if after.State != "INACTIVE" || !timeEq(after.StateChangedAt, before.StateChangedAt) {
				t.Errorf("state %s changed at %v, want INACTIVE unchanged since %v", after.State, after.StateChangedAt, before.StateChangedAt)
			}
			if !after.UpdatedAt.After(before.UpdatedAt) || !after.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("createdAt %v→%v updatedAt %v→%v", before.CreatedAt, after.CreatedAt, before.UpdatedAt, after.UpdatedAt)
			}
			if c := after.credentials(); !slices.Equal(c["PASSWORD"], []string{newEmail}) {
				t.Errorf("credentials %v, want PASSWORD identified by %s only", c, newEmail)
			}
			if v, r := after.addresses(); !slices.Equal(v, []string{"email:" + newEmail}) || !slices.Equal(r, v) {
				t.Errorf("addresses %v %v, want the new email only", v, r)
			}
			// The password stays; it now goes with the new identifier only.
			if cred, err := findPassword(t, s, newEmail); err != nil || cred.Hash != cheapBcrypt() {
				t.Errorf("password of %s: %+v, %v; want the imported hash", newEmail, cred, err)
			}
			oldEmail := strings.ToLower(jsonString(t, before.Traits, "email"))
			if _, err := findPassword(t, s, oldEmail); model.ErrorCodeOf(err) != model.CodeNotFound {
				t.Errorf("old identifier %s still signs in: %v", oldEmail, err)
			}
		},
	}, {
		name: "state change",
		in: func(email string) map[string]any {
			return map[string]any{"traits": map[string]any{"email": email}, "state": "ACTIVE"}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if after.State != "ACTIVE" || after.StateChangedAt == nil || !after.StateChangedAt.After(*before.StateChangedAt) {
				t.Errorf("state %s changed at %v (before %v), want ACTIVE changed later", after.State, after.StateChangedAt, before.StateChangedAt)
			}
		},
	}, {
		name: "metadata given is kept",
		in: func(email string) map[string]any {
			return map[string]any{"traits": map[string]any{"email": email},
				"metadataPublic": map[string]any{"a": json.Number("1")}, "metadataAdmin": []any{"b"}}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if !jsonEqual(after.MetadataPublic, json.RawMessage(`{"a":1}`)) || !jsonEqual(after.MetadataAdmin, json.RawMessage(`["b"]`)) {
				t.Errorf("metadata %s / %s", after.MetadataPublic, after.MetadataAdmin)
			}
		},
	}, {
		name: "new schema",
		in: func(string) map[string]any {
			return map[string]any{"schemaId": "username", "traits": map[string]any{"username": "Dora"}}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if after.SchemaID != "username" || !slices.Equal(after.credentials()["PASSWORD"], []string{"dora"}) {
				t.Errorf("schemaId %s credentials %v, want username and dora", after.SchemaID, after.credentials())
			}
			if len(after.VerifiableAddresses)+len(after.RecoveryAddresses) != 0 {
				t.Errorf("addresses %+v %+v, want none under the username schema", after.VerifiableAddresses, after.RecoveryAddresses)
			}
			if cred, err := findPassword(t, s, "dora"); err != nil || cred.Hash != cheapBcrypt() {
				t.Errorf("password of dora: %+v, %v; want the imported hash", cred, err)
			}
		},
	}, {
		name: "new schema validates the traits",
		in: func(email string) map[string]any {
			return map[string]any{"schemaId": "username", "traits": map[string]any{"email": email}}
		},
		wantErrors: []string{"VALIDATION_FAILED /traits/email", "VALIDATION_FAILED /traits/username"},
	}, {
		name: "unknown schema",
		in: func(email string) map[string]any {
			return map[string]any{"schemaId": "nope", "traits": map[string]any{"email": email}}
		},
		wantErrors: []string{"SCHEMA_NOT_FOUND /schemaId"},
	}, {
		name: "invalid traits",
		in: func(string) map[string]any {
			return map[string]any{"traits": map[string]any{"email": "not an email", "extra": true}}
		},
		wantErrors: []string{"VALIDATION_FAILED /traits/email", "VALIDATION_FAILED /traits/extra"},
	}, {
		name: "new password hash",
		in: func(email string) map[string]any {
			return map[string]any{"traits": map[string]any{"email": email},
				"credentials": map[string]any{"password": map[string]any{"hashedPassword": otherHash}}}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			email := strings.ToLower(jsonString(t, before.Traits, "email"))
			if cred, err := findPassword(t, s, email); err != nil || cred.Hash != otherHash {
				t.Errorf("password of %s: %+v, %v; want the new hash", email, cred, err)
			}
		},
	}}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				email := fmt.Sprintf("upd%d@example.com", i)
				before := mustCreate(t, s, base(email))
				p := updateIdentity(t, s, before.ID, tc.in(email))
				stored := getIdentity(t, s, before.ID)
				if tc.wantErrors != nil {
					if got := errorsAt(p.UserErrors); !slices.Equal(got, tc.wantErrors) {
						t.Errorf("userErrors %v, want %v", got, tc.wantErrors)
					}
					if stored == nil || !reflect.DeepEqual(*stored, before) {
						t.Errorf("a refused update changed the identity:\n%+v\nwant %+v", stored, before)
					}
					return
				}
				if p.Identity == nil {
					t.Fatalf("updateIdentity: %v", errorsAt(p.UserErrors))
				}
				if stored == nil || !reflect.DeepEqual(*stored, *p.Identity) {
					t.Errorf("identity(id) = %+v\nwant what updateIdentity answered: %+v", stored, p.Identity)
				}
				// Credentials not given stay as they are, identifiers too.
				if got, want := p.Identity.credentials()["OIDC"], before.credentials()["OIDC"]; !slices.Equal(got, want) {
					t.Errorf("OIDC identifiers %v, want %v kept", got, want)
				}
				tc.check(t, s, before, *p.Identity)
			})
		}
	})
}

func jsonString(t *testing.T, doc json.RawMessage, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[key].(string)
	return s
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func op(o, path string, value ...any) map[string]any {
	m := map[string]any{"op": o, "path": path}
	if len(value) > 0 {
		m["value"] = value[0]
	}
	return m
}

func TestAdminPatchIdentity(t *testing.T) {
	tests := []struct {
		name       string
		ops        func(before identityJSON) []map[string]any
		wantErrors []string // when the patch must fail, leaving the identity as it was
		check      func(t *testing.T, s *testServer, before, after identityJSON)
	}{{
		name: "traits",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/traits/email", "Patched@Example.com")}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			// The identity has no password: its new login identifier
			// shows in the identifier filter, not as a credential.
			if !jsonEqual(after.Traits, raw(map[string]any{"email": "Patched@Example.com"})) ||
				after.credentials()["PASSWORD"] != nil || s.identityCount(t, "patched@example.com") != 1 {
				t.Errorf("traits %s credentials %v", after.Traits, after.credentials())
			}
			if !jsonEqual(after.MetadataAdmin, before.MetadataAdmin) || !jsonEqual(after.MetadataPublic, before.MetadataPublic) {
				t.Errorf("metadata changed: %s %s", after.MetadataPublic, after.MetadataAdmin)
			}
		},
	}, {
		name: "state",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/state", "inactive")}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if after.State != "INACTIVE" || after.StateChangedAt == nil || !after.StateChangedAt.After(*before.StateChangedAt) {
				t.Errorf("state %s changed at %v (before %v), want INACTIVE changed later", after.State, after.StateChangedAt, before.StateChangedAt)
			}
		},
	}, {
		name: "metadata_public member",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("add", "/metadata_public/foo", "bar"), op("add", "/metadata_public/n", json.Number("9007199254740993"))}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if want := `{"foo":"bar","n":9007199254740993}`; !jsonEqual(after.MetadataPublic, json.RawMessage(want)) {
				t.Errorf("metadataPublic %s, want %s", after.MetadataPublic, want)
			}
		},
	}, {
		name: "metadata_admin replaced",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/metadata_admin", map[string]any{"x": json.Number("1")})}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if !jsonEqual(after.MetadataAdmin, json.RawMessage(`{"x":1}`)) {
				t.Errorf("metadataAdmin %s", after.MetadataAdmin)
			}
		},
	}, {
		name: "metadata_admin removed",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("remove", "/metadata_admin")}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if !jsonEqual(after.MetadataAdmin, nil) {
				t.Errorf("metadataAdmin %s, want null", after.MetadataAdmin)
			}
		},
	}, {
		name: "schema_id with traits",
		ops: func(before identityJSON) []map[string]any {
			return []map[string]any{
				op("test", "/id", before.ID),
				op("replace", "/schema_id", "username"),
				op("replace", "/traits", map[string]any{"username": "Carol"}),
			}
		},
		check: func(t *testing.T, s *testServer, before, after identityJSON) {
			if after.SchemaID != "username" || after.credentials()["PASSWORD"] != nil || s.identityCount(t, "carol") != 1 {
				t.Errorf("schemaId %s credentials %v", after.SchemaID, after.credentials())
			}
		},
	}, {
		name: "schema_id alone validates against the new schema",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/schema_id", "username")}
		},
		wantErrors: []string{"VALIDATION_FAILED /traits/email", "VALIDATION_FAILED /traits/username"},
	}, {
		name: "unknown schema_id",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/schema_id", "nope")}
		},
		wantErrors: []string{"SCHEMA_NOT_FOUND /schemaId"},
	}, {
		name: "invalid traits",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/traits/email", "not an email")}
		},
		wantErrors: []string{"VALIDATION_FAILED /traits/email"},
	}, {
		name: "id",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/id", uuid.NewString())}
		},
		wantErrors: []string{"INVALID_PATCH /patch/0"},
	}, {
		name: "created_at",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/created_at", "2001-01-01T00:00:00Z")}
		},
		wantErrors: []string{"INVALID_PATCH /patch/0"},
	}, {
		name: "bad state",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("add", "/metadata_public", map[string]any{"a": 1}), op("replace", "/state", "banned")}
		},
		wantErrors: []string{"INVALID_PATCH /patch/1"},
	}, {
		name: "upper-case state",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("replace", "/state", "INACTIVE")}
		},
		wantErrors: []string{"INVALID_PATCH /patch/0"},
	}, {
		name: "failing test op",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{
				op("replace", "/traits/email", "someone@example.com"),
				op("test", "/traits/email", "someone-else@example.com"),
			}
		},
		wantErrors: []string{"INVALID_PATCH /patch/1"},
	}, {
		name: "missing path",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("remove", "/traits/nickname")}
		},
		wantErrors: []string{"INVALID_PATCH /patch/0"},
	}, {
		name: "unknown op",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("test", "/schema_id", "default"), op("frobnicate", "/traits")}
		},
		wantErrors: []string{"INVALID_PATCH /patch/1"},
	}, {
		name: "credentials are not part of the document",
		ops: func(identityJSON) []map[string]any {
			return []map[string]any{op("add", "/credentials", map[string]any{"password": map[string]any{"hashed_password": cheapBcrypt()}})}
		},
		wantErrors: []string{"INVALID_PATCH /patch"},
	}}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := mustCreate(t, s, map[string]any{
					"traits":         map[string]any{"email": fmt.Sprintf("patch%d@example.com", i)},
					"metadataPublic": map[string]any{"foo": "old"},
					"metadataAdmin":  map[string]any{"secret": "s"},
					"credentials":    map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "github", "subject": fmt.Sprint(i)}}}},
				})
				p := patchIdentity(t, s, before.ID, tc.ops(before)...)
				stored := getIdentity(t, s, before.ID)
				if tc.wantErrors != nil {
					if got := errorsAt(p.UserErrors); !slices.Equal(got, tc.wantErrors) {
						t.Errorf("userErrors %v, want %v (%+v)", got, tc.wantErrors, p.UserErrors)
					}
					if stored == nil || !reflect.DeepEqual(*stored, before) {
						t.Errorf("a refused patch changed the identity:\n%+v\nwant %+v", stored, before)
					}
					return
				}
				if p.Identity == nil {
					t.Fatalf("patchIdentity: %+v", p.UserErrors)
				}
				if stored == nil || !reflect.DeepEqual(*stored, *p.Identity) {
					t.Errorf("identity(id) = %+v\nwant what patchIdentity answered: %+v", stored, p.Identity)
				}
				// A patch cannot touch credentials: their identifiers stay.
				if got, want := p.Identity.credentials()["OIDC"], before.credentials()["OIDC"]; len(want) != 1 || !slices.Equal(got, want) {
					t.Errorf("OIDC identifiers %v, want %v kept", got, want)
				}
				if !p.Identity.UpdatedAt.After(before.UpdatedAt) {
					t.Errorf("updatedAt %v not after %v", p.Identity.UpdatedAt, before.UpdatedAt)
				}
				tc.check(t, s, before, *p.Identity)
			})
		}
		t.Run("unknown identity", func(t *testing.T) {
			p := patchIdentity(t, s, uuid.NewString(), op("replace", "/state", "inactive"))
			if got := errorsAt(p.UserErrors); len(got) != 1 || !strings.HasPrefix(got[0], "NOT_FOUND") {
				t.Errorf("userErrors %v, want NOT_FOUND", got)
			}
		})
	})
}

func TestAdminDeleteIdentity(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		keep := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "keep@example.com"}})
		gone := mustCreate(t, s, map[string]any{
			"traits":      map[string]any{"email": "gone@example.com"},
			"credentials": map[string]any{"password": map[string]any{"hashedPassword": cheapBcrypt()}, "oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": "123"}}}},
		})

		p := deleteIdentity(t, s, gone.ID)
		if p.DeletedID == nil || *p.DeletedID != gone.ID || len(p.UserErrors) != 0 {
			t.Fatalf("deleteIdentity = %v %v, want deletedId %s", p.DeletedID, errorsAt(p.UserErrors), gone.ID)
		}
		if got := getIdentity(t, s, gone.ID); got != nil {
			t.Errorf("identity(deleted id) = %+v, want null", got)
		}
		if got := allIdentityIDs(t, s); !slices.Equal(got, []string{keep.ID}) {
			t.Errorf("identities %v, want only %s", got, keep.ID)
		}
		if _, err := findPassword(t, s, "gone@example.com"); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("the deleted identity's password credential remains: %v", err)
		}

		p = deleteIdentity(t, s, gone.ID)
		if p.DeletedID != nil || len(p.UserErrors) != 1 || p.UserErrors[0].Code != "NOT_FOUND" {
			t.Errorf("second delete = %v %v, want deletedId null and NOT_FOUND", p.DeletedID, errorsAt(p.UserErrors))
		}

		// Its identifiers and addresses are free again, whatever the case.
		again := createIdentity(t, s, map[string]any{
			"traits":      map[string]any{"email": "Gone@Example.com"},
			"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": "123"}}}},
		})
		if again.Identity == nil || again.Identity.ID == gone.ID {
			t.Errorf("re-creating with the deleted identity's identifiers: %+v %v", again.Identity, errorsAt(again.UserErrors))
		}
	})
}

func TestAdminImportIdentities(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		pre := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "pre@example.com"}})
		in := []map[string]any{
			{"traits": map[string]any{"email": "a@example.com"}, "metadataAdmin": map[string]any{"k": "v"}},
			{"traits": map[string]any{"name": "no email"}},
			{"traits": map[string]any{"email": "b@example.com"}, "credentials": map[string]any{"password": map[string]any{"password": "Vq2!mZr-Lp0w@Tx8-kQ"}}},
			{"traits": map[string]any{"email": "A@Example.COM"}},
			{"traits": map[string]any{"email": "c@example.com"}, "state": "INACTIVE", "credentials": map[string]any{"password": map[string]any{"hashedPassword": cheapBcrypt()}}},
			{"traits": map[string]any{"email": "d@example.com"}, "credentials": map[string]any{"password": map[string]any{"hashedPassword": "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"}}},
			{"schemaId": "nope", "traits": map[string]any{"email": "e@example.com"}},
			{"traits": map[string]any{"email": "PRE@example.com"}},
			{"schemaId": "username", "traits": map[string]any{"username": "frank"}},
			{"schemaId": "username", "traits": map[string]any{"username": "FRANK"}},
		}
		want := [][]string{
			nil,
			{"VALIDATION_FAILED /traits/email", "VALIDATION_FAILED /traits/name"},
			nil,
			{"IDENTIFIER_TAKEN /traits/email"},
			nil,
			{"VALIDATION_FAILED /credentials/password/hashedPassword"},
			{"SCHEMA_NOT_FOUND /schemaId"},
			{"IDENTIFIER_TAKEN /traits/email"},
			nil,
			{"IDENTIFIER_TAKEN /traits/username"},
		}
		results := importIdentities(t, s, in)
		var created []string
		for i, res := range results {
			if res.Index != i {
				t.Errorf("result %d has index %d", i, res.Index)
			}
			if got := errorsAt(res.UserErrors); !slices.Equal(got, want[i]) {
				t.Errorf("item %d: userErrors %v, want %v", i, got, want[i])
			}
			if (res.Identity != nil) != (want[i] == nil) {
				t.Errorf("item %d: identity %+v with userErrors %v", i, res.Identity, want[i])
			}
			if res.Identity != nil {
				created = append(created, res.Identity.ID)
				if stored := getIdentity(t, s, res.Identity.ID); stored == nil || !reflect.DeepEqual(*stored, *res.Identity) {
					t.Errorf("item %d: identity(id) = %+v, want what the import answered: %+v", i, stored, res.Identity)
				}
			}
		}
		if r := results[0].Identity; r == nil || !jsonEqual(r.MetadataAdmin, json.RawMessage(`{"k":"v"}`)) {
			t.Errorf("item 0 lost its admin metadata: %+v", r)
		}
		if r := results[4].Identity; r == nil || r.State != "INACTIVE" {
			t.Errorf("item 4 is not INACTIVE: %+v", r)
		}
		// The refused items left nothing behind.
		if got, want := allIdentityIDs(t, s), append([]string{pre.ID}, created...); !slices.Equal(got, want) {
			t.Errorf("identities %v, want %v", got, want)
		}
		for _, email := range []string{"b@example.com", "c@example.com"} {
			if _, err := findPassword(t, s, email); err != nil {
				t.Errorf("password of %s: %v", email, err)
			}
		}
		if _, err := findPassword(t, s, "d@example.com"); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("the refused item's identifier was stored: %v", err)
		}

		t.Run("limit", func(t *testing.T) {
			items := func(n int) []map[string]any {
				out := make([]map[string]any, n)
				for i := range out {
					out[i] = map[string]any{"schemaId": "username", "traits": map[string]any{"username": fmt.Sprintf("bulk%04d", i)}}
				}
				return out
			}
			r := postAs(t, s, testAdminKey, qImport, map[string]any{"in": items(1001)})
			if got := r.codes(); !slices.Equal(got, []string{"BAD_USER_INPUT"}) || !strings.Contains(r.Errors[0].Message, "1000") {
				t.Errorf("1001 items: errors %+v, want one BAD_USER_INPUT naming the limit", r.Errors)
			}
			if !strings.Contains(string(r.Data), "null") {
				t.Errorf("1001 items: data %s, want null", r.Data)
			}
			if n := len(allIdentityIDs(t, s)); n != len(created)+1 {
				t.Errorf("the refused import wrote identities: %d", n)
			}
			results := importIdentities(t, s, items(1000))
			for i, res := range results {
				if res.Identity == nil {
					t.Fatalf("1000 items: item %d refused: %v", i, errorsAt(res.UserErrors))
				}
			}
		})
	})
}

func TestAdminIdentityQuery(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		if got := getIdentity(t, s, uuid.NewString()); got != nil {
			t.Errorf("identity(unknown) = %+v, want null", got)
		}
		r := postAs(t, s, testAdminKey, `{ identity(id: "not-a-uuid") { id } }`, nil)
		if c := r.code(0); c == "" || c == string(model.CodeInternal) {
			t.Errorf("identity(not a UUID): errors %+v, want a client error", r.Errors)
		}
	})
}

func TestAdminListIdentities(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		u1 := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "foo@example.com"}})
		u2 := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "bar@example.com"}, "state": "INACTIVE"})
		u3 := mustCreate(t, s, map[string]any{"schemaId": "username", "traits": map[string]any{"username": "Foo-User"}})
		u4 := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "baz@example.com"},
			"credentials": map[string]any{"oidc": map[string]any{"providers": []any{
				map[string]any{"provider": "github", "subject": "42"}, map[string]any{"provider": "apple", "subject": "Xy.Z"}}}}})
		u5 := mustCreate(t, s, map[string]any{"schemaId": "sms", "traits": map[string]any{"phone_number": "+1 415-555-2671"}})
		all := []string{u1.ID, u2.ID, u3.ID, u4.ID, u5.ID}

		tests := []struct {
			name   string
			filter map[string]any
			want   []string
		}{
			{"none", nil, all},
			{"empty filter", map[string]any{}, all},
			{"identifier normalised", map[string]any{"credentialsIdentifier": "  FOO@Example.COM "}, []string{u1.ID}},
			{"username identifier", map[string]any{"credentialsIdentifier": "foo-user"}, []string{u3.ID}},
			{"oidc identifier", map[string]any{"credentialsIdentifier": "github:42"}, []string{u4.ID}},
			{"oidc identifier as credentials shows it", map[string]any{"credentialsIdentifier": "apple:Xy.Z"}, []string{u4.ID}},
			{"phone identifier normalised", map[string]any{"credentialsIdentifier": " +1 (415) 555 2671 "}, []string{u5.ID}},
			{"identifier prefix does not match", map[string]any{"credentialsIdentifier": "foo"}, []string{}},
			{"unknown identifier", map[string]any{"credentialsIdentifier": "nobody@example.com"}, []string{}},
			{"blank identifier", map[string]any{"credentialsIdentifier": "   "}, []string{}},
			{"inactive", map[string]any{"state": "INACTIVE"}, []string{u2.ID}},
			{"active", map[string]any{"state": "ACTIVE"}, []string{u1.ID, u3.ID, u4.ID, u5.ID}},
			{"schema", map[string]any{"schemaId": "username"}, []string{u3.ID}},
			{"unknown schema", map[string]any{"schemaId": "nope"}, []string{}},
			{"ids in creation order", map[string]any{"ids": []string{u4.ID, u1.ID}}, []string{u1.ID, u4.ID}},
			{"unknown id", map[string]any{"ids": []string{uuid.NewString()}}, []string{}},
			{"no ids", map[string]any{"ids": []string{}}, []string{}},
			{"all given must match", map[string]any{"state": "ACTIVE", "schemaId": "default"}, []string{u1.ID, u4.ID}},
			{"all given must match, none does", map[string]any{"ids": []string{u2.ID}, "state": "ACTIVE"}, []string{}},
			{"identifier and state", map[string]any{"credentialsIdentifier": "bar@example.com", "state": "ACTIVE"}, []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				c := listIdentities(t, s, map[string]any{"filter": tc.filter})
				if got := c.ids(); !slices.Equal(got, tc.want) {
					t.Errorf("ids %v, want %v", got, tc.want)
				}
				if c.PageInfo.HasNextPage || c.PageInfo.HasPreviousPage {
					t.Errorf("pageInfo %+v on a single page", c.PageInfo)
				}
			})
		}

		t.Run("nodes are complete", func(t *testing.T) {
			c := listIdentities(t, s, nil)
			for i, want := range []identityJSON{u1, u2, u3, u4, u5} {
				if !reflect.DeepEqual(c.Edges[i].Node, want) {
					t.Errorf("node %d = %+v\nwant %+v", i, c.Edges[i].Node, want)
				}
			}
		})

		t.Run("pages", func(t *testing.T) {
			var got []string
			var after any
			for page := 0; ; page++ {
				if page > len(all) {
					t.Fatalf("paging by 1 does not end: %v", got)
				}
				c := listIdentities(t, s, map[string]any{"first": 1, "after": after})
				got = append(got, c.ids()...)
				if len(c.Edges) != 1 || *c.PageInfo.StartCursor != c.Edges[0].Cursor || *c.PageInfo.EndCursor != c.Edges[0].Cursor {
					t.Fatalf("page %d: %+v", page, c)
				}
				if c.PageInfo.HasPreviousPage != (page > 0) {
					t.Errorf("page %d: hasPreviousPage %v", page, c.PageInfo.HasPreviousPage)
				}
				if !c.PageInfo.HasNextPage {
					break
				}
				after = *c.PageInfo.EndCursor
			}
			if !slices.Equal(got, all) {
				t.Errorf("paging by 1 visited %v, want %v", got, all)
			}
			// After the last one: an empty page without cursors.
			last := listIdentities(t, s, map[string]any{"after": after, "first": 1})
			last = listIdentities(t, s, map[string]any{"after": last.Edges[0].Cursor})
			if len(last.Edges) != 0 || last.PageInfo.HasNextPage || last.PageInfo.StartCursor != nil || last.PageInfo.EndCursor != nil {
				t.Errorf("page after the last: %+v", last)
			}
			// The cursor stays valid when its identity is gone.
			mid := listIdentities(t, s, map[string]any{"first": 2})
			deleteIdentity(t, s, u2.ID)
			rest := listIdentities(t, s, map[string]any{"after": mid.PageInfo.EndCursor})
			if got, want := rest.ids(), []string{u3.ID, u4.ID, u5.ID}; !slices.Equal(got, want) {
				t.Errorf("after a deleted identity's cursor: %v, want %v", got, want)
			}
		})

		t.Run("bounds", func(t *testing.T) {
			for _, vars := range []map[string]any{
				{"first": 0}, {"first": -1}, {"first": 1001},
				{"after": "not a cursor!"}, {"after": base64.RawURLEncoding.EncodeToString([]byte("short"))},
			} {
				r := postAs(t, s, testAdminKey, qList, vars)
				if got := r.codes(); !slices.Equal(got, []string{"BAD_USER_INPUT"}) {
					t.Errorf("%v: codes %v (%+v), want [BAD_USER_INPUT]", vars, got, r.Errors)
				}
				if string(r.Data) != "null" {
					t.Errorf("%v: data %s, want null", vars, r.Data)
				}
			}
			for _, first := range []int{1, 1000} {
				if r := postAs(t, s, testAdminKey, qList, map[string]any{"first": first}); len(r.Errors) > 0 {
					t.Errorf("first %d: %+v", first, r.Errors)
				}
			}
		})
	})
}

// TestAdminErrorCodes answers every adminUserError code an admin operation can
// give, each at its input path, and writes nothing when it does.
func TestAdminErrorCodes(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		taken := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "taken@example.com"},
			"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": "taken"}}}}})
		// A write that does not touch credentials keeps them taken.
		if p := patchIdentity(t, s, taken.ID, op("add", "/metadata_public", map[string]any{"patched": true})); p.Identity == nil {
			t.Fatalf("patch: %v", errorsAt(p.UserErrors))
		} else {
			taken = *p.Identity
		}
		other := mustCreate(t, s, map[string]any{"schemaId": "username", "traits": map[string]any{"username": "other"}})
		before := map[string]identityJSON{taken.ID: taken, other.ID: other}

		unrecognised := "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"
		tests := []struct {
			name  string
			query string
			vars  map[string]any
			want  []string
		}{
			{"one violation", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "not an email"}}},
				[]string{"VALIDATION_FAILED /traits/email"}},
			{"missing trait", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{}}},
				[]string{"VALIDATION_FAILED /traits/email"}},
			{"traits not an object", qCreate, map[string]any{"in": map[string]any{"traits": "me@example.com"}},
				[]string{"VALIDATION_FAILED /traits"}},
			{"several violations", qCreate, map[string]any{"in": map[string]any{"schemaId": "basic", "traits": map[string]any{
				"email": "x@y", "name": map[string]any{"first": json.Number("1"), "middle": "M"}, "newsletter": "yes", "extra": true}}},
				[]string{"VALIDATION_FAILED /traits/extra", "VALIDATION_FAILED /traits/name/first", "VALIDATION_FAILED /traits/name/middle", "VALIDATION_FAILED /traits/newsletter"}},
			{"schema not found", qCreate, map[string]any{"in": map[string]any{"schemaId": "nope", "traits": map[string]any{"email": "n@example.com"}}},
				[]string{"SCHEMA_NOT_FOUND /schemaId"}},
			{"identifier taken, other case", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "Taken@EXAMPLE.com"}}},
				[]string{"IDENTIFIER_TAKEN /traits/email"}},
			{"username taken", qCreate, map[string]any{"in": map[string]any{"schemaId": "username", "traits": map[string]any{"username": "OTHER"}}},
				[]string{"IDENTIFIER_TAKEN /traits/username"}},
			{"oidc subject taken", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "o@example.com"},
				"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": "taken"}}}}}},
				[]string{"IDENTIFIER_TAKEN /credentials/oidc/providers/0"}},
			{"identifier taken by update", qUpdate, map[string]any{"id": other.ID, "in": map[string]any{"schemaId": "default", "traits": map[string]any{"email": "TAKEN@example.com"}}},
				[]string{"IDENTIFIER_TAKEN /traits/email"}},
			{"identifier taken by patch", qPatch, map[string]any{"id": other.ID, "patch": []any{op("replace", "/schema_id", "default"), op("replace", "/traits", map[string]any{"email": "taken@example.com"})}},
				[]string{"IDENTIFIER_TAKEN /traits/email"}},
			{"unrecognised hash", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"password": map[string]any{"hashedPassword": unrecognised}}}},
				[]string{"VALIDATION_FAILED /credentials/password/hashedPassword"}},
			{"malformed hash", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"password": map[string]any{"hashedPassword": "$2a$03$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6"}}}},
				[]string{"VALIDATION_FAILED /credentials/password/hashedPassword"}},
			{"password and hash", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"password": map[string]any{"password": "Vq2!mZr-Lp0w@Tx8-kQ", "hashedPassword": cheapBcrypt()}}}},
				[]string{"VALIDATION_FAILED /credentials/password"}},
			{"neither password nor hash", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"password": map[string]any{}}}},
				[]string{"VALIDATION_FAILED /credentials/password"}},
			// An admin's cleartext password skips the policy (Kratos does:
			// admins import what exists); an empty one is still refused.
			// TestImportFormatPasswordPolicy has the rest.
			{"empty password", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"password": map[string]any{"password": ""}}}},
				[]string{"VALIDATION_FAILED /credentials/password/password"}},
			{"empty oidc subject", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": ""}}}}}},
				[]string{"VALIDATION_FAILED /credentials/oidc/providers/0"}},
			{"oidc subject twice", qCreate, map[string]any{"in": map[string]any{"traits": map[string]any{"email": "h@example.com"},
				"credentials": map[string]any{"oidc": map[string]any{"providers": []any{
					map[string]any{"provider": "github", "subject": "7"}, map[string]any{"provider": "google", "subject": "7"}, map[string]any{"provider": "github", "subject": "7"}}}}}},
				[]string{"VALIDATION_FAILED /credentials/oidc/providers/2"}},
			{"update not found", qUpdate, map[string]any{"id": uuid.NewString(), "in": map[string]any{"traits": map[string]any{"email": "nf@example.com"}}},
				[]string{"NOT_FOUND"}},
			{"patch not found", qPatch, map[string]any{"id": uuid.NewString(), "patch": []any{op("replace", "/state", "inactive")}},
				[]string{"NOT_FOUND"}},
			{"delete not found", qDelete, map[string]any{"id": uuid.NewString()},
				[]string{"NOT_FOUND"}},
			{"invalid patch", qPatch, map[string]any{"id": taken.ID, "patch": []any{op("test", "/state", "inactive")}},
				[]string{"INVALID_PATCH /patch/0"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := adminPost(t, s, tc.query, tc.vars)
				var m map[string]payloadJSON
				r.decode(t, &m)
				if len(m) != 1 {
					t.Fatalf("data %s", r.Data)
				}
				for name, p := range m {
					got := make([]string, len(p.UserErrors))
					for i, e := range p.UserErrors {
						// NOT_FOUND is about the id argument, wherever it points.
						if e.Code == "NOT_FOUND" {
							e.Path = nil
						}
						got[i] = e.at()
						if e.Message == "" {
							t.Errorf("%s: %s without a message", name, e.Code)
						}
						if strings.Contains(e.Message, unrecognised) || strings.Contains(e.Message, "o6hx.Wog") {
							t.Errorf("%s: the message repeats the hash: %q", name, e.Message)
						}
					}
					if !slices.Equal(got, tc.want) {
						t.Errorf("%s: userErrors %v, want %v (%+v)", name, got, tc.want, p.UserErrors)
					}
					if p.Identity != nil || p.DeletedID != nil {
						t.Errorf("%s: a refused mutation answered a result: %s", name, r.Data)
					}
				}
			})
		}
		// Nothing of the refused writes was stored.
		c := listIdentities(t, s, nil)
		if len(c.Edges) != len(before) {
			t.Errorf("identities %v, want only %v", c.ids(), []string{taken.ID, other.ID})
		}
		for _, e := range c.Edges {
			if b, ok := before[e.Node.ID]; !ok || !reflect.DeepEqual(e.Node, b) {
				t.Errorf("identity %s changed:\n%+v\nwant %+v", e.Node.ID, e.Node, b)
			}
		}
	})
}

// adminOperation is one admin Query or Mutation field, called with valid
// arguments.
type adminOperation struct {
	field string // "Query.identity"
	query string
	vars  func(id string) map[string]any
	// identityAPI marks the fields of the identity API, whose admin call
	// must succeed without userErrors here (the session fields get ids of
	// sessions that do not exist).
	identityAPI bool
}

func adminOperations() []adminOperation {
	idVars := func(id string) map[string]any { return map[string]any{"id": id} }
	randomID := func(string) map[string]any { return map[string]any{"id": uuid.NewString()} }
	none := func(string) map[string]any { return nil }
	// deleteIdentity comes last: the admin row deletes the identity.
	return []adminOperation{
		{"Query.identity", `query($id: UUID!) { identity(id: $id) { id metadataAdmin } }`, idVars, true},
		{"Query.identities", `{ identities { edges { node { id credentials { type } } } } }`, none, true},
		{"Query.identityByExternalId", `{ identityByExternalId(externalId: "authz-external") { id externalId metadataAdmin } }`, none, true},
		{"Query.identitySessions", `query($id: UUID!) { identitySessions(identityId: $id) { id } }`, idVars, false},
		{"Query.session", `query($id: UUID!) { session(id: $id) { id } }`, randomID, false},
		{"Query.sessions", `{ sessions { edges { node { id identity { id } } } totalCount } }`, none, false},
		{"Mutation.createIdentity", `mutation { createIdentity(input: {traits: {email: "authz-create@example.com"}}) { identity { id } userErrors { code } } }`, none, true},
		{"Mutation.updateIdentity", `mutation($id: UUID!) { updateIdentity(id: $id, input: {traits: {email: "authz-update@example.com"}}) { identity { id } userErrors { code } } }`, idVars, true},
		{"Mutation.patchIdentity", `mutation($id: UUID!) { patchIdentity(id: $id, patch: [{op: "replace", path: "/state", value: "inactive"}]) { identity { id } userErrors { code } } }`, idVars, true},
		{"Mutation.importIdentities", `mutation { importIdentities(input: [{traits: {email: "authz-import@example.com"}}]) { results { index userErrors { code } } } }`, none, true},
		{"Mutation.revokeSession", `mutation($id: UUID!) { revokeSession(id: $id) { userErrors { code } } }`, randomID, false},
		{"Mutation.revokeIdentitySessions", `mutation($id: UUID!) { revokeIdentitySessions(identityId: $id) { revoked userErrors { code } } }`, idVars, false},
		{"Mutation.extendSession", `mutation($id: UUID!) { extendSession(id: $id) { session { id } userErrors { code } } }`, randomID, false},
		{"Query.courierMessages", `{ courierMessages { edges { node { id body } } } }`, none, false},
		{"Query.courierMessage", `query($id: UUID!) { courierMessage(id: $id) { id body } }`, randomID, false},
		{"Mutation.inviteIdentity", `mutation { inviteIdentity(input: {traits: {email: "authz-invite@example.com"}}) { identity { id } userErrors { code } } }`, none, true},
		{"Mutation.createRecoveryCode", `mutation($id: UUID!) { createRecoveryCode(identityId: $id) { expiresAt userErrors { message } } }`, idVars, true},
		// The identity has no TOTP app: the admin's call answers NOT_FOUND.
		{"Mutation.deleteIdentityCredential", `mutation($id: UUID!) { deleteIdentityCredential(identityId: $id, type: TOTP) { identity { id } userErrors { code } } }`, idVars, false},
		{"Query.events", `{ events(first: 5) { edges { node { id type actor { kind } } } pageInfo { hasNextPage } } }`, none, false},
		{"Query.webhookDeliveries", `{ webhookDeliveries(first: 5) { edges { node { id status } } } }`, none, false},
		{"Mutation.retryWebhookDelivery", `mutation($id: UUID!) { retryWebhookDelivery(id: $id) { userErrors { code } } }`, randomID, false},
		{"Mutation.deleteIdentity", `mutation($id: UUID!) { deleteIdentity(id: $id) { deletedId userErrors { code } } }`, idVars, true},
	}
}

// TestAdminAuthzCoversEveryAdminField fails when an admin Query or Mutation
// field has no row in the authorisation matrix below.
func TestAdminAuthzCoversEveryAdminField(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	var inSchema []string
	for _, typ := range []*ast.Definition{schema.Query, schema.Mutation} {
		for _, f := range typ.Fields {
			d := f.Directives.ForName("access")
			if d == nil {
				continue // graph's own test fails for a field without @access
			}
			if a := d.Arguments.ForName("requires"); a != nil && a.Value.Raw == "ADMIN" {
				inSchema = append(inSchema, typ.Name+"."+f.Name)
			}
		}
	}
	var inMatrix []string
	for _, o := range adminOperations() {
		inMatrix = append(inMatrix, o.field)
	}
	slices.Sort(inSchema)
	slices.Sort(inMatrix)
	if !slices.Equal(inSchema, inMatrix) {
		t.Errorf("admin fields in the schema %v\nin the matrix %v", inSchema, inMatrix)
	}
}

// TestAdminAuthz calls every admin field as each kind of caller: only the
// admin key gets through; everyone else gets UNAUTHENTICATED for that field,
// which is null, and changes nothing.
func TestAdminAuthz(t *testing.T) {
	callers := []struct{ name, authorization string }{
		{"anonymous", ""},
		{"bad bearer token", "Bearer not-a-valid-token"},
		{"admin key with a suffix", "Bearer " + testAdminKey + "x"},
		{"admin key as Basic", "Basic " + testAdminKey},
		{"admin key without scheme", testAdminKey},
		{"empty bearer", "Bearer "},
		// A valid non-admin session gets FORBIDDEN instead: see
		// TestSelfServiceAdminDataNeverReachesOwner.
	}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		victim := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "victim@example.com"}, "metadataAdmin": map[string]any{"secret": "s"}})
		for _, c := range callers {
			t.Run(c.name, func(t *testing.T) {
				for _, o := range adminOperations() {
					name := o.field[strings.Index(o.field, ".")+1:]
					r := postAuth(t, s, c.authorization, o.query, o.vars(victim.ID))
					if len(r.Errors) != 1 || r.code(0) != "UNAUTHENTICATED" || !reflect.DeepEqual(r.Errors[0].Path, []any{name}) {
						t.Errorf("%s: errors %+v, want one UNAUTHENTICATED at [%s]", o.field, r.Errors, name)
					}
					if d := string(r.Data); d != "null" && d != fmt.Sprintf(`{"%s":null}`, name) {
						t.Errorf("%s: data %s, want the field null", o.field, d)
					}
				}
			})
		}
		// None of the refused calls changed anything.
		c := listIdentities(t, s, nil)
		if len(c.Edges) != 1 || !reflect.DeepEqual(c.Edges[0].Node, victim) {
			t.Fatalf("after refused calls: %+v\nwant only %+v", c.Edges, victim)
		}

		t.Run("admin", func(t *testing.T) {
			for _, o := range adminOperations() {
				r := postAs(t, s, testAdminKey, o.query, o.vars(victim.ID))
				for _, code := range r.codes() {
					if code == "UNAUTHENTICATED" || code == "FORBIDDEN" {
						t.Errorf("%s: admin refused: %+v", o.field, r.Errors)
					}
				}
				if len(r.Errors) > 0 || (o.identityAPI && strings.Contains(string(r.Data), `"code"`)) {
					t.Errorf("%s: %s %+v, want success", o.field, r.Data, r.Errors)
				}
			}
			if getIdentity(t, s, victim.ID) != nil {
				t.Error("the admin's deleteIdentity did not delete")
			}
		})
	})
}

// TestAdminOnlyFieldsDoNotLeak asks for admin-only data every way GraphQL
// allows without the admin key: none of it may come back, not through an
// alias, a fragment, a nested selection or an error message.
func TestAdminOnlyFieldsDoNotLeak(t *testing.T) {
	const marker = "LEAK-MARKER-7c1f"
	queries := []struct{ name, query string }{
		{"plain", `query($id: UUID!) { identity(id: $id) { id metadataAdmin credentials { type identifiers } } }`},
		{"aliases", `query($id: UUID!) { i: identity(id: $id) { m: metadataAdmin c: credentials { t: type ids: identifiers } } }`},
		{"inline fragment", `query($id: UUID!) { identity(id: $id) { ... on Identity { metadataAdmin credentials { identifiers } } } }`},
		{"named fragment", `query($id: UUID!) { identity(id: $id) { ...Secret } } fragment Secret on Identity { metadataAdmin x: credentials { identifiers } }`},
		{"nested in a list", `{ identities { edges { node { ...on Identity { metadataAdmin } credentials { identifiers } } } } }`},
		{"beside a public field", `query($id: UUID!) { identitySchemas { id } identity(id: $id) { metadataAdmin } }`},
		{"mutation echo", `mutation { patchIdentity(id: "00000000-0000-0000-0000-000000000000", patch: [{op: "test", path: "/metadata_admin/secret", value: "guess"}]) { identity { metadataAdmin } userErrors { message } } }`},
		{"directives", `query($id: UUID!, $yes: Boolean = true) { identity(id: $id) @include(if: $yes) { metadataAdmin @skip(if: false) } }`},
	}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		victim := mustCreate(t, s, map[string]any{
			"traits":         map[string]any{"email": "leak@example.com"},
			"metadataAdmin":  map[string]any{"secret": marker},
			"metadataPublic": map[string]any{"public": "visible"},
			"credentials": map[string]any{
				"password": map[string]any{"hashedPassword": cheapBcrypt()},
				"oidc":     map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": "leak-subject"}}},
			},
		})
		for _, q := range queries {
			t.Run(q.name, func(t *testing.T) {
				var vars map[string]any
				if strings.Contains(q.query, "$id") {
					vars = map[string]any{"id": victim.ID}
				}
				for _, auth := range []string{"", "Bearer not-a-valid-token"} {
					r := postAuth(t, s, auth, q.query, vars)
					errs, _ := json.Marshal(r.Errors)
					body := string(r.Data) + string(errs)
					for _, secret := range []string{marker, "leak@example.com", "leak-subject", victim.ID} {
						if strings.Contains(body, secret) {
							t.Errorf("auth %q: the answer holds %q: %s", auth, secret, body)
						}
					}
					if len(r.Errors) == 0 {
						t.Errorf("auth %q: no error, data %s", auth, r.Data)
					}
					for _, c := range r.codes() {
						if c != "UNAUTHENTICATED" {
							t.Errorf("auth %q: code %s, want UNAUTHENTICATED (%+v)", auth, c, r.Errors)
						}
					}
					if strings.Contains(q.query, "identitySchemas") && !strings.Contains(string(r.Data), `"default"`) {
						t.Errorf("auth %q: the public field went missing: %s", auth, r.Data)
					}
				}
				// The same query as admin does show what it asks for, so the
				// checks above can see a leak.
				if !strings.HasPrefix(q.name, "mutation") {
					r := adminPost(t, s, q.query, vars)
					if !strings.Contains(string(r.Data), marker) && !strings.Contains(string(r.Data), "leak") {
						t.Errorf("admin: the query shows nothing secret, so it tests nothing: %s", r.Data)
					}
				}
			})
		}
		// The owner's view (whoami, mySessions, register) is covered by
		// TestSelfServiceAdminDataNeverReachesOwner.
	})
}

// hashVector is a password and a hash of it in a format Kratos imports.
type hashVector struct {
	name, password, hash string
	// costly vectors are checked with their password only, not a wrong one.
	costly bool
}

// importedHashVectors are outside vectors (Kratos's tests, the PHP manual,
// Python's hashlib) plus hashes made here with x/crypto and the standard
// library in Kratos's formats, with costs low enough for tests.
func importedHashVectors(t *testing.T) []hashVector {
	const pw = "correct horse battery"
	salt := []byte("0123456789abcdef")
	b64 := base64.RawStdEncoding.EncodeToString
	bc, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	pbkdf := func(name string, key []byte, err error) hashVector {
		if err != nil {
			t.Fatal(err)
		}
		return hashVector{"pbkdf2-" + name, pw, fmt.Sprintf("$pbkdf2-%s$i=1000,l=32$%s$%s", name, b64(salt), b64(key)), false}
	}
	sc, err := scrypt.Key([]byte(pw), salt, 1024, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	k256, err256 := pbkdf2.Key(sha256.New, pw, salt, 1000, 32)
	k512, err512 := pbkdf2.Key(sha512.New, pw, salt, 1000, 32)
	return []hashVector{
		{"bcrypt $2a$", pw, string(bc), false},
		{"bcrypt $2b$", pw, "$2b$" + string(bc)[4:], false},
		{"bcrypt $2y$", pw, "$2y$" + string(bc)[4:], false},
		{"php bcrypt $2y$", "rasmuslerdorf", "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq", false},
		{"argon2id", pw, "$argon2id$v=19$m=64,t=2,p=1$" + b64(salt) + "$" + b64(argon2.IDKey([]byte(pw), salt, 2, 64, 1, 32)), false},
		{"kratos argon2id", "test", "$argon2id$v=19$m=32,t=2,p=4$cm94YnRVOW5jZzFzcVE4bQ$MNzk5BtR2vUhrp6qQEjRNw", false},
		{"argon2i", pw, "$argon2i$v=19$m=64,t=3,p=1$" + b64(salt) + "$" + b64(argon2.Key([]byte(pw), salt, 3, 64, 1, 32)), false},
		pbkdf("sha256", k256, err256),
		pbkdf("sha512", k512, err512),
		{"kratos pbkdf2-sha256", "test", "$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI", true},
		{"kratos pbkdf2-sha512", "test", "$pbkdf2-sha512$i=100000,l=32$bdHBpn7OWOivJMVJypy2UqR0UnaD5prQXRZevj/05YU$+wArTfv1a+bNGO1iZrmEdVjhA+lL11wF4/IxpgYfPwc", true},
		{"scrypt", pw, "$scrypt$ln=1024,r=8,p=1$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(sc), false},
		{"python scrypt", "correct horse", "$scrypt$ln=1024,r=8,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$6g3umF+uVrJsObaTZhIbbTlgrvOEFcCItdwSjtPF67M=", false},
	}
}

// TestAdminImportPasswordHashes imports a hash of every supported format and
// checks that the stored hash is the one imported, that the password matches
// it and a wrong one does not (the service's own comparison of what the
// database holds), and then that the identity signs in with it.
func TestAdminImportPasswordHashes(t *testing.T) {
	vectors := importedHashVectors(t)
	hasher := password.NewHasher(password.Params{}, 4)
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		in := make([]map[string]any, len(vectors))
		for i, v := range vectors {
			in[i] = map[string]any{
				"traits":      map[string]any{"email": fmt.Sprintf("Hash%d@Example.com", i)},
				"credentials": map[string]any{"password": map[string]any{"hashedPassword": v.hash}},
			}
		}
		results := importIdentities(t, s, in) // checks that no hash comes back
		var wg sync.WaitGroup
		for i, v := range vectors {
			res := results[i]
			if res.Identity == nil {
				t.Errorf("%s: refused: %+v", v.name, res.UserErrors)
				continue
			}
			if c := res.Identity.credentials(); !slices.Equal(c["PASSWORD"], []string{fmt.Sprintf("hash%d@example.com", i)}) {
				t.Errorf("%s: credentials %v", v.name, c)
			}
			wg.Go(func() {
				cred, err := findPassword(t, s, fmt.Sprintf("hash%d@example.com", i))
				if err != nil {
					t.Errorf("%s: %v", v.name, err)
					return
				}
				if cred.Hash != v.hash || cred.IdentityID.String() != res.Identity.ID {
					t.Errorf("%s: stored %q for %s, want %q for %s", v.name, cred.Hash, cred.IdentityID, v.hash, res.Identity.ID)
				}
				for pw, want := range map[string]bool{v.password: true, v.password + "1": false} {
					if !want && v.costly {
						continue
					}
					if ok, err := hasher.Compare(context.Background(), pw, cred.Hash); err != nil || ok != want {
						t.Errorf("%s: Compare(%q) = %v, %v; want %v", v.name, pw, ok, err, want)
					}
				}
			})
		}
		wg.Wait()

		const login = `mutation($in: LoginInput!) { login(input: $in) { sessionToken session { identity { id } } userErrors { code } } }`
		type loginOut struct {
			SessionToken *string
			Session      *struct{ Identity struct{ ID string } }
			UserErrors   []adminUserError
		}
		for i, v := range vectors {
			if results[i].Identity == nil {
				continue
			}
			identifier := fmt.Sprintf("  HASH%d@example.COM ", i)
			if !v.costly {
				var out loginOut
				dataField(t, adminPost(t, s, login, map[string]any{"in": map[string]any{"identifier": identifier, "password": v.password + "1"}}), "login", &out)
				if out.Session != nil || len(out.UserErrors) != 1 || out.UserErrors[0].Code != "INVALID_CREDENTIALS" {
					t.Errorf("%s: login with a wrong password: %+v", v.name, out)
				}
			}
			var out loginOut
			dataField(t, adminPost(t, s, login, map[string]any{"in": map[string]any{"identifier": identifier, "password": v.password}}), "login", &out)
			if out.Session == nil || out.SessionToken == nil || out.Session.Identity.ID != results[i].Identity.ID {
				t.Errorf("%s: login = %+v, want a session of %s", v.name, out, results[i].Identity.ID)
			}
		}
	})
}

// TestAdminPaginationUnderConcurrentWrites walks the identities by pages of 7
// while another client keeps creating identities: every identity that existed
// at the start is seen exactly once, and nothing is seen twice.
func TestAdminPaginationUnderConcurrentWrites(t *testing.T) {
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		const initial = 60
		seed := make([]map[string]any, initial)
		for i := range seed {
			seed[i] = map[string]any{"schemaId": "username", "traits": map[string]any{"username": fmt.Sprintf("seed%03d", i)}}
		}
		for _, res := range importIdentities(t, s, seed) {
			if res.Identity == nil {
				t.Fatalf("seed: %v", errorsAt(res.UserErrors))
			}
		}
		existing := allIdentityIDs(t, s)
		if len(existing) != initial {
			t.Fatalf("%d identities, want %d", len(existing), initial)
		}

		var created atomic.Int64
		var writerErr atomic.Value
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := postNoT(s, testAdminKey, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code } } }`,
					map[string]any{"in": map[string]any{"schemaId": "username", "traits": map[string]any{"username": fmt.Sprintf("new%04d", i)}}})
				if err == nil && (len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"userErrors":[]`)) {
					err = fmt.Errorf("create: %s %+v", r.Data, r.Errors)
				}
				if err != nil {
					writerErr.Store(err)
					return
				}
				created.Add(1)
			}
		}()

		seen := map[string]int{}
		var order []string
		var after any
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			// Let at least one identity be added between any two pages.
			for n := created.Load(); created.Load() == n && writerErr.Load() == nil; {
				time.Sleep(time.Millisecond)
			}
			c := listIdentities(t, s, map[string]any{"first": 7, "after": after})
			if len(c.Edges) > 7 {
				t.Fatalf("page of %d", len(c.Edges))
			}
			for _, e := range c.Edges {
				seen[e.Node.ID]++
				order = append(order, e.Node.ID)
			}
			if !c.PageInfo.HasNextPage {
				break
			}
			after = *c.PageInfo.EndCursor
		}
		close(stop)
		<-done
		if err := writerErr.Load(); err != nil {
			t.Fatal(err)
		}
		if created.Load() == 0 {
			t.Fatal("no identity was created while paging")
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("identity %s seen %d times", id, n)
			}
		}
		for _, id := range existing {
			if seen[id] != 1 {
				t.Errorf("identity %s existed at the start and was seen %d times", id, seen[id])
			}
		}
		// Everything seen is real: an existing or a new identity.
		now := allIdentityIDs(t, s)
		for id := range seen {
			if !slices.Contains(now, id) {
				t.Errorf("paging returned %s, which does not exist", id)
			}
		}
		t.Logf("%d seen, %d created while paging", len(order), created.Load())
	})
}

// postNoT is a GraphQL POST for goroutines other than the test's own.
func postNoT(s *testServer, token, query string, vars map[string]any) (*gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := &gqlResponse{Status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return nil, err
	}
	return out, nil
}

// TestAdminListQueryCount lists 250 identities that each have credentials of
// two types and addresses: the page costs the same few queries whatever its
// size, so nothing is loaded per identity.
func TestAdminListQueryCount(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newAdminTestServer(t, dsn)
		// Installs the counting hook while nothing else runs.
		s.app.store.CountQueries()()

		const total = 250
		in := make([]map[string]any, total)
		for i := range in {
			in[i] = map[string]any{
				"traits": map[string]any{"email": fmt.Sprintf("count%03d@example.com", i)},
				"credentials": map[string]any{
					"password": map[string]any{"hashedPassword": cheapBcrypt()},
					"oidc":     map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": fmt.Sprint(i)}}},
				},
				"metadataAdmin": map[string]any{"i": i},
			}
		}
		for _, res := range importIdentities(t, s, in) {
			if res.Identity == nil {
				t.Fatalf("import: %v", errorsAt(res.UserErrors))
			}
		}

		counts := map[string]int{}
		for _, tc := range []struct {
			name string
			vars map[string]any
			want int
		}{
			{"first 1", map[string]any{"first": 1}, 1},
			{"first 50", map[string]any{"first": 50}, 50},
			{"first 250", map[string]any{"first": 250}, 250},
			{"default size", nil, 250},
			{"50 after 100", map[string]any{"first": 50, "after": nil}, 50},
			{"filtered by state", map[string]any{"first": 250, "filter": map[string]any{"state": "ACTIVE"}}, 250},
		} {
			if tc.name == "50 after 100" {
				c := listIdentities(t, s, map[string]any{"first": 100})
				tc.vars["after"] = *c.PageInfo.EndCursor
			}
			stop := s.app.store.CountQueries()
			c := listIdentities(t, s, tc.vars)
			counts[tc.name] = stop()
			if len(c.Edges) != tc.want {
				t.Fatalf("%s: %d identities, want %d", tc.name, len(c.Edges), tc.want)
			}
			for _, e := range c.Edges {
				n := e.Node
				if len(n.Credentials) != 2 || len(n.VerifiableAddresses) != 1 || len(n.RecoveryAddresses) != 1 || jsonEqual(n.MetadataAdmin, nil) {
					t.Fatalf("%s: node %s is incomplete: %+v", tc.name, n.ID, n)
				}
			}
		}
		want := counts["first 1"]
		for name, n := range counts {
			w := want
			if name == "50 after 100" {
				w++ // qList selects hasPreviousPage: after a cursor, one probe before it
			}
			if n != w || n > 6 || n == 0 {
				t.Errorf("%s: %d queries; want the same for every page size (first 1: %d, one more after a cursor), at most 6", name, n, want)
			}
		}
		t.Logf("queries per page: %v", counts)
	})
}

// TestAdminTraitsValidatedOnEveryWrite sends traits that break the schema
// through every admin write: each is refused with the violations at their
// paths, and nothing changes.
func TestAdminTraitsValidatedOnEveryWrite(t *testing.T) {
	bad := map[string]any{"email": "not-an-email", "nickname": "x"}
	want := []string{"VALIDATION_FAILED /traits/email", "VALIDATION_FAILED /traits/nickname"}
	eachAdminServer(t, func(t *testing.T, s *testServer) {
		victim := mustCreate(t, s, map[string]any{"traits": map[string]any{"email": "valid@example.com"}})
		tests := []struct {
			name string
			call func() []adminUserError
		}{
			{"create", func() []adminUserError { return createIdentity(t, s, map[string]any{"traits": bad}).UserErrors }},
			{"update", func() []adminUserError {
				return updateIdentity(t, s, victim.ID, map[string]any{"traits": bad}).UserErrors
			}},
			{"patch whole traits", func() []adminUserError {
				return patchIdentity(t, s, victim.ID, op("replace", "/traits", bad)).UserErrors
			}},
			{"patch members", func() []adminUserError {
				return patchIdentity(t, s, victim.ID, op("replace", "/traits/email", "not-an-email"), op("add", "/traits/nickname", "x")).UserErrors
			}},
			{"import", func() []adminUserError {
				return importIdentities(t, s, []map[string]any{{"traits": bad}})[0].UserErrors
			}},
			{"create under another schema", func() []adminUserError {
				return createIdentity(t, s, map[string]any{"schemaId": "username", "traits": map[string]any{"username": "ab"}}).UserErrors
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got := errorsAt(tc.call())
				w := want
				if strings.Contains(tc.name, "another schema") {
					w = []string{"VALIDATION_FAILED /traits/username"}
				}
				if !slices.Equal(got, w) {
					t.Errorf("userErrors %v, want %v", got, w)
				}
			})
		}
		c := listIdentities(t, s, nil)
		if len(c.Edges) != 1 || !reflect.DeepEqual(c.Edges[0].Node, victim) {
			t.Errorf("after refused writes: %+v\nwant only %+v", c.Edges, victim)
		}
	})
}
