package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// personSchema has two password identifiers (email and username), an
// email that is verifiable and recovers the account, and a plain trait.
const personSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string",
          "format": "email",
          "ory.sh/kratos": {
            "credentials": {"password": {"identifier": true}},
            "verification": {"via": "email"},
            "recovery": {"via": "email"}
          }
        },
        "username": {
          "type": "string",
          "minLength": 3,
          "ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}
        },
        "name": {"type": "string"}
      },
      "required": ["email", "username"],
      "additionalProperties": false
    }
  }
}`

// Passwords that pass the policy.
const (
	pw1 = "violet-Kettle-orbit-42"
	pw2 = "amber-Lantern-maple-77"
	pw3 = "quiet-Harbour-ember-19"
)

// withPersonSchema adds personSchema as "person" next to the default
// (preset://email) schema.
func withPersonSchema(c *Config) {
	c.Identity.Schemas = append(c.Identity.Schemas, schemas.Source{
		ID: "person", URL: "base64://" + base64.StdEncoding.EncodeToString([]byte(personSchema)),
	})
}

// eachSelfService runs fn on a fresh server (with the person schema, then
// change) on every database; dsn is the server's database.
func eachSelfService(t *testing.T, change func(*Config), fn func(t *testing.T, s *testServer, dsn string)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, func(c *Config) {
			withPersonSchema(c)
			if change != nil {
				change(c)
			}
		})
		fn(t, s, dsn)
	})
}

// reqOpts is how a request authenticates and what else it carries.
type reqOpts struct {
	token   string            // bearer token
	cookies []*http.Cookie    // sent as the Cookie header
	header  map[string]string // extra headers
}

// exchange is a response with its raw body and the cookies it set.
type exchange struct {
	*gqlResponse
	Body    []byte
	Cookies []*http.Cookie
}

// post sends a GraphQL POST as o says and keeps the raw body, so tests can
// look for what must never be in it.
func (s *testServer) post(t *testing.T, o reqOpts, query string, vars map[string]any) *exchange {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	for _, c := range o.cookies {
		req.AddCookie(c)
	}
	for k, v := range o.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	out := &exchange{gqlResponse: &gqlResponse{Status: resp.StatusCode, Header: resp.Header}, Body: buf.Bytes(), Cookies: resp.Cookies()}
	dec := json.NewDecoder(bytes.NewReader(out.Body))
	dec.UseNumber()
	if err := dec.Decode(out.gqlResponse); err != nil {
		t.Fatalf("HTTP %d, body is not JSON: %q", resp.StatusCode, out.Body)
	}
	return out
}

// field decodes data.<name> into a T.
func field[T any](t *testing.T, r *gqlResponse, name string) T {
	t.Helper()
	var m map[string]json.RawMessage
	r.decode(t, &m)
	var v T
	raw, ok := m[name]
	if !ok {
		t.Fatalf("data has no %q: %s (errors %+v)", name, r.Data, r.Errors)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

type userError struct {
	Code    string
	Message string
	Path    *string
}

// codePaths renders userErrors as "CODE@path" for comparisons.
func codePaths(errs []userError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		p := "<nil>"
		if e.Path != nil {
			p = *e.Path
		}
		out[i] = e.Code + "@" + p
	}
	return out
}

type identityOut struct {
	ID                  string
	SchemaID            string
	State               string
	Traits              map[string]any
	MetadataPublic      any
	VerifiableAddresses []struct{ ID, Value, Via string }
}

// authMethodOut is one AuthenticationMethod of a session.
type authMethodOut struct {
	Method      string
	AAL         string
	CompletedAt time.Time
}

// methodNames lists the methods of a session, oldest first, as "METHOD/AAL".
func methodNames(ms []authMethodOut) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Method + "/" + m.AAL
	}
	return out
}

type sessionOut struct {
	ID                    string
	Active                bool
	IssuedAt              time.Time
	ExpiresAt             time.Time
	AuthenticatedAt       time.Time
	AAL                   string
	AuthenticationMethods []authMethodOut
	IPAddress             *string
	UserAgent             *string
	Identity              *identityOut
}

type authOut struct {
	Session      *sessionOut
	SessionToken *string
	CsrfToken    *string
	UserErrors   []userError
}

type identityPayloadOut struct {
	Identity   *identityOut
	UserErrors []userError
}

const (
	sessionFields = `id active issuedAt expiresAt authenticatedAt aal authenticationMethods { method aal completedAt } ipAddress userAgent identity { id schemaId state traits metadataPublic verifiableAddresses { id value via } }`
	authFields    = `session { ` + sessionFields + ` } sessionToken csrfToken userErrors { code message path }`
	identFields   = `identity { id schemaId state traits metadataPublic verifiableAddresses { id value via } } userErrors { code message path }`

	registerQuery = `mutation($in: RegisterInput!) { register(input: $in) { ` + authFields + ` } }`
	loginQuery    = `mutation($in: LoginInput!) { login(input: $in) { ` + authFields + ` } }`
	whoamiQuery   = `{ whoami { ` + sessionFields + ` } }`
)

// register signs up; it fails the test on a top-level error.
func (s *testServer) register(t *testing.T, in map[string]any) authOut {
	t.Helper()
	r := s.gql(t, "", registerQuery, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		t.Fatalf("register: %+v", r.Errors)
	}
	return field[authOut](t, r, "register")
}

// mustRegister signs up with the default schema and returns the token and
// the identity's id.
func (s *testServer) mustRegister(t *testing.T, email, password string) (token, identityID string) {
	t.Helper()
	out := s.register(t, map[string]any{"traits": map[string]any{"email": email}, "password": password})
	if len(out.UserErrors) > 0 || out.SessionToken == nil {
		t.Fatalf("register %s: %+v", email, out.UserErrors)
	}
	return *out.SessionToken, out.Session.Identity.ID
}

// login signs in; it fails the test on a top-level error.
func (s *testServer) login(t *testing.T, identifier, password string) authOut {
	t.Helper()
	r := s.gql(t, "", loginQuery, map[string]any{"in": map[string]any{"identifier": identifier, "password": password}})
	if len(r.Errors) > 0 {
		t.Fatalf("login %q: %+v", identifier, r.Errors)
	}
	return field[authOut](t, r, "login")
}

// mustLogin signs in and returns the session token and session.
func (s *testServer) mustLogin(t *testing.T, identifier, password string) (string, *sessionOut) {
	t.Helper()
	out := s.login(t, identifier, password)
	if len(out.UserErrors) > 0 || out.SessionToken == nil || out.Session == nil {
		t.Fatalf("login %q: %+v", identifier, out.UserErrors)
	}
	return *out.SessionToken, out.Session
}

// wantLoginFails asserts that a login gives exactly the one userError code
// and no session.
func (s *testServer) wantLoginFails(t *testing.T, identifier, password, code string) {
	t.Helper()
	out := s.login(t, identifier, password)
	if got := codePaths(out.UserErrors); len(got) != 1 || out.UserErrors[0].Code != code {
		t.Errorf("login %q: userErrors %v, want one %s", identifier, got, code)
	}
	if out.Session != nil || out.SessionToken != nil {
		t.Errorf("login %q failed yet gave a session", identifier)
	}
}

// whoami returns the session the token proves, failing the test otherwise.
func (s *testServer) whoami(t *testing.T, token string) *sessionOut {
	t.Helper()
	r := s.gql(t, token, whoamiQuery, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("whoami: %+v", r.Errors)
	}
	return field[*sessionOut](t, r, "whoami")
}

// wantUnauthenticated asserts that the token no longer proves a session.
func (s *testServer) wantUnauthenticated(t *testing.T, token, why string) {
	t.Helper()
	r := s.gql(t, token, `{ whoami { id } }`, nil)
	if got := r.codes(); len(got) != 1 || got[0] != "UNAUTHENTICATED" || !strings.Contains(string(r.Data), `"whoami":null`) {
		t.Errorf("%s: whoami gave codes %v data %s, want UNAUTHENTICATED", why, got, r.Data)
	}
}

// identityCount counts identities that sign in with identifier (admin).
func (s *testServer) identityCount(t *testing.T, identifier string) int {
	t.Helper()
	r := s.admin(t, `query($f: IdentityFilter) { identities(filter: $f) { edges { node { id } } } }`,
		map[string]any{"f": map[string]any{"credentialsIdentifier": identifier}})
	got := field[struct {
		Edges []struct{ Node struct{ ID string } }
	}](t, r, "identities")
	return len(got.Edges)
}

// sqlExec runs one statement on the server's database directly, for states
// the API cannot reach quickly (an old sign-in).
func sqlExec(t *testing.T, dsn, stmt string) {
	t.Helper()
	var sqldb *sql.DB
	if file, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		var err error
		if sqldb, err = sql.Open(sqliteshim.ShimName, "file:"+file+"?_pragma=busy_timeout(10000)"); err != nil {
			t.Fatal(err)
		}
	} else {
		sqldb = sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	}
	defer sqldb.Close()
	res, err := sqldb.ExecContext(context.Background(), stmt)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows changed, want 1", stmt, n)
	}
}

func strp(s string) *string { return &s }

func TestSelfServiceRegister(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "taken@example.com", pw1)
		tests := []struct {
			name       string
			in         map[string]any
			identifier string   // an identifier the new identity would have
			wantSchema string   // on success
			wantErrs   []string // CODE@path, on failure
		}{
			{name: "default schema", identifier: "reg@example.com", wantSchema: "default",
				in: map[string]any{"traits": map[string]any{"email": "reg@example.com"}, "password": pw1}},
			{name: "explicit schema", identifier: "preg", wantSchema: "person",
				in: map[string]any{"schemaId": "person", "traits": map[string]any{"email": "p@example.com", "username": "preg", "name": "P"}, "password": pw1}},
			{name: "explicit default schema", identifier: "reg2@example.com", wantSchema: "default",
				in: map[string]any{"schemaId": "default", "traits": map[string]any{"email": "reg2@example.com"}, "password": pw1}},
			{name: "bad email", identifier: "not-an-email",
				in:       map[string]any{"traits": map[string]any{"email": "not-an-email"}, "password": pw1},
				wantErrs: []string{"VALIDATION_FAILED@/traits/email"}},
			{name: "missing trait", identifier: "preg2",
				in:       map[string]any{"schemaId": "person", "traits": map[string]any{"email": "p2@example.com"}, "password": pw1},
				wantErrs: []string{"VALIDATION_FAILED@/traits/username"}},
			{name: "unknown trait and too short", identifier: "x@example.com",
				in:       map[string]any{"schemaId": "person", "traits": map[string]any{"email": "x@example.com", "username": "ab", "nope": 1}, "password": pw1},
				wantErrs: []string{"VALIDATION_FAILED@/traits/nope", "VALIDATION_FAILED@/traits/username"}},
			{name: "unknown schema", identifier: "s@example.com",
				in:       map[string]any{"schemaId": "nope", "traits": map[string]any{"email": "s@example.com"}, "password": pw1},
				wantErrs: []string{"SCHEMA_NOT_FOUND@/schemaId"}},
			{name: "identifier taken in another case", identifier: "taken@example.com",
				in:       map[string]any{"traits": map[string]any{"email": "Taken@Example.COM"}, "password": pw1},
				wantErrs: []string{"IDENTIFIER_TAKEN@/traits/email"}},
			{name: "weak password", identifier: "weak@example.com",
				in:       map[string]any{"traits": map[string]any{"email": "weak@example.com"}, "password": "short"},
				wantErrs: []string{"PASSWORD_POLICY@/password"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				before := s.identityCount(t, tc.identifier)
				got := s.register(t, tc.in)
				if tc.wantErrs != nil {
					gotErrs := codePaths(got.UserErrors)
					slices.Sort(gotErrs)
					if !slices.Equal(gotErrs, tc.wantErrs) {
						t.Errorf("userErrors %v, want %v", gotErrs, tc.wantErrs)
					}
					if got.Session != nil || got.SessionToken != nil {
						t.Errorf("a failed register gave a session")
					}
					if after := s.identityCount(t, tc.identifier); after != before {
						t.Errorf("identities with %s: %d → %d, want unchanged", tc.identifier, before, after)
					}
					return
				}
				if len(got.UserErrors) > 0 {
					t.Fatalf("userErrors %v", codePaths(got.UserErrors))
				}
				if got.SessionToken == nil || !strings.HasPrefix(*got.SessionToken, "ids_st_") || got.CsrfToken != nil {
					t.Fatalf("sessionToken %v csrfToken %v, want an ids_st_ token and no csrfToken", got.SessionToken, got.CsrfToken)
				}
				sess := got.Session
				if sess == nil || !sess.Active || sess.Identity == nil || sess.Identity.SchemaID != tc.wantSchema || sess.Identity.State != "ACTIVE" {
					t.Fatalf("session %+v, want active, identity of schema %s", sess, tc.wantSchema)
				}
				wantTraits, _ := json.Marshal(tc.in["traits"])
				gotTraits, _ := json.Marshal(sess.Identity.Traits)
				if !bytes.Equal(gotTraits, wantTraits) {
					t.Errorf("traits %s, want %s", gotTraits, wantTraits)
				}
				if !slices.Equal(methodNames(sess.AuthenticationMethods), []string{"PASSWORD/AAL1"}) || sess.AAL != "AAL1" || !sess.ExpiresAt.After(sess.IssuedAt) {
					t.Errorf("session %+v: want password method and expiry after issue", sess)
				}
				me := s.whoami(t, *got.SessionToken)
				if me.ID != sess.ID || me.Identity.ID != sess.Identity.ID {
					t.Errorf("whoami %s/%s, want %s/%s", me.ID, me.Identity.ID, sess.ID, sess.Identity.ID)
				}
				if n := s.identityCount(t, tc.identifier); n != 1 {
					t.Errorf("%d identities sign in with %s, want 1", n, tc.identifier)
				}
			})
		}
	})
}

func TestSelfServiceLoginIdentifierForms(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1,
			"traits": map[string]any{"email": "Ada.Lovelace@Example.com", "username": "AdaL"}})
		if len(reg.UserErrors) > 0 {
			t.Fatalf("register: %v", codePaths(reg.UserErrors))
		}
		id := reg.Session.Identity.ID
		tokens := map[string]bool{*reg.SessionToken: true}
		for _, identifier := range []string{
			"Ada.Lovelace@Example.com", "ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM",
			"  ada.lovelace@example.com  ", "\tAda.Lovelace@example.COM\n",
			"adal", "AdaL", "ADAL", " adal ",
		} {
			t.Run(fmt.Sprintf("%q", identifier), func(t *testing.T) {
				token, sess := s.mustLogin(t, identifier, pw1)
				if sess.Identity.ID != id {
					t.Errorf("signed in as %s, want %s", sess.Identity.ID, id)
				}
				if tokens[token] {
					t.Errorf("token reused")
				}
				tokens[token] = true
				if me := s.whoami(t, token); me.ID != sess.ID {
					t.Errorf("whoami session %s, want %s", me.ID, sess.ID)
				}
			})
		}
		// Near misses are not the identifier.
		for _, identifier := range []string{"ada.lovelace@example", "ada", "ada.lovelace@example.com.", ""} {
			s.wantLoginFails(t, identifier, pw1, "INVALID_CREDENTIALS")
		}
	})
}

func TestSelfServiceWhoami(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		token, id := s.mustRegister(t, "me@example.com", pw1)
		s.admin(t, `mutation($id: UUID!) { patchIdentity(id: $id, patch: [{op: "add", path: "/metadata_public", value: {plan: "pro", seats: 3}}]) { userErrors { code } } }`,
			map[string]any{"id": id})

		r := s.post(t, reqOpts{token: token, header: map[string]string{"User-Agent": "selfservice-test/1.0"}}, whoamiQuery, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("whoami: %+v", r.Errors)
		}
		me := field[*sessionOut](t, r.gqlResponse, "whoami")
		if me == nil || !me.Active || me.Identity == nil || me.Identity.ID != id {
			t.Fatalf("whoami %+v, want an active session of %s", me, id)
		}
		if got := me.Identity.Traits["email"]; got != "me@example.com" {
			t.Errorf("traits.email %v", got)
		}
		pub, _ := json.Marshal(me.Identity.MetadataPublic)
		if string(pub) != `{"plan":"pro","seats":3}` {
			t.Errorf("metadataPublic %s, want the admin's value", pub)
		}
		if len(me.Identity.VerifiableAddresses) != 1 || me.Identity.VerifiableAddresses[0].Value != "me@example.com" || me.Identity.VerifiableAddresses[0].Via != "email" {
			t.Errorf("verifiableAddresses %+v", me.Identity.VerifiableAddresses)
		}
		if me.IPAddress == nil || *me.IPAddress != "127.0.0.1" {
			t.Errorf("ipAddress %v, want 127.0.0.1", me.IPAddress)
		}
		if !me.AuthenticatedAt.Equal(me.IssuedAt) || !me.ExpiresAt.After(time.Now()) {
			t.Errorf("times: issued %v authenticated %v expires %v", me.IssuedAt, me.AuthenticatedAt, me.ExpiresAt)
		}
		// The session remembers the client that signed in.
		again := s.post(t, reqOpts{header: map[string]string{"User-Agent": "selfservice-test/1.0"}}, loginQuery,
			map[string]any{"in": map[string]any{"identifier": "me@example.com", "password": pw1}})
		out := field[authOut](t, again.gqlResponse, "login")
		if out.Session == nil || out.Session.UserAgent == nil || *out.Session.UserAgent != "selfservice-test/1.0" {
			t.Errorf("login session userAgent %+v", out.Session)
		}
	})
}

func TestSelfServiceLogout(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		a, _ := s.mustRegister(t, "bye@example.com", pw1)
		b, _ := s.mustLogin(t, "bye@example.com", pw1)
		r := s.gql(t, a, `mutation { logout { userErrors { code } } }`, nil)
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"userErrors":[]`) {
			t.Fatalf("logout: %s %+v", r.Data, r.Errors)
		}
		s.wantUnauthenticated(t, a, "after logout")
		if again := s.gql(t, a, `mutation { logout { userErrors { code } } }`, nil); again.code(0) != "UNAUTHENTICATED" {
			t.Errorf("second logout: codes %v, want UNAUTHENTICATED", again.codes())
		}
		if me := s.whoami(t, b); me == nil {
			t.Errorf("the other session ended too")
		}
	})
}

