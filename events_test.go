package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/identityd/identityd/graph"
)

const evQuery = `query($f: EventFilter, $first: Int, $after: String) {
  events(first: $first, after: $after, filter: $f) {
    edges { cursor node { id type occurredAt identityId actor { kind adminKeyId identityId } clientIp userAgent changedPaths data } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}`

type evActor struct {
	Kind       string
	AdminKeyID *string
	IdentityID *string
}

type evOut struct {
	ID           string
	Type         string
	OccurredAt   time.Time
	IdentityID   *string
	Actor        evActor
	ClientIP     *string
	UserAgent    *string
	ChangedPaths []string
	Data         map[string]any
}

type evPage struct {
	Edges []struct {
		Cursor string
		Node   evOut
	}
	PageInfo struct {
		HasNextPage     bool
		HasPreviousPage bool
		EndCursor       *string
	}
}

// evList is one page of events (admin), newest first.
func (s *testServer) evList(t *testing.T, f map[string]any, first int, after string) evPage {
	t.Helper()
	vars := map[string]any{"f": f, "first": first}
	if after != "" {
		vars["after"] = after
	}
	return field[evPage](t, s.admin(t, evQuery, vars), "events")
}

// evAll is every event f matches, oldest first (the order they happened).
func (s *testServer) evAll(t *testing.T, f map[string]any) []evOut {
	t.Helper()
	p := s.evList(t, f, 1000, "")
	out := make([]evOut, len(p.Edges))
	for i, e := range p.Edges {
		out[len(out)-1-i] = e.Node
	}
	return out
}

// evSince is what evAll returns after mark (the number of events seen
// before): the events made since.
func (s *testServer) evSince(t *testing.T, mark int) []evOut {
	t.Helper()
	all := s.evAll(t, nil)
	return all[mark:]
}

func evTypes(evs []evOut) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func evWantTypes(t *testing.T, what string, evs []evOut, want ...string) {
	t.Helper()
	if got := evTypes(evs); !slices.Equal(got, want) {
		t.Errorf("%s: events %v, want %v", what, got, want)
	}
}

func evData(e evOut, key string) string {
	v, ok := e.Data[key]
	if !ok {
		return "<none>"
	}
	return fmt.Sprint(v)
}

// evRaw is every stored events row as text, for looking for secrets.
func evRaw(t *testing.T, dsn string) string {
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
	return evQueryText(t, sqldb, `SELECT type, COALESCE(CAST(identity_id AS TEXT), ''), actor_kind, actor_id, client_ip, user_agent,
		CAST(changed_paths AS TEXT), COALESCE(CAST(data AS TEXT), '') FROM events`)
}

// evSecrets is every stored credential config and one-time code hash, as
// text: none of it may ever be in an event.
func evSecrets(t *testing.T, dsn string) []string {
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
	var out []string
	for _, q := range []string{
		`SELECT CAST(config AS TEXT) FROM identity_credentials WHERE type = 'password'`,
	} {
		for _, line := range strings.Split(evQueryText(t, sqldb, q), "\n") {
			var cfg struct {
				HashedPassword string `json:"hashed_password"`
			}
			if json.Unmarshal([]byte(line), &cfg) == nil && cfg.HashedPassword != "" {
				out = append(out, cfg.HashedPassword)
			}
		}
	}
	return out
}