func TestSelfServiceUpdateMyTraits(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		reg := s.register(t, map[string]any{"schemaId": "person", "password": pw1,
			"traits": map[string]any{"email": "old@example.com", "username": "traveller", "name": "Before"}})
		token, id := *reg.SessionToken, reg.Session.Identity.ID
		s.mustRegister(t, "other@example.com", pw1)
		addr := reg.Session.Identity.VerifiableAddresses
		if len(addr) != 1 || addr[0].Value != "old@example.com" {
			t.Fatalf("verifiableAddresses %+v", addr)
		}
		update := func(t *testing.T, traits map[string]any) identityPayloadOut {
			t.Helper()
			r := s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { `+identFields+` } }`, map[string]any{"t": traits})
			if len(r.Errors) > 0 {
				t.Fatalf("updateMyTraits: %+v", r.Errors)
			}
			return field[identityPayloadOut](t, r, "updateMyTraits")
		}

		t.Run("invalid", func(t *testing.T) {
			got := update(t, map[string]any{"email": "nope", "username": "x"})
			errs := codePaths(got.UserErrors)
			slices.Sort(errs)
			if want := []string{"VALIDATION_FAILED@/traits/email", "VALIDATION_FAILED@/traits/username"}; !slices.Equal(errs, want) || got.Identity != nil {
				t.Errorf("userErrors %v identity %v, want %v and no identity", errs, got.Identity, want)
			}
			if me := s.whoami(t, token); me.Identity.Traits["name"] != "Before" {
				t.Errorf("traits changed: %v", me.Identity.Traits)
			}
		})
		t.Run("unchanged address keeps its row", func(t *testing.T) {
			got := update(t, map[string]any{"email": "old@example.com", "username": "traveller", "name": "After"})
			if len(got.UserErrors) > 0 || got.Identity == nil || got.Identity.Traits["name"] != "After" || got.Identity.ID != id {
				t.Fatalf("update: %+v", got)
			}
			if v := got.Identity.VerifiableAddresses; len(v) != 1 || v[0].ID != addr[0].ID {
				t.Errorf("verifiableAddresses %+v, want the same row %s", v, addr[0].ID)
			}
		})
		t.Run("taken", func(t *testing.T) {
			got := update(t, map[string]any{"email": "Other@example.com", "username": "traveller"})
			if errs := codePaths(got.UserErrors); !slices.Equal(errs, []string{"IDENTIFIER_TAKEN@/traits/email"}) {
				t.Errorf("userErrors %v", errs)
			}
		})
		t.Run("not a trait", func(t *testing.T) {
			got := update(t, map[string]any{"email": "old@example.com", "username": "traveller", "metadata_public": map[string]any{"x": 1}})
			if errs := codePaths(got.UserErrors); !slices.Equal(errs, []string{"VALIDATION_FAILED@/traits/metadata_public"}) {
				t.Errorf("userErrors %v", errs)
			}
		})
		t.Run("new email", func(t *testing.T) {
			got := update(t, map[string]any{"email": "new@example.com", "username": "traveller", "name": "After"})
			if len(got.UserErrors) > 0 || got.Identity == nil {
				t.Fatalf("update: %v", codePaths(got.UserErrors))
			}
			v := got.Identity.VerifiableAddresses
			if len(v) != 1 || v[0].Value != "new@example.com" || v[0].ID == addr[0].ID {
				t.Errorf("verifiableAddresses %+v, want a new row for new@example.com", v)
			}
			if _, sess := s.mustLogin(t, "New@Example.com", pw1); sess.Identity.ID != id {
				t.Errorf("new email signs in as %s", sess.Identity.ID)
			}
			s.wantLoginFails(t, "old@example.com", pw1, "INVALID_CREDENTIALS")
			s.mustLogin(t, "traveller", pw1)
			if n := s.identityCount(t, "old@example.com"); n != 0 {
				t.Errorf("old email still finds %d identities", n)
			}
			// The caller's session survives its own update.
			if me := s.whoami(t, token); me.Identity.Traits["email"] != "new@example.com" {
				t.Errorf("whoami traits %v", me.Identity.Traits)
			}
		})
	})
}

func TestSelfServiceChangeMyPassword(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		const email = "changer@example.com"
		a, _ := s.mustRegister(t, email, pw1)
		b, _ := s.mustLogin(t, email, pw1)
		c, _ := s.mustLogin(t, email, pw1)
		change := func(t *testing.T, token string, in map[string]any) identityPayloadOut {
			t.Helper()
			r := s.gql(t, token, `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { `+identFields+` } }`, map[string]any{"in": in})
			if len(r.Errors) > 0 {
				t.Fatalf("changeMyPassword: %+v", r.Errors)
			}
			return field[identityPayloadOut](t, r, "changeMyPassword")
		}
		wantErrs := func(t *testing.T, got identityPayloadOut, want ...string) {
			t.Helper()
			if errs := codePaths(got.UserErrors); !slices.Equal(errs, want) || got.Identity != nil {
				t.Errorf("userErrors %v identity %v, want %v", errs, got.Identity, want)
			}
		}

		t.Run("wrong current password", func(t *testing.T) {
			wantErrs(t, change(t, a, map[string]any{"currentPassword": "not-the-password-9", "newPassword": pw2}), "INVALID_CREDENTIALS@/currentPassword")
			s.whoami(t, b)
			s.mustLogin(t, email, pw1)
		})
		t.Run("policy", func(t *testing.T) {
			wantErrs(t, change(t, a, map[string]any{"currentPassword": pw1, "newPassword": "short"}), "PASSWORD_POLICY@/newPassword")
			s.whoami(t, b)
		})
		t.Run("with current password revokes other sessions", func(t *testing.T) {
			got := change(t, a, map[string]any{"currentPassword": pw1, "newPassword": pw2})
			if len(got.UserErrors) > 0 || got.Identity == nil {
				t.Fatalf("change: %v", codePaths(got.UserErrors))
			}
			s.wantUnauthenticated(t, b, "other session after a password change")
			s.wantUnauthenticated(t, c, "other session after a password change")
			s.whoami(t, a)
			s.wantLoginFails(t, email, pw1, "INVALID_CREDENTIALS")
			s.mustLogin(t, email, pw2)
		})
		t.Run("fresh sign-in needs no current password; keep other sessions", func(t *testing.T) {
			d, _ := s.mustLogin(t, email, pw2)
			got := change(t, d, map[string]any{"newPassword": pw3, "revokeOtherSessions": false})
			if len(got.UserErrors) > 0 {
				t.Fatalf("change: %v", codePaths(got.UserErrors))
			}
			s.whoami(t, a)
			s.whoami(t, d)
			s.wantLoginFails(t, email, pw2, "INVALID_CREDENTIALS")
			s.mustLogin(t, email, pw3)
		})
		t.Run("old sign-in needs the current password", func(t *testing.T) {
			me := s.whoami(t, a)
			sqlExec(t, dsn, fmt.Sprintf("UPDATE sessions SET authenticated_at = '2000-01-01 00:00:00+00:00' WHERE id = '%s'", me.ID))
			s.syncCache(t)
			wantErrs(t, change(t, a, map[string]any{"newPassword": pw1}), "REAUTHENTICATION_REQUIRED@/currentPassword")
			s.mustLogin(t, email, pw3)
			if got := change(t, a, map[string]any{"currentPassword": pw3, "newPassword": pw1}); len(got.UserErrors) > 0 {
				t.Errorf("with the current password: %v", codePaths(got.UserErrors))
			}
			s.mustLogin(t, email, pw1)
		})
	})
}

func TestSelfServicePasswordPolicy(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		const email = "policy.user@example.com"
		token, _ := s.mustRegister(t, email, pw1)
		for _, tc := range []struct{ name, password string }{
			{"too short", "Ab3$xy"},
			{"equals the identifier", email},
			{"identifier in another case", "Policy.User@Example.com"},
			{"common", "password123"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				reg := s.register(t, map[string]any{"traits": map[string]any{"email": "policy.user@example.com"}, "password": tc.password})
				// The identifier is taken as well: only the password rule matters here.
				if !slices.Contains(codePaths(reg.UserErrors), "PASSWORD_POLICY@/password") || reg.Session != nil {
					t.Errorf("register: userErrors %v, want PASSWORD_POLICY@/password", codePaths(reg.UserErrors))
				}
				fresh := s.register(t, map[string]any{"traits": map[string]any{"email": "fresh." + email}, "password": tc.password})
				if tc.name != "equals the identifier" && tc.name != "identifier in another case" {
					if errs := codePaths(fresh.UserErrors); !slices.Equal(errs, []string{"PASSWORD_POLICY@/password"}) {
						t.Errorf("register: userErrors %v, want PASSWORD_POLICY@/password", errs)
					}
				}
				r := s.gql(t, token, `mutation($p: String!) { changeMyPassword(input: {currentPassword: "`+pw1+`", newPassword: $p}) { userErrors { code message path } } }`,
					map[string]any{"p": tc.password})
				got := field[identityPayloadOut](t, r, "changeMyPassword")
				if errs := codePaths(got.UserErrors); !slices.Equal(errs, []string{"PASSWORD_POLICY@/newPassword"}) {
					t.Errorf("changeMyPassword: userErrors %v, want PASSWORD_POLICY@/newPassword", errs)
				}
			})
		}
		s.mustLogin(t, email, pw1)
	})
}

func TestSelfServiceLoginErrors(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		t.Run("unknown identifier and wrong password answer alike", func(t *testing.T) {
			s.mustRegister(t, "known@example.com", pw1)
			unknown := s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": "unknown@example.com", "password": pw1}})
			wrong := s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": "known@example.com", "password": pw2}})
			if unknown.Status != wrong.Status || !bytes.Equal(unknown.Body, wrong.Body) {
				t.Errorf("answers differ:\nunknown %d %s\nwrong   %d %s", unknown.Status, unknown.Body, wrong.Status, wrong.Body)
			}
			got := field[authOut](t, wrong.gqlResponse, "login")
			if errs := codePaths(got.UserErrors); len(errs) != 1 || got.UserErrors[0].Code != "INVALID_CREDENTIALS" || got.Session != nil || got.SessionToken != nil {
				t.Errorf("wrong password: %+v", got)
			}
		})

		for _, how := range []string{"updateIdentity", "patchIdentity"} {
			t.Run("disabled by "+how, func(t *testing.T) {
				email := strings.ToLower(how) + "@example.com"
				token, id := s.mustRegister(t, email, pw1)
				s.whoami(t, token)
				setState := func(state string) {
					t.Helper()
					var r *gqlResponse
					if how == "updateIdentity" {
						r = s.admin(t, `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { identity { state } userErrors { code } } }`,
							map[string]any{"id": id, "in": map[string]any{"traits": map[string]any{"email": email}, "state": state}})
					} else {
						r = s.admin(t, `mutation($id: UUID!, $v: JSON) { patchIdentity(id: $id, patch: [{op: "replace", path: "/state", value: $v}]) { identity { state } userErrors { code } } }`,
							map[string]any{"id": id, "v": strings.ToLower(state)})
					}
					if !strings.Contains(string(r.Data), `"state":"`+state+`"`) {
						t.Fatalf("%s to %s: %s", how, state, r.Data)
					}
				}
				setState("INACTIVE")

				// Its live sessions stop working at once, for every session field.
				s.wantUnauthenticated(t, token, "session of a disabled identity")
				if r := s.gql(t, token, `{ mySessions { id } }`, nil); r.code(0) != "UNAUTHENTICATED" {
					t.Errorf("mySessions: codes %v", r.codes())
				}
				if r := s.gql(t, token, `mutation { updateMyTraits(traits: {email: "x@example.com"}) { userErrors { code } } }`, nil); r.code(0) != "UNAUTHENTICATED" {
					t.Errorf("updateMyTraits: codes %v", r.codes())
				}

				r := s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": email, "password": pw1}})
				got := field[authOut](t, r.gqlResponse, "login")
				if len(got.UserErrors) != 1 || got.UserErrors[0].Code != "ACCOUNT_DISABLED" || got.UserErrors[0].Message != "account is disabled" {
					t.Errorf("login: userErrors %+v, want ACCOUNT_DISABLED \"account is disabled\"", got.UserErrors)
				}
				if got.Session != nil || got.SessionToken != nil || bytes.Contains(r.Body, []byte("ids_st_")) {
					t.Errorf("a disabled identity got a session: %s", r.Body)
				}
				// A wrong password does not learn that the account exists.
				s.wantLoginFails(t, email, pw2, "INVALID_CREDENTIALS")
				all := s.admin(t, `query($id: UUID!) { identitySessions(identityId: $id, activeOnly: false) { id } }`, map[string]any{"id": id})
				if n := len(field[[]struct{ ID string }](t, all, "identitySessions")); n != 1 {
					t.Errorf("%d sessions, want only the one from registration", n)
				}

				// Enabling it again does not bring the old sessions back.
				setState("ACTIVE")
				s.wantUnauthenticated(t, token, "session from before the identity was disabled")
				fresh, _ := s.mustLogin(t, email, pw1)
				s.whoami(t, fresh)
			})
		}
	})
}

func TestSelfServiceLoginThrottle(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "victim@example.com", pw1)
		s.mustRegister(t, "bystander@example.com", pw1)
		tooMany := func(identifier, password string) {
			t.Helper()
			r := s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": identifier, "password": password}})
			if r.code(0) != "TOO_MANY_ATTEMPTS" || bytes.Contains(r.Body, []byte("ids_st_")) {
				t.Errorf("login %q: codes %v body %s, want TOO_MANY_ATTEMPTS and no session", identifier, r.codes(), r.Body)
			}
		}
		// Five free failures, under any spelling of the identifier.
		for i, form := range []string{"victim@example.com", "Victim@Example.com", " VICTIM@example.com", "victim@EXAMPLE.com ", "victim@example.com"} {
			s.wantLoginFails(t, form, fmt.Sprintf("wrong-password-%d", i), "INVALID_CREDENTIALS")
		}
		// Then even the right password is refused for a while.
		tooMany("victim@example.com", pw1)
		tooMany("Victim@Example.COM", pw1)
		// Other accounts are not affected.
		s.mustLogin(t, "bystander@example.com", pw1)
		// An unknown identifier is limited the same way.
		for i := range 5 {
			s.wantLoginFails(t, "ghost@example.com", fmt.Sprintf("wrong-password-%d", i), "INVALID_CREDENTIALS")
		}
		tooMany("ghost@example.com", pw1)
		// The block is short at first and a success clears the count.
		time.Sleep(1100 * time.Millisecond)
		s.mustLogin(t, "victim@example.com", pw1)
		s.wantLoginFails(t, "victim@example.com", "wrong-password-x", "INVALID_CREDENTIALS")
		s.mustLogin(t, "victim@example.com", pw1)
	})
}

func TestSelfServiceSessions(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		const email = "multi@example.com"
		a, id := s.mustRegister(t, email, pw1)
		b, _ := s.mustLogin(t, email, pw1)
		c, _ := s.mustLogin(t, email, pw1)
		x, _ := s.mustRegister(t, "someone.else@example.com", pw1)
		sid := func(token string) string { t.Helper(); return s.whoami(t, token).ID }
		sa, sb, sc, sx := sid(a), sid(b), sid(c), sid(x)

		type sessionList []struct {
			ID       string
			Active   bool
			Identity struct{ ID string }
		}
		ids := func(l sessionList) []string {
			out := make([]string, len(l))
			for i, s := range l {
				out[i] = s.ID
			}
			return out
		}
		mine := func(token string) []string {
			t.Helper()
			r := s.gql(t, token, `{ mySessions { id active identity { id } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("mySessions: %+v", r.Errors)
			}
			l := field[sessionList](t, r, "mySessions")
			for _, s := range l {
				if !s.Active || s.Identity.ID != id {
					t.Errorf("mySessions entry %+v", s)
				}
			}
			return ids(l)
		}
		payload := func(token, query string, vars map[string]any, name string) []string {
			t.Helper()
			r := s.gql(t, token, query, vars)
			if len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", name, r.Errors)
			}
			return codePaths(field[struct{ UserErrors []userError }](t, r, name).UserErrors)
		}
		const revokeMine = `mutation($id: UUID!) { revokeMySession(id: $id) { userErrors { code message path } } }`

		if got, want := mine(a), []string{sc, sb, sa}; !slices.Equal(got, want) {
			t.Errorf("mySessions %v, want newest first %v", got, want)
		}
		// Someone else's session is not the caller's to end.
		if errs := payload(a, revokeMine, map[string]any{"id": sx}, "revokeMySession"); len(errs) != 1 || !strings.HasPrefix(errs[0], "NOT_FOUND") {
			t.Errorf("revoking another identity's session: %v, want NOT_FOUND", errs)
		}
		s.whoami(t, x)

		if errs := payload(a, revokeMine, map[string]any{"id": sb}, "revokeMySession"); len(errs) != 0 {
			t.Fatalf("revokeMySession: %v", errs)
		}
		s.wantUnauthenticated(t, b, "revoked by its owner")
		if got, want := mine(a), []string{sc, sa}; !slices.Equal(got, want) {
			t.Errorf("mySessions %v, want %v", got, want)
		}

		r := s.gql(t, a, `mutation { revokeMyOtherSessions { revoked userErrors { code } } }`, nil)
		if got := field[struct{ Revoked int }](t, r, "revokeMyOtherSessions"); got.Revoked != 1 {
			t.Errorf("revokeMyOtherSessions revoked %d, want 1", got.Revoked)
		}
		s.wantUnauthenticated(t, c, "other sessions revoked")
		if got := mine(a); !slices.Equal(got, []string{sa}) {
			t.Errorf("mySessions %v, want only the caller's", got)
		}
		s.whoami(t, x)

		// Admin views.
		const list = `query($id: UUID!, $all: Boolean) { identitySessions(identityId: $id, activeOnly: $all) { id active identity { id } } }`
		active := field[sessionList](t, s.admin(t, list, map[string]any{"id": id}), "identitySessions")
		if got := ids(active); !slices.Equal(got, []string{sa}) {
			t.Errorf("identitySessions %v, want [%s]", got, sa)
		}
		all := field[sessionList](t, s.admin(t, list, map[string]any{"id": id, "all": false}), "identitySessions")
		if got := ids(all); !slices.Equal(got, []string{sc, sb, sa}) {
			t.Errorf("identitySessions(activeOnly: false) %v, want %v", got, []string{sc, sb, sa})
		}
		for _, s := range all {
			if s.Active != (s.ID == sa) || s.Identity.ID != id {
				t.Errorf("session %+v", s)
			}
		}

		// extendSession moves the expiry later.
		before := s.whoami(t, a).ExpiresAt
		time.Sleep(20 * time.Millisecond)
		const extend = `mutation($id: UUID!) { extendSession(id: $id) { session { id expiresAt } userErrors { code } } }`
		ext := field[struct {
			Session    *struct{ ExpiresAt time.Time }
			UserErrors []userError
		}](t, s.admin(t, extend, map[string]any{"id": sa}), "extendSession")
		if ext.Session == nil || !ext.Session.ExpiresAt.After(before) {
			t.Errorf("extendSession: %+v, want expiresAt after %v", ext, before)
		}
		if after := s.whoami(t, a).ExpiresAt; !after.After(before) {
			t.Errorf("whoami expiresAt %v, want after %v", after, before)
		}
		if errs := payload(testAdminKey, extend, map[string]any{"id": sb}, "extendSession"); !slices.Equal(errs, []string{"NOT_FOUND@<nil>"}) {
			t.Errorf("extending a revoked session: %v, want NOT_FOUND", errs)
		}

		// revokeSession ends any one session.
		const revokeAny = `mutation($id: UUID!) { revokeSession(id: $id) { userErrors { code path } } }`
		if errs := payload(testAdminKey, revokeAny, map[string]any{"id": sa}, "revokeSession"); len(errs) != 0 {
			t.Fatalf("revokeSession: %v", errs)
		}
		s.wantUnauthenticated(t, a, "revoked by an admin")
		if errs := payload(testAdminKey, revokeAny, map[string]any{"id": sa}, "revokeSession"); !slices.Equal(errs, []string{"NOT_FOUND@<nil>"}) {
			t.Errorf("revoking twice: %v, want NOT_FOUND", errs)
		}

		// revokeIdentitySessions ends them all.
		d, _ := s.mustLogin(t, email, pw1)
		e, _ := s.mustLogin(t, email, pw1)
		r = s.admin(t, `mutation($id: UUID!) { revokeIdentitySessions(identityId: $id) { revoked userErrors { code } } }`, map[string]any{"id": id})
		if got := field[struct{ Revoked int }](t, r, "revokeIdentitySessions"); got.Revoked != 2 {
			t.Errorf("revokeIdentitySessions revoked %d, want 2", got.Revoked)
		}
		s.wantUnauthenticated(t, d, "all sessions revoked")
		s.wantUnauthenticated(t, e, "all sessions revoked")
		s.whoami(t, x)
	})
}

func TestSelfServiceWhoamiUnauthenticated(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		token, _ := s.mustRegister(t, "expiring@example.com", pw1)
		revoked, _ := s.mustLogin(t, "expiring@example.com", pw1)
		s.gql(t, revoked, `mutation { logout { userErrors { code } } }`, nil)
		sess := s.whoami(t, token)
		past := time.Now().Add(-time.Minute)
		if _, err := s.app.store.ExtendSession(context.Background(), uuid.MustParse(sess.ID), past, time.Now()); err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{
			"none":             "",
			"garbage":          "garbage",
			"prefixed garbage": "ids_st_garbage",
			"almost a token":   token[:len(token)-1] + "x",
			"expired":          token,
			"revoked":          revoked,
		} {
			s.wantUnauthenticated(t, tok, name)
		}
		// A garbled Authorization header is no session either.
		for _, h := range []string{"Bearer", "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "Token " + token} {
			r := s.post(t, reqOpts{header: map[string]string{"Authorization": h}}, `{ whoami { id } }`, nil)
			if r.code(0) != "UNAUTHENTICATED" {
				t.Errorf("Authorization %q: codes %v", h, r.codes())
			}
		}
	})
}

// TestSelfServiceLoginTiming measures, without asserting tight bounds, that
// an unknown identifier costs about what a wrong password does.
func TestSelfServiceLoginTiming(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		// Wrong passwords rotate over several accounts, so that no identifier
		// reaches its limit; 2×n failures stay within the address's 20.
		const n = 10
		known := make([]string, 4)
		for i := range known {
			known[i] = fmt.Sprintf("timing%d@example.com", i)
			s.mustRegister(t, known[i], pw1)
		}
		s.mustLogin(t, known[0], pw1) // warm up (a success counts no failure)
		timeLogin := func(identifier, password string) time.Duration {
			t.Helper()
			start := time.Now()
			r := s.gql(t, "", `mutation($in: LoginInput!) { login(input: $in) { userErrors { code } } }`,
				map[string]any{"in": map[string]any{"identifier": identifier, "password": password}})
			d := time.Since(start)
			if !strings.Contains(string(r.Data), "INVALID_CREDENTIALS") {
				t.Fatalf("login %s: %s %+v", identifier, r.Data, r.Errors)
			}
			return d
		}
		var unknown, wrong time.Duration
		for i := range n {
			if i%2 == 0 {
				unknown += timeLogin(fmt.Sprintf("nobody%d@example.com", i), pw2)
				wrong += timeLogin(known[i%len(known)], pw2)
			} else {
				wrong += timeLogin(known[i%len(known)], pw2)
				unknown += timeLogin(fmt.Sprintf("nobody%d@example.com", i), pw2)
			}
		}
		mu, mw := unknown/n, wrong/n
		ratio := float64(mu) / float64(mw)
		t.Logf("mean of %d logins: unknown identifier %v, wrong password %v, ratio %.2f", n, mu, mw, ratio)
		if ratio < 0.33 || ratio > 3.0 {
			t.Errorf("unknown/wrong ratio %.2f is outside 0.33–3.0: the answer time tells which identifiers exist", ratio)
		}
	})
}