func evQueryText(t *testing.T, sqldb *sql.DB, q string) string {
	t.Helper()
	rows, err := sqldb.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				b.Write(x)
			default:
				fmt.Fprint(&b, x)
			}
			b.WriteByte('\t')
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestEventsAdminWrites(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		keyID := graph.AdminKeyID(testAdminKey)
		create := func(in map[string]any) identityPayloadOut {
			t.Helper()
			r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { `+identFields+` } }`, map[string]any{"in": in})
			return field[identityPayloadOut](t, r, "createIdentity")
		}
		out := create(map[string]any{"schemaId": "person", "traits": map[string]any{"email": "ada@example.com", "username": "ada"},
			"credentials": map[string]any{"password": map[string]any{"password": pw1}}})
		if len(out.UserErrors) > 0 {
			t.Fatalf("createIdentity: %+v", out.UserErrors)
		}
		id := out.Identity.ID
		evs := s.evAll(t, nil)
		evWantTypes(t, "createIdentity", evs, "identity.created")
		e := evs[0]
		if e.IdentityID == nil || *e.IdentityID != id || e.Actor.Kind != "ADMIN" || e.Actor.AdminKeyID == nil || *e.Actor.AdminKeyID != keyID {
			t.Errorf("identity.created: %+v, want identity %s by admin key %s", e, id, keyID)
		}
		if e.ClientIP == nil || *e.ClientIP == "" || e.UserAgent == nil {
			t.Errorf("identity.created: client %v / %v, want the request's", e.ClientIP, e.UserAgent)
		}

		// A failed write leaves no event.
		taken := create(map[string]any{"schemaId": "person", "traits": map[string]any{"email": "ada@example.com", "username": "other"}})
		if got := codePaths(taken.UserErrors); !slices.Contains(got, "IDENTIFIER_TAKEN@/traits/email") {
			t.Fatalf("taken email: %v", got)
		}
		evWantTypes(t, "a refused create", s.evSince(t, 1))

		// An update: traits, state and admin metadata.
		r := s.admin(t, `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { `+identFields+` } }`,
			map[string]any{"id": id, "in": map[string]any{"schemaId": "person", "state": "INACTIVE",
				"traits":        map[string]any{"email": "ada@example.com", "username": "ada", "name": "Ada"},
				"metadataAdmin": map[string]any{"plan": "pro"}}})
		if up := field[identityPayloadOut](t, r, "updateIdentity"); len(up.UserErrors) > 0 {
			t.Fatalf("updateIdentity: %+v", up.UserErrors)
		}
		evs = s.evSince(t, 1)
		evWantTypes(t, "updateIdentity", evs, "identity.updated", "identity.state_changed")
		if len(evs) == 2 {
			if want := []string{"/metadata_admin/plan", "/state", "/traits/name"}; !slices.Equal(evs[0].ChangedPaths, want) {
				t.Errorf("changedPaths %v, want %v", evs[0].ChangedPaths, want)
			}
			if evData(evs[1], "from") != "active" || evData(evs[1], "to") != "inactive" {
				t.Errorf("state_changed data %v", evs[1].Data)
			}
			if evs[0].Actor.Kind != "ADMIN" {
				t.Errorf("update actor %+v", evs[0].Actor)
			}
		}

		// A patch, and an admin password reset (password.changed).
		r = s.admin(t, `mutation($id: UUID!, $p: [JSONPatchOperation!]!) { patchIdentity(id: $id, patch: $p) { `+identFields+` } }`,
			map[string]any{"id": id, "p": []any{
				map[string]any{"op": "replace", "path": "/state", "value": "active"},
				map[string]any{"op": "add", "path": "/metadata_public", "value": map[string]any{"tier": "gold"}},
			}})
		if p := field[identityPayloadOut](t, r, "patchIdentity"); len(p.UserErrors) > 0 {
			t.Fatalf("patchIdentity: %+v", p.UserErrors)
		}
		evs = s.evSince(t, 3)
		evWantTypes(t, "patchIdentity", evs, "identity.updated", "identity.state_changed")
		if len(evs) > 0 && !slices.Equal(evs[0].ChangedPaths, []string{"/metadata_public/tier", "/state"}) {
			t.Errorf("patch changedPaths %v", evs[0].ChangedPaths)
		}
		token, _ := s.mustLogin(t, "ada", pw1)
		r = s.admin(t, `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { `+identFields+` } }`,
			map[string]any{"id": id, "in": map[string]any{"schemaId": "person",
				"traits":        map[string]any{"email": "ada@example.com", "username": "ada", "name": "Ada"},
				"metadataAdmin": map[string]any{"plan": "pro"}, "metadataPublic": map[string]any{"tier": "gold"},
				"credentials": map[string]any{"password": map[string]any{"password": pw2}}}})
		if up := field[identityPayloadOut](t, r, "updateIdentity"); len(up.UserErrors) > 0 {
			t.Fatalf("password reset: %+v", up.UserErrors)
		}
		s.wantUnauthenticated(t, token, "after an admin password reset")
		evs = s.evSince(t, 5)
		evWantTypes(t, "admin password reset", evs, "session.created", "password.changed", "session.revoked")
		if len(evs) == 3 && evData(evs[2], "count") != "1" {
			t.Errorf("session.revoked data %v, want count 1", evs[2].Data)
		}

		// Delete, then import: one event each, none for a refused item.
		s.admin(t, `mutation($id: UUID!) { deleteIdentity(id: $id) { deletedId } }`, map[string]any{"id": id})
		evs = s.evSince(t, 8)
		evWantTypes(t, "deleteIdentity", evs, "identity.deleted")
		r = s.admin(t, `mutation($in: [CreateIdentityInput!]!) { importIdentities(input: $in) { results { index identity { id } userErrors { code path } } } }`,
			map[string]any{"in": []any{
				map[string]any{"schemaId": "person", "traits": map[string]any{"email": "b@example.com", "username": "bob"}},
				map[string]any{"schemaId": "person", "traits": map[string]any{"email": "c@example.com", "username": "bob"}},
				map[string]any{"schemaId": "person", "traits": map[string]any{"email": "d@example.com", "username": "dan"}},
			}})
		_ = r
		evs = s.evSince(t, 9)
		evWantTypes(t, "importIdentities", evs, "identity.imported", "identity.imported")

		raw := evRaw(t, dsn)
		for _, secret := range append([]string{pw1, pw2, testAdminKey}, evSecrets(t, dsn)...) {
			if strings.Contains(raw, secret) {
				t.Errorf("an events row holds a secret %q", secret)
			}
		}
	})
}

func TestEventsSelfService(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		token, id := s.mustRegister(t, "eve@example.com", pw1)
		evs := s.evAll(t, nil)
		evWantTypes(t, "register", evs, "identity.created", "session.created")
		for _, e := range evs {
			if e.Actor.Kind != "IDENTITY" || e.Actor.IdentityID == nil || *e.Actor.IdentityID != id {
				t.Errorf("%s actor %+v, want the identity itself", e.Type, e.Actor)
			}
		}
		if len(evs) == 2 && (evData(evs[1], "method") != "password" || evData(evs[1], "aal") != "aal1" || evData(evs[1], "session_id") == "<none>") {
			t.Errorf("session.created data %v", evs[1].Data)
		}

		// Failed logins: a wrong password and an unknown identifier, each
		// with the identifier normalised and a reason.
		s.wantLoginFails(t, " EVE@example.com ", pw2, "INVALID_CREDENTIALS")
		s.wantLoginFails(t, "nobody@example.com", pw2, "INVALID_CREDENTIALS")
		evs = s.evSince(t, 2)
		evWantTypes(t, "failed logins", evs, "login.failed", "login.failed")
		if len(evs) == 2 {
			if evs[0].IdentityID == nil || *evs[0].IdentityID != id || evData(evs[0], "identifier") != "eve@example.com" || evData(evs[0], "reason") != "wrong_password" {
				t.Errorf("wrong password: %+v", evs[0])
			}
			if evs[1].IdentityID != nil || evData(evs[1], "identifier") != "nobody@example.com" || evData(evs[1], "reason") != "unknown_identifier" {
				t.Errorf("unknown identifier: %+v", evs[1])
			}
		}

		other, _ := s.mustLogin(t, "eve@example.com", pw1)
		r := s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { `+identFields+` } }`,
			map[string]any{"t": map[string]any{"email": "eve@example.com"}})
		if len(r.Errors) > 0 {
			t.Fatalf("updateMyTraits: %+v", r.Errors)
		}
		// The same traits: nothing changed, no event.
		evWantTypes(t, "login, updateMyTraits with the same traits", s.evSince(t, 4), "session.created")

		r = s.gql(t, token, `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { userErrors { code path } } }`,
			map[string]any{"in": map[string]any{"currentPassword": pw1, "newPassword": pw2}})
		if len(r.Errors) > 0 || strings.Contains(string(r.Data), "code") {
			t.Fatalf("changeMyPassword: %s %+v", r.Data, r.Errors)
		}
		s.wantUnauthenticated(t, other, "the other session after a password change")
		evs = s.evSince(t, 5)
		evWantTypes(t, "changeMyPassword", evs, "password.changed", "session.revoked")
		for _, e := range evs {
			if e.Actor.Kind != "IDENTITY" || e.Actor.IdentityID == nil || *e.Actor.IdentityID != id {
				t.Errorf("%s actor %+v", e.Type, e.Actor)
			}
		}

		r = s.gql(t, token, `mutation { logout { userErrors { code } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("logout: %+v", r.Errors)
		}
		evs = s.evSince(t, 7)
		evWantTypes(t, "logout", evs, "session.revoked")

		// Recovery with a new password, from an admin's code.
		code := field[struct{ Code *string }](t, s.admin(t, vfCreateCodeQuery, map[string]any{"id": id}), "createRecoveryCode").Code
		rec := s.vfRecover(t, map[string]any{"code": *code, "newPassword": pw3})
		if len(rec.UserErrors) > 0 || rec.SessionToken == nil {
			t.Fatalf("recoverAccount: %+v", rec.UserErrors)
		}
		evs = s.evSince(t, 8)
		evWantTypes(t, "recoverAccount", evs, "password.changed", "recovery.completed", "session.created")

		raw := evRaw(t, dsn)
		secrets := append([]string{pw1, pw2, pw3, token, other, *code, *rec.SessionToken}, evSecrets(t, dsn)...)
		for _, secret := range secrets {
			if strings.Contains(raw, secret) {
				t.Errorf("an events row holds a secret %q", secret)
			}
		}
	})
}

func TestEventsQuery(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		_, a := s.mustRegister(t, "ann@example.com", pw1)
		s.mustLogin(t, "ann@example.com", pw1)
		s.mustLogin(t, "ann@example.com", pw1)
		_, b := s.mustRegister(t, "ben@example.com", pw1)
		s.wantLoginFails(t, "nobody@example.com", pw1, "INVALID_CREDENTIALS")
		all := s.evAll(t, nil)
		evWantTypes(t, "everything", all, "identity.created", "session.created", "session.created", "session.created",
			"identity.created", "session.created", "login.failed")

		evWantTypes(t, "ann's", s.evAll(t, map[string]any{"identityId": a}),
			"identity.created", "session.created", "session.created", "session.created")
		evWantTypes(t, "ben's", s.evAll(t, map[string]any{"identityId": b}), "identity.created", "session.created")
		evWantTypes(t, "session.*", s.evAll(t, map[string]any{"types": []string{"session.*"}}),
			"session.created", "session.created", "session.created", "session.created")
		evWantTypes(t, "exact and wildcard", s.evAll(t, map[string]any{"types": []string{"login.failed", "identity.*"}}),
			"identity.created", "identity.created", "login.failed")
		evWantTypes(t, "ann's identity.*", s.evAll(t, map[string]any{"identityId": a, "types": []string{"*.created"}}),
			"identity.created", "session.created", "session.created", "session.created")
		evWantTypes(t, "LIKE's metacharacters are literal", s.evAll(t, map[string]any{"types": []string{"session_created", "%"}}))
		evWantTypes(t, "no types", s.evAll(t, map[string]any{"types": []string{}}))

		// since and until: occurredAt, since inclusive, until exclusive.
		mid := all[4].OccurredAt
		evWantTypes(t, "since", s.evAll(t, map[string]any{"since": mid.Format(time.RFC3339Nano)}), "identity.created", "session.created", "login.failed")
		evWantTypes(t, "until", s.evAll(t, map[string]any{"until": mid.Format(time.RFC3339Nano)}),
			"identity.created", "session.created", "session.created", "session.created")

		// Keyset pages, newest first.
		var seen []string
		after := ""
		for page := 0; ; page++ {
			p := s.evList(t, nil, 3, after)
			for _, e := range p.Edges {
				seen = append(seen, e.Node.ID)
			}
			if (after != "") != p.PageInfo.HasPreviousPage {
				t.Errorf("page %d: hasPreviousPage %v", page, p.PageInfo.HasPreviousPage)
			}
			if !p.PageInfo.HasNextPage {
				break
			}
			after = *p.PageInfo.EndCursor
		}
		var want []string
		for i := len(all) - 1; i >= 0; i-- {
			want = append(want, all[i].ID)
		}
		if !slices.Equal(seen, want) {
			t.Errorf("pages gave %v, want %v", seen, want)
		}

		// Not for anyone but an admin; a bad cursor is BAD_USER_INPUT.
		tok, _ := s.mustLogin(t, "ben@example.com", pw1)
		if r := s.gql(t, tok, evQuery, nil); r.code(0) != "FORBIDDEN" {
			t.Errorf("events with a session: %v", r.codes())
		}
		if r := s.gql(t, testAdminKey, evQuery, map[string]any{"after": "nope"}); r.code(0) != "BAD_USER_INPUT" {
			t.Errorf("events after a bad cursor: %v", r.codes())
		}
	})
}

func TestEventsRetention(t *testing.T) {
	var clock vfClock
	eachSelfService(t, func(c *Config) { c.now = clock.now }, func(t *testing.T, s *testServer, dsn string) {
		s.mustRegister(t, "old@example.com", pw1)
		for range 3 {
			s.wantLoginFails(t, "nobody@example.com", pw1, "INVALID_CREDENTIALS")
		}
		clock.advance(100 * 24 * time.Hour)
		s.mustLogin(t, "old@example.com", pw1)
		n, err := s.app.store.PruneEvents(context.Background(), clock.now().Add(-90*24*time.Hour), 2)
		if err != nil || n != 5 {
			t.Fatalf("prune: %d, %v; want 5 events gone", n, err)
		}
		evWantTypes(t, "after pruning", s.evAll(t, nil), "session.created")
	})
	cfg := defaultConfig()
	cfg.Events.Retention = Duration(30 * time.Minute)
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "events.retention") {
		t.Errorf("a 30m retention: %v, want refused", err)
	}
}

func TestEventsMFA(t *testing.T) {
	mfaEach(t, nil, func(t *testing.T, e *mfaEnv) {
		s := e.s
		token, id := e.register(t, "mia@example.com")
		secret := e.enroll(t, token)
		codes := e.generateLookup(t, token)
		evs := s.evSince(t, 2)
		evWantTypes(t, "confirmTotp, generateLookupSecrets", evs, "credential.added", "credential.added")
		if len(evs) == 2 && (evData(evs[0], "credential_type") != "totp" || evData(evs[1], "credential_type") != "lookup_secret" ||
			evs[0].Actor.Kind != "IDENTITY") {
			t.Errorf("credential.added: %+v", evs)
		}

		tok2, _ := e.login(t, "mia@example.com")
		e.lift(t, tok2, map[string]any{"lookupSecret": codes[0]})
		evs = s.evSince(t, 4)
		evWantTypes(t, "login, loginSecondFactor", evs, "session.created", "second_factor.used")
		if len(evs) == 2 && evData(evs[1], "method") != "lookup_secret" {
			t.Errorf("second_factor.used data %v", evs[1].Data)
		}

		e.deleteCredential(t, id, "TOTP")
		evs = s.evSince(t, 6)
		evWantTypes(t, "deleteIdentityCredential", evs, "credential.removed", "session.revoked")
		if len(evs) == 2 && (evData(evs[0], "credential_type") != "totp" || evs[0].Actor.Kind != "ADMIN" || evData(evs[1], "count") != "2") {
			t.Errorf("deleteIdentityCredential events: %+v", evs)
		}

		raw := strings.ToLower(evRaw(t, e.dsn))
		for _, secret := range append([]string{strings.ToLower(secret), token, tok2}, codes...) {
			if strings.Contains(raw, strings.ToLower(secret)) {
				t.Errorf("an events row holds a secret %q", secret)
			}
		}
	})
}