// weakArgon2 is an argon2id hash of password with less memory than the
// server's (8 MiB, t=1, p=1).
func weakArgon2(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, 1, 4*1024, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, 4*1024, 1, 1,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func TestSelfServiceRehashOnLogin(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte(pw1), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		for _, tc := range []struct{ name, email, hash string }{
			{"bcrypt", "bcrypt@example.com", string(bc)},
			{"weaker argon2id", "argon@example.com", weakArgon2(pw1)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code message path } } }`,
					map[string]any{"in": map[string]any{"traits": map[string]any{"email": tc.email},
						"credentials": map[string]any{"password": map[string]any{"hashedPassword": tc.hash}}}})
				if got := field[identityPayloadOut](t, r, "createIdentity"); len(got.UserErrors) > 0 {
					t.Fatalf("import: %v", got.UserErrors)
				}
				stored := func() string {
					t.Helper()
					cred, err := s.app.store.FindPasswordCredential(ctx, []string{tc.email})
					if err != nil {
						t.Fatal(err)
					}
					return cred.Hash
				}
				if got := stored(); got != tc.hash {
					t.Fatalf("stored hash %q, want the imported one kept as is", got)
				}
				s.wantLoginFails(t, tc.email, pw2, "INVALID_CREDENTIALS")
				if got := stored(); got != tc.hash {
					t.Errorf("a failed login replaced the hash")
				}
				s.mustLogin(t, tc.email, pw1)
				rehashed := stored()
				if !strings.HasPrefix(rehashed, "$argon2id$v=19$m=8192,t=1,p=1$") {
					t.Fatalf("after login the hash is %.30q…, want argon2id with the server's parameters", rehashed)
				}
				s.mustLogin(t, tc.email, pw1)
				if again := stored(); again != rehashed {
					t.Errorf("a current hash was replaced again")
				}
				s.wantLoginFails(t, tc.email, pw2, "INVALID_CREDENTIALS")
			})
		}
	})
}

// TestSelfServiceOneCredentialCheckPerRequest: aliases, fragments and
// batches cannot multiply password guesses within one request.
func TestSelfServiceOneCredentialCheckPerRequest(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.mustRegister(t, "alias@example.com", pw1)
		const guess = `(input: {identifier: "alias@example.com", password: "guess-%d-abcdef"}) { userErrors { code } }`
		g := func(i int) string { return fmt.Sprintf(guess, i) }
		reg := `register(input: {traits: {email: "alias-new@example.com"}, password: "` + pw2 + `"}) { sessionToken }`
		queries := map[string]string{
			"aliases":            `mutation { a: login` + g(1) + ` b: login` + g(2) + ` }`,
			"many aliases":       `mutation { a: login` + g(1) + ` b: login` + g(2) + ` c: login` + g(3) + ` d: login` + g(4) + ` e: login` + g(5) + ` f: login` + g(6) + ` }`,
			"fragment":           `mutation { ...F } fragment F on Mutation { a: login` + g(1) + ` b: login` + g(2) + ` }`,
			"fragment and root":  `mutation { login` + g(1) + ` ...F } fragment F on Mutation { x: login` + g(2) + ` }`,
			"inline fragment":    `mutation { a: login` + g(1) + ` ... on Mutation { b: login` + g(2) + ` } }`,
			"login and register": `mutation { login` + g(1) + ` ` + reg + ` }`,
			"register twice":     `mutation { a: ` + reg + ` b: ` + reg + ` }`,
			"change twice":       `mutation { a: changeMyPassword(input: {currentPassword: "x-1-abcdefgh", newPassword: "` + pw2 + `"}) { userErrors { code } } b: changeMyPassword(input: {currentPassword: "x-2-abcdefgh", newPassword: "` + pw2 + `"}) { userErrors { code } } }`,
		}
		for name, q := range queries {
			t.Run(name, func(t *testing.T) {
				for range 3 {
					r := s.gql(t, "", q, nil)
					if r.code(0) != "BAD_USER_INPUT" || len(r.Errors) != 1 {
						t.Fatalf("codes %v (%+v), want [BAD_USER_INPUT]", r.codes(), r.Errors)
					}
					if len(r.Data) > 0 && string(r.Data) != "null" {
						t.Errorf("data %s: nothing may run", r.Data)
					}
				}
			})
		}
		t.Run("batched body", func(t *testing.T) {
			one := map[string]any{"query": `mutation { login` + g(1) + ` }`}
			two := map[string]any{"query": `mutation { ` + reg + ` }`}
			body, _ := json.Marshal([]any{one, two, one, one, one, one, one})
			resp, err := http.Post(s.URL+"/graphql", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("batched POST: status %d %s, want a 4xx", resp.StatusCode, buf.Bytes())
			}
			if bytes.Contains(buf.Bytes(), []byte("INVALID_CREDENTIALS")) || bytes.Contains(buf.Bytes(), []byte("ids_st_")) {
				t.Errorf("batched POST ran: %s", buf.Bytes())
			}
		})
		// Nothing above counted as an attempt (dozens of guesses would
		// have blocked the account), and nothing was created.
		s.mustLogin(t, "alias@example.com", pw1)
		if n := s.identityCount(t, "alias-new@example.com"); n != 0 {
			t.Errorf("a refused request registered an identity")
		}
		// One credential check per request is fine, with other fields.
		r := s.gql(t, "", `mutation { login(input: {identifier: "alias@example.com", password: "`+pw1+`"}) { sessionToken } } `, nil)
		if len(r.Errors) > 0 {
			t.Errorf("a single login: %+v", r.Errors)
		}
	})
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestSelfServiceCookieSession(t *testing.T) {
	const origin = "http://app.example.test"
	eachSelfService(t, func(c *Config) { c.Session.Cookie.AllowedOrigins = []string{origin} }, func(t *testing.T, s *testServer, _ string) {
		const email = "browser@example.com"
		s.mustRegister(t, email, pw1)
		loginVars := func(cookie any) map[string]any {
			in := map[string]any{"identifier": email, "password": pw1}
			if cookie != nil {
				in["cookie"] = cookie
			}
			return map[string]any{"in": in}
		}
		// checkCookies asserts a cookie login and returns the cookies and csrf token.
		checkCookies := func(t *testing.T, r *exchange) (*http.Cookie, *http.Cookie, string) {
			t.Helper()
			got := field[authOut](t, r.gqlResponse, "login")
			if len(got.UserErrors) > 0 || got.Session == nil {
				t.Fatalf("login: %+v", got)
			}
			if got.SessionToken != nil {
				t.Errorf("a cookie login put the session token in the body")
			}
			sc, cc := cookieNamed(r.Cookies, "identityd_session"), cookieNamed(r.Cookies, "identityd_session_csrf")
			if sc == nil || cc == nil {
				t.Fatalf("cookies %v, want identityd_session and identityd_session_csrf", r.Header.Values("Set-Cookie"))
			}
			if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || !strings.HasPrefix(sc.Value, "ids_st_") {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/", sc)
			}
			if sc.Expires.Sub(got.Session.ExpiresAt).Abs() > time.Second {
				t.Errorf("session cookie expires %v, session %v", sc.Expires, got.Session.ExpiresAt)
			}
			if cc.HttpOnly || cc.SameSite != http.SameSiteLaxMode {
				t.Errorf("csrf cookie %+v: want readable by scripts, SameSite=Lax", cc)
			}
			if got.CsrfToken == nil || *got.CsrfToken != cc.Value || cc.Value == "" {
				t.Errorf("csrfToken %v, want the csrf cookie's %q", got.CsrfToken, cc.Value)
			}
			if bytes.Contains(r.Body, []byte(sc.Value)) {
				t.Errorf("the body carries the session cookie's value")
			}
			return sc, cc, cc.Value
		}

		sc, _, csrf := checkCookies(t, s.post(t, reqOpts{}, loginQuery, loginVars(true)))
		jar := []*http.Cookie{{Name: sc.Name, Value: sc.Value}}

		t.Run("cookie alone answers whoami", func(t *testing.T) {
			r := s.post(t, reqOpts{cookies: jar}, `{ whoami { id identity { traits } } }`, nil)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), email) {
				t.Errorf("whoami by cookie: %s %+v", r.Data, r.Errors)
			}
		})
		const update = `mutation { updateMyTraits(traits: {email: "browser@example.com", extra: 1}) { userErrors { code } } }`
		const rename = `mutation { updateMyTraits(traits: {email: "renamed@example.com"}) { identity { traits } userErrors { code } } }`
		for name, hdr := range map[string]map[string]string{
			"no header":    nil,
			"wrong header": {"X-CSRF-Token": "not-the-token"},
			"empty header": {"X-CSRF-Token": ""},
			"other token":  {"X-CSRF-Token": csrf + "x"},
		} {
			t.Run("mutation without the csrf token: "+name, func(t *testing.T) {
				for _, q := range []string{rename, `mutation { logout { userErrors { code } } }`} {
					r := s.post(t, reqOpts{cookies: jar, header: hdr}, q, nil)
					if r.code(0) != "FORBIDDEN" || len(r.Errors) != 1 || (len(r.Data) > 0 && string(r.Data) != "null") {
						t.Errorf("%s: codes %v data %s, want FORBIDDEN and nothing run", q, r.codes(), r.Data)
					}
				}
				r := s.post(t, reqOpts{cookies: jar}, `{ whoami { identity { traits } } }`, nil)
				if !strings.Contains(string(r.Data), email) {
					t.Errorf("something changed: %s %+v", r.Data, r.Errors)
				}
			})
		}
		t.Run("mutation with the csrf token", func(t *testing.T) {
			hdr := map[string]string{"X-CSRF-Token": csrf}
			r := s.post(t, reqOpts{cookies: jar, header: hdr}, update, nil)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "VALIDATION_FAILED") {
				t.Errorf("updateMyTraits: %s %+v, want it to run (and refuse the extra trait)", r.Data, r.Errors)
			}
			r = s.post(t, reqOpts{cookies: jar, header: hdr}, rename, nil)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "renamed@example.com") {
				t.Errorf("updateMyTraits: %s %+v", r.Data, r.Errors)
			}
			r = s.post(t, reqOpts{cookies: jar, header: hdr}, `mutation { logout { userErrors { code } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("logout: %+v", r.Errors)
			}
			for _, name := range []string{"identityd_session", "identityd_session_csrf"} {
				if c := cookieNamed(r.Cookies, name); c == nil || c.MaxAge >= 0 {
					t.Errorf("logout did not clear %s: %v", name, r.Header.Values("Set-Cookie"))
				}
			}
			if r := s.post(t, reqOpts{cookies: jar}, `{ whoami { id } }`, nil); r.code(0) != "UNAUTHENTICATED" {
				t.Errorf("whoami after logout: codes %v", r.codes())
			}
		})

		t.Run("allowed origin gets the cookie without asking", func(t *testing.T) {
			r := s.post(t, reqOpts{header: map[string]string{"Origin": origin}}, loginQuery, map[string]any{"in": map[string]any{"identifier": "renamed@example.com", "password": pw1}})
			checkCookies(t, r)
			if r.Header.Get("Access-Control-Allow-Origin") != origin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("CORS headers %v", r.Header)
			}
			// Asking for no cookie is honoured.
			r = s.post(t, reqOpts{header: map[string]string{"Origin": origin}}, loginQuery, map[string]any{"in": map[string]any{"identifier": "renamed@example.com", "password": pw1, "cookie": false}})
			if got := field[authOut](t, r.gqlResponse, "login"); got.SessionToken == nil || len(r.Cookies) != 0 {
				t.Errorf("cookie: false: token %v cookies %v", got.SessionToken, r.Cookies)
			}
		})
		t.Run("other origin gets a token, no cookie, no CORS", func(t *testing.T) {
			r := s.post(t, reqOpts{header: map[string]string{"Origin": "http://evil.example.test"}}, loginQuery, map[string]any{"in": map[string]any{"identifier": "renamed@example.com", "password": pw1}})
			got := field[authOut](t, r.gqlResponse, "login")
			if got.SessionToken == nil || got.CsrfToken != nil || len(r.Cookies) != 0 {
				t.Errorf("token %v csrf %v cookies %v, want a token only", got.SessionToken, got.CsrfToken, r.Cookies)
			}
			if h := r.Header.Get("Access-Control-Allow-Origin"); h != "" {
				t.Errorf("Access-Control-Allow-Origin %q for another origin", h)
			}
		})
		t.Run("preflight", func(t *testing.T) {
			for _, tc := range []struct {
				origin string
				allow  bool
			}{{origin, true}, {"http://evil.example.test", false}, {"https://app.example.test", false}} {
				req, _ := http.NewRequest(http.MethodOptions, s.URL+"/graphql", nil)
				req.Header.Set("Origin", tc.origin)
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "content-type, x-csrf-token")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				acao, acac := resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials")
				if tc.allow && (resp.StatusCode >= 300 || acao != tc.origin || acac != "true" ||
					!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-csrf-token")) {
					t.Errorf("preflight from %s: %d %v", tc.origin, resp.StatusCode, resp.Header)
				}
				if !tc.allow && (acao != "" || acac != "") {
					t.Errorf("preflight from %s allowed: %v", tc.origin, resp.Header)
				}
			}
		})
		t.Run("bearer mutations need no csrf token", func(t *testing.T) {
			token, _ := s.mustLogin(t, "renamed@example.com", pw1)
			r := s.gql(t, token, `mutation { logout { userErrors { code } } }`, nil)
			if len(r.Errors) > 0 {
				t.Errorf("bearer logout: %+v", r.Errors)
			}
		})
	})
}

// TestSelfServiceAdminDataNeverReachesOwner asks for admin-only data as the
// owner in every query shape: each ask is FORBIDDEN on that field alone.
func TestSelfServiceAdminDataNeverReachesOwner(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		const marker = "zq-admin-only-7f3a9c"
		const email = "owner@example.com"
		r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"traits": map[string]any{"email": email}, "metadataPublic": map[string]any{"tier": "gold"},
				"metadataAdmin": map[string]any{"note": marker}, "credentials": map[string]any{"password": map[string]any{"password": pw1}}}})
		id := field[identityPayloadOut](t, r, "createIdentity").Identity.ID
		token, _ := s.mustLogin(t, email, pw1)

		tests := []struct {
			name, query string
			forbidden   [][]any // paths of the refused fields
			intact      string  // must be in the data
		}{
			{"plain", `{ whoami { id identity { id metadataPublic metadataAdmin } } }`,
				[][]any{{"whoami", "identity", "metadataAdmin"}}, `"tier":"gold"`},
			{"alias", `{ whoami { identity { id m: metadataAdmin } } }`,
				[][]any{{"whoami", "identity", "m"}}, id},
			{"two aliases", `{ whoami { identity { id a: metadataAdmin b: metadataAdmin } } }`,
				[][]any{{"whoami", "identity", "a"}, {"whoami", "identity", "b"}}, id},
			{"fragment", `{ whoami { identity { ...F } } } fragment F on Identity { id metadataAdmin }`,
				[][]any{{"whoami", "identity", "metadataAdmin"}}, id},
			{"inline fragment", `{ whoami { identity { id ... on Identity { metadataAdmin } } } }`,
				[][]any{{"whoami", "identity", "metadataAdmin"}}, id},
			{"nested in mySessions", `{ mySessions { id identity { id metadataAdmin } } }`,
				[][]any{{"mySessions", 0, "identity", "metadataAdmin"}}, id},
			{"credentials", `{ whoami { identity { id credentials { type identifiers } } } }`,
				[][]any{{"whoami", "identity", "credentials"}}, id},
			{"mutation payload", `mutation { updateMyTraits(traits: {email: "owner@example.com"}) { identity { id metadataAdmin credentials { type } } userErrors { code } } }`,
				[][]any{{"updateMyTraits", "identity", "metadataAdmin"}, {"updateMyTraits", "identity", "credentials"}}, id},
			{"changeMyPassword payload", `mutation { changeMyPassword(input: {currentPassword: "` + pw1 + `", newPassword: "` + pw2 + `", revokeOtherSessions: false}) { identity { id metadataAdmin } userErrors { code } } }`,
				[][]any{{"changeMyPassword", "identity", "metadataAdmin"}}, id},
			{"admin query", `{ identity(id: "` + id + `") { id metadataAdmin } whoami { id } }`,
				[][]any{{"identity"}}, `"whoami":{"id"`},
			{"admin list", `{ identities { edges { node { metadataAdmin } } } }`,
				[][]any{{"identities"}}, ""},
			{"admin sessions", `{ identitySessions(identityId: "` + id + `") { id } }`,
				[][]any{{"identitySessions"}}, ""},
			{"createIdentity", `mutation { createIdentity(input: {traits: {email: "made-by-owner@example.com"}}) { identity { id } } }`,
				[][]any{{"createIdentity"}}, ""},
			{"patch own metadata", `mutation { patchIdentity(id: "` + id + `", patch: [{op: "add", path: "/metadata_public/tier", value: "platinum"}]) { identity { id } } }`,
				[][]any{{"patchIdentity"}}, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := s.post(t, reqOpts{token: token}, tc.query, nil)
				if bytes.Contains(r.Body, []byte(marker)) {
					t.Errorf("the admin metadata reached the owner: %s", r.Body)
				}
				if len(r.Errors) != len(tc.forbidden) {
					t.Fatalf("errors %+v, want %d FORBIDDEN", r.Errors, len(tc.forbidden))
				}
				var data any
				r.decode(t, &data)
				for i, e := range r.Errors {
					if r.code(i) != "FORBIDDEN" {
						t.Errorf("error %d code %q, want FORBIDDEN", i, r.code(i))
					}
					path := make([]any, len(e.Path))
					for j, p := range e.Path {
						if n, ok := p.(json.Number); ok {
							k, _ := n.Int64()
							path[j] = int(k)
						} else {
							path[j] = p
						}
					}
					if !slices.ContainsFunc(tc.forbidden, func(w []any) bool { return fmt.Sprint(w) == fmt.Sprint(path) }) {
						t.Errorf("error at %v, want one of %v", path, tc.forbidden)
					}
					if v := at(data, path); v != nil {
						t.Errorf("the refused field at %v is %v, want null", path, v)
					}
				}
				if tc.intact != "" && !strings.Contains(string(r.Data), tc.intact) {
					t.Errorf("data %s lacks %s: the rest must stay intact", r.Data, tc.intact)
				}
			})
		}
		// None of the refused mutations did anything.
		if n := s.identityCount(t, "made-by-owner@example.com"); n != 0 {
			t.Errorf("a session created an identity")
		}
		got := s.admin(t, `query($id: UUID!) { identity(id: $id) { metadataPublic metadataAdmin } }`, map[string]any{"id": id})
		if !strings.Contains(string(got.Data), `"tier":"gold"`) || !strings.Contains(string(got.Data), marker) {
			t.Errorf("metadata changed: %s", got.Data)
		}
	})
}

// at follows path (object keys and list indexes) into v. It is nil when
// the value, or a parent that a non-null field's refusal nulled, is null.
func at(v any, path []any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
		if v == nil {
			return nil
		}
	}
	return v
}

// TestSelfServiceNoSecretsInResponses walks every flow and checks that no
// answer carries a password hash or a session token, except the one
// sessionToken that register and login hand out.
func TestSelfServiceNoSecretsInResponses(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte(pw1), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		var tokens []string
		check := func(what string, r *exchange, handedOut string) {
			t.Helper()
			for _, bad := range []string{"hashed_password", "$argon2", "$2a$", "$2b$", "$pbkdf2", "$scrypt"} {
				if bytes.Contains(r.Body, []byte(bad)) {
					t.Errorf("%s: the answer contains %q: %s", what, bad, r.Body)
				}
			}
			for _, tok := range tokens {
				n := bytes.Count(r.Body, []byte(tok))
				want := 0
				if tok == handedOut {
					want = 1
				}
				if n != want {
					t.Errorf("%s: session token appears %d times, want %d: %s", what, n, want, r.Body)
				}
			}
			if bytes.Contains(r.Body, []byte("ids_st_")) && handedOut == "" {
				t.Errorf("%s: a session token in the answer: %s", what, r.Body)
			}
		}
		authed := func(what string, r *exchange) string {
			t.Helper()
			var m map[string]authOut
			r.decode(t, &m)
			for _, out := range m {
				if out.SessionToken != nil {
					tokens = append(tokens, *out.SessionToken)
					check(what, r, *out.SessionToken)
					if !strings.Contains(string(r.Body), `"sessionToken":"`+*out.SessionToken+`"`) {
						t.Errorf("%s: the token is not in the sessionToken field", what)
					}
					return *out.SessionToken
				}
			}
			t.Fatalf("%s: no sessionToken: %s", what, r.Body)
			return ""
		}
		own := `identity { id schemaId state stateChangedAt traits metadataPublic verifiableAddresses { id value via verified status verifiedAt } recoveryAddresses { id value via } createdAt updatedAt }`
		everything := `identity { id schemaId state stateChangedAt traits metadataPublic metadataAdmin credentials { type identifiers createdAt updatedAt } verifiableAddresses { id value via verified status verifiedAt } recoveryAddresses { id value via } createdAt updatedAt }`

		a := authed("register", s.post(t, reqOpts{}, `mutation { register(input: {traits: {email: "tour@example.com"}, password: "`+pw1+`"}) { session { id identity { id } } sessionToken userErrors { code } } }`, nil))
		b := authed("login", s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": "tour@example.com", "password": pw1}}))
		cookie := s.post(t, reqOpts{}, loginQuery, map[string]any{"in": map[string]any{"identifier": "tour@example.com", "password": pw1, "cookie": true}})
		if sc := cookieNamed(cookie.Cookies, "identityd_session"); sc != nil {
			tokens = append(tokens, sc.Value)
		}
		check("cookie login", cookie, "")

		id := s.whoami(t, a).Identity.ID
		imp := s.post(t, reqOpts{token: testAdminKey}, `mutation($h: String!) { createIdentity(input: {traits: {email: "imported@example.com"}, credentials: {password: {hashedPassword: $h}}}) { `+everything+` userErrors { code message path } } }`,
			map[string]any{"h": string(bc)})
		check("createIdentity with a hash", imp, "")
		// A refused hash is not echoed (the message may name the format).
		bad := s.post(t, reqOpts{token: testAdminKey}, `mutation($h: String!) { createIdentity(input: {traits: {email: "bad-hash@example.com"}, credentials: {password: {hashedPassword: $h}}}) { identity { id } userErrors { code message path } } }`,
			map[string]any{"h": "$2a$10$Zq8badhashXYZ"})
		if !bytes.Contains(bad.Body, []byte("VALIDATION_FAILED")) || bytes.Contains(bad.Body, []byte("Zq8badhashXYZ")) {
			t.Errorf("a malformed hash: %s, want VALIDATION_FAILED without the hash", bad.Body)
		}
		s.mustLogin(t, "imported@example.com", pw1) // rehash

		steps := []struct {
			what, token, query string
			vars               map[string]any
		}{
			{"whoami", a, `{ whoami { id active issuedAt expiresAt authenticatedAt aal authenticationMethods { method aal completedAt } ipAddress userAgent ` + own + ` } }`, nil},
			{"mySessions", a, `{ mySessions { id ` + own + ` } }`, nil},
			{"updateMyTraits", a, `mutation { updateMyTraits(traits: {email: "tour@example.com"}) { ` + own + ` userErrors { code } } }`, nil},
			{"changeMyPassword", a, `mutation { changeMyPassword(input: {currentPassword: "` + pw1 + `", newPassword: "` + pw2 + `", revokeOtherSessions: false}) { ` + own + ` userErrors { code } } }`, nil},
			{"admin identity", testAdminKey, `query($id: UUID!) { ` + strings.Replace(everything, "identity {", "identity(id: $id) {", 1) + ` }`, map[string]any{"id": id}},
			{"admin identities", testAdminKey, `{ identities { edges { node { id traits metadataAdmin credentials { type identifiers } } } } }`, nil},
			{"admin identitySessions", testAdminKey, `query($id: UUID!) { identitySessions(identityId: $id, activeOnly: false) { id ipAddress userAgent identity { id } } }`, map[string]any{"id": id}},
			{"admin extendSession", testAdminKey, `mutation($id: UUID!) { extendSession(id: $id) { session { id identity { id } } userErrors { code } } }`, map[string]any{"id": s.whoami(t, b).ID}},
			{"revokeMyOtherSessions", a, `mutation { revokeMyOtherSessions { revoked userErrors { code } } }`, nil},
			{"logout", a, `mutation { logout { userErrors { code } } }`, nil},
			{"whoami after logout", a, `{ whoami { id } }`, nil},
		}
		for _, st := range steps {
			r := s.post(t, reqOpts{token: st.token}, st.query, st.vars)
			if st.what != "whoami after logout" && len(r.Errors) > 0 {
				t.Errorf("%s: %+v", st.what, r.Errors)
			}
			check(st.what, r, "")
		}
	})
}

// TestSelfServiceWhoamiIsOneQuery: whoami with the identity's own fields is
// at most one indexed read (the session joined with its identity), whoever
// asks; none when PostgreSQL's session cache answers (see
// TestSessionCache*).
func TestSelfServiceWhoamiIsOneQuery(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.app.store.CountQueries()() // installs the hook while nothing runs
		token, _ := s.mustRegister(t, "counted@example.com", pw1)
		for _, q := range []string{
			`{ whoami { id identity { id traits } } }`,
			`{ whoami { id active expiresAt aal authenticationMethods { method aal } identity { id schemaId state traits metadataPublic } } }`,
		} {
			stop := s.app.store.CountQueries()
			r := s.gql(t, token, q, nil)
			n := stop()
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "counted@example.com") {
				t.Fatalf("whoami: %s %+v", r.Data, r.Errors)
			}
			if n > 1 {
				t.Errorf("%s cost %d queries, want at most 1", q, n)
			}
		}
		stop := s.app.store.CountQueries()
		s.wantUnauthenticated(t, "ids_st_unknown", "an unknown token")
		if n := stop(); n != 1 {
			t.Errorf("an unknown session token cost %d queries, want 1", n)
		}

		// With a second factor: the AAL2 session's whoami and the AAL1
		// session's refusal are each still one read (the identity's row
		// says whether it has a second factor).
		if r := s.gql(t, token, `mutation { generateLookupSecrets { codes userErrors { code } } }`, nil); len(r.Errors) > 0 ||
			!strings.Contains(string(r.Data), `"userErrors":[]`) {
			t.Fatalf("generateLookupSecrets: %s %+v", r.Data, r.Errors)
		}
		stop = s.app.store.CountQueries()
		if r := s.gql(t, token, `{ whoami { aal authenticationMethods { method } identity { id traits availableAal } } }`, nil); len(r.Errors) > 0 ||
			!strings.Contains(string(r.Data), `"aal":"AAL2"`) || !strings.Contains(string(r.Data), `"availableAal":"AAL2"`) {
			t.Errorf("whoami after generateLookupSecrets: %s %+v, want AAL2", r.Data, r.Errors)
		}
		if n := stop(); n > 1 {
			t.Errorf("whoami of an AAL2 session cost %d queries, want at most 1", n)
		}
		aal1, _ := s.mustLogin(t, "counted@example.com", pw1)
		stop = s.app.store.CountQueries()
		r := s.gql(t, aal1, `{ whoami { id } }`, nil)
		if n := stop(); n > 1 {
			t.Errorf("whoami of an AAL1 session needing AAL2 cost %d queries, want at most 1", n)
		}
		if got := r.codes(); len(got) != 1 || got[0] != "SESSION_AAL2_REQUIRED" {
			t.Errorf("whoami of an AAL1 session needing AAL2: codes %v, want SESSION_AAL2_REQUIRED", got)
		}
	})
}

// TestSessionListsReadTheIdentityOnce: every session in mySessions and
// identitySessions is the same identity's, so asking for it costs one read
// for the whole list, not one per session, and every session shows it.
func TestSessionListsReadTheIdentityOnce(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		s.app.store.CountQueries()() // installs the hook while nothing runs
		token, id := s.mustRegister(t, "lists@example.com", pw1)
		for range 3 {
			s.mustLogin(t, "lists@example.com", pw1)
		}
		const fragment = ` fragment F on Session { identity { id traits verifiableAddresses { value } } }`
		for _, c := range []struct {
			name, bare, full string
			admin            bool
		}{
			{"mySessions", `{ mySessions { id } }`, `{ mySessions { id ...F } }` + fragment, false},
			{"identitySessions", `query($id: UUID!) { identitySessions(identityId: $id) { id } }`,
				`query($id: UUID!) { identitySessions(identityId: $id) { id ...F } }` + fragment, true},
		} {
			query := func(q string) *gqlResponse {
				if c.admin {
					return s.admin(t, q, map[string]any{"id": id})
				}
				return s.gql(t, token, q, nil)
			}
			stop := s.app.store.CountQueries()
			bare := query(c.bare)
			without := stop()
			stop = s.app.store.CountQueries()
			r := query(c.full)
			with := stop()
			if len(bare.Errors) > 0 || len(r.Errors) > 0 {
				t.Fatalf("%s: %+v %+v", c.name, bare.Errors, r.Errors)
			}
			var out map[string][]struct {
				ID       string
				Identity struct {
					ID                  string
					VerifiableAddresses []struct{ Value string }
				}
			}
			if err := json.Unmarshal(r.Data, &out); err != nil {
				t.Fatal(err)
			}
			list := out[c.name]
			if len(list) != 4 {
				t.Fatalf("%s: %d sessions, want 4: %s", c.name, len(list), r.Data)
			}
			for _, sess := range list {
				if sess.Identity.ID != id || len(sess.Identity.VerifiableAddresses) != 1 || sess.Identity.VerifiableAddresses[0].Value != "lists@example.com" {
					t.Errorf("%s: session %s shows identity %+v, want %s with its address", c.name, sess.ID, sess.Identity, id)
				}
			}
			// At most one: the caller's own session may come from the
			// session cache in one request and not the other.
			if with-without > 1 {
				t.Errorf("%s: the identity of 4 sessions cost %d more queries, want at most 1", c.name, with-without)
			}
		}
	})
}
