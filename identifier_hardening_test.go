package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// withUsernameAndSMS serves preset://username (the default), preset://sms
// and preset://blank, so that usernames, phone numbers and free traits live
// side by side.
func withUsernameAndSMS(c *Config) {
	c.Identity.Schemas = []schemas.Source{
		{ID: "username", URL: "preset://username"},
		{ID: "sms", URL: "preset://sms"},
		{ID: "blank", URL: "preset://blank"},
	}
	c.Identity.DefaultSchemaID = "username"
}

// eachIdentifierServer runs fn on a fresh withUsernameAndSMS server on every
// database.
func eachIdentifierServer(t *testing.T, fn func(t *testing.T, s *testServer, dsn string)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) {
		fn(t, newTestServer(t, dsn, withUsernameAndSMS), dsn)
	})
}

// registerUser signs up with a username (or the traits given) and returns
// the userErrors as CODE@path, and the identity's id on success.
func registerUser(t *testing.T, s *testServer, schemaID string, traits map[string]any, password string) ([]string, []userError, string) {
	t.Helper()
	in := map[string]any{"traits": traits, "password": password}
	if schemaID != "" {
		in["schemaId"] = schemaID
	}
	out := s.register(t, in)
	if len(out.UserErrors) > 0 {
		return codePaths(out.UserErrors), out.UserErrors, ""
	}
	if out.Session == nil || out.Session.Identity == nil {
		t.Fatalf("register %v: no session and no userErrors", traits)
	}
	return nil, nil, out.Session.Identity.ID
}

// TestIdentifierLookAlikesAreOneAccount: a username that only looks
// different (width, case, composition, spacing) is the same username, and
// one that hides characters or mixes scripts is refused, at registration
// and at login, on both engines.
func TestIdentifierLookAlikesAreOneAccount(t *testing.T) {
	eachIdentifierServer(t, func(t *testing.T, s *testServer, _ string) {
		if errs, _, _ := registerUser(t, s, "", map[string]any{"username": "alice"}, pw1); errs != nil {
			t.Fatalf("register alice: %v", errs)
		}
		if errs, _, _ := registerUser(t, s, "", map[string]any{"username": "ren\u00e9"}, pw1); errs != nil {
			t.Fatalf("register ren\u00e9: %v", errs)
		}
		if errs, _, _ := registerUser(t, s, "", map[string]any{"username": "Ada Lovelace"}, pw1); errs != nil {
			t.Fatalf("register Ada Lovelace: %v", errs)
		}
		tests := []struct {
			name, username string
			want           string // CODE@path
			message        string // part of the message, for refusals
		}{
			{"fullwidth", "\uff41lice", "IDENTIFIER_TAKEN@/traits/username", ""},
			{"fullwidth upper case", "\uff21\uff2c\uff29\uff23\uff25", "IDENTIFIER_TAKEN@/traits/username", ""},
			{"decomposed", "rene\u0301", "IDENTIFIER_TAKEN@/traits/username", ""},
			{"two spaces", "ada  lovelace", "IDENTIFIER_TAKEN@/traits/username", ""},
			{"no-break space", "Ada\u00a0Lovelace", "IDENTIFIER_TAKEN@/traits/username", ""},
			{"zero-width space", "alice\u200b", "VALIDATION_FAILED@/traits/username", "invisible characters (U+200B"},
			{"zero-width joiner", "ali\u200dce", "VALIDATION_FAILED@/traits/username", "invisible characters (U+200D"},
			{"word joiner", "\u2060alice", "VALIDATION_FAILED@/traits/username", "invisible characters (U+2060"},
			{"byte order mark", "alice\ufeff", "VALIDATION_FAILED@/traits/username", "invisible characters (U+FEFF"},
			{"bidi override", "\u202eecila", "VALIDATION_FAILED@/traits/username", "invisible characters (U+202E"},
			{"NUL", "alice\x00", "VALIDATION_FAILED@/traits/username", "control characters (U+0000"},
			{"Cyrillic a", "p\u0430ypal", "VALIDATION_FAILED@/traits/username", "mixes letters from different scripts (Latin, Cyrillic)"},
			{"Greek o", "b\u03bfb", "VALIDATION_FAILED@/traits/username", "mixes letters from different scripts (Latin, Greek)"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				errs, ues, id := registerUser(t, s, "", map[string]any{"username": tc.username}, pw2)
				if len(errs) != 1 || errs[0] != tc.want {
					t.Fatalf("register %q: userErrors %v (identity %q), want %s", tc.username, errs, id, tc.want)
				}
				if !strings.Contains(ues[0].Message, tc.message) {
					t.Errorf("register %q: message %q, want it to say %q", tc.username, ues[0].Message, tc.message)
				}
			})
		}

		// Login takes the same forms to the same account.
		_, alice := s.mustLogin(t, "alice", pw1)
		for _, typed := range []string{"\uff41lice", " ALICE ", "\uff21lice"} {
			if _, sess := s.mustLogin(t, typed, pw1); sess.Identity.ID != alice.Identity.ID {
				t.Errorf("login %q reached %s, want alice (%s)", typed, sess.Identity.ID, alice.Identity.ID)
			}
		}
		_, rene := s.mustLogin(t, "ren\u00e9", pw1)
		if _, sess := s.mustLogin(t, "RENE\u0301", pw1); sess.Identity.ID != rene.Identity.ID {
			t.Errorf("login in NFD reached %s, want %s", sess.Identity.ID, rene.Identity.ID)
		}
		_, ada := s.mustLogin(t, "ada lovelace", pw1)
		if _, sess := s.mustLogin(t, " Ada\u3000 Lovelace", pw1); sess.Identity.ID != ada.Identity.ID {
			t.Errorf("login with other spaces reached %s, want %s", sess.Identity.ID, ada.Identity.ID)
		}
		// What cannot be stored answers like an unknown identifier.
		for _, typed := range []string{"alice\u200b", "p\u0430ypal", "al\x01ice", strings.Repeat("a", 600), "alice\x00"} {
			s.wantLoginFails(t, typed, pw1, "INVALID_CREDENTIALS")
		}
	})
}

// TestIdentifierRefusedOnEveryWrite: every path that writes traits refuses
// an identifier that cannot be one, and U+0000 anywhere in the traits, with
// VALIDATION_FAILED at the trait's pointer (never an internal error), on
// both engines.
func TestIdentifierRefusedOnEveryWrite(t *testing.T) {
	eachIdentifierServer(t, func(t *testing.T, s *testServer, _ string) {
		const mixed = "mixes letters from different scripts"
		bad := map[string]any{"username": "p\u0430ypal"}
		check := func(t *testing.T, what string, got []adminUserError, want, message string) {
			t.Helper()
			if at := errorsAt(got); len(at) != 1 || at[0] != want {
				t.Fatalf("%s: userErrors %v, want %s", what, at, want)
			}
			if !strings.Contains(got[0].Message, message) {
				t.Errorf("%s: message %q, want it to say %q", what, got[0].Message, message)
			}
		}

		check(t, "createIdentity", createIdentity(t, s, map[string]any{"traits": bad}).UserErrors,
			"VALIDATION_FAILED /traits/username", mixed)
		check(t, "createIdentity with NUL", createIdentity(t, s, map[string]any{"traits": map[string]any{"username": "bob\x00"}}).UserErrors,
			"VALIDATION_FAILED /traits/username", "control characters (U+0000")
		check(t, "createIdentity with NUL in a free trait", createIdentity(t, s, map[string]any{"schemaId": "blank",
			"traits": map[string]any{"profile": map[string]any{"tags": []any{"ok", "b\x00d"}}}}).UserErrors,
			"VALIDATION_FAILED /traits/profile/tags/1", "U+0000")
		check(t, "createIdentity with NUL in a trait's name", createIdentity(t, s, map[string]any{"schemaId": "blank",
			"traits": map[string]any{"a\x00b": 1}}).UserErrors,
			"VALIDATION_FAILED /traits/a\x00b", "U+0000")

		ident := mustCreate(t, s, map[string]any{"traits": map[string]any{"username": "carol"}})
		check(t, "updateIdentity", updateIdentity(t, s, ident.ID, map[string]any{"traits": bad}).UserErrors,
			"VALIDATION_FAILED /traits/username", mixed)
		check(t, "patchIdentity", patchIdentity(t, s, ident.ID,
			map[string]any{"op": "replace", "path": "/traits/username", "value": "carol\u200b"}).UserErrors,
			"VALIDATION_FAILED /traits/username", "invisible characters (U+200B")
		check(t, "patchIdentity with NUL", patchIdentity(t, s, ident.ID,
			map[string]any{"op": "replace", "path": "/traits/username", "value": "carol\x00"}).UserErrors,
			"VALIDATION_FAILED /traits/username", "control characters (U+0000")
		if got := getIdentity(t, s, ident.ID); got == nil || !strings.Contains(string(got.Traits), `"carol"`) {
			t.Errorf("a refused write changed the identity: %+v", got)
		}

		results := importIdentities(t, s, []map[string]any{
			{"traits": map[string]any{"username": "dave"}},
			{"traits": bad},
			{"traits": map[string]any{"username": "erin\ufeff"}},
		})
		if results[0].Identity == nil {
			t.Errorf("import item 0: %v", errorsAt(results[0].UserErrors))
		}
		check(t, "import item 1", results[1].UserErrors, "VALIDATION_FAILED /traits/username", mixed)
		check(t, "import item 2", results[2].UserErrors, "VALIDATION_FAILED /traits/username", "invisible characters (U+FEFF")

		token, _ := s.registerToken(t, map[string]any{"username": "frank"}, pw1)
		r := s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { identity { id } userErrors { code message path } } }`,
			map[string]any{"t": bad})
		if len(r.Errors) > 0 {
			t.Fatalf("updateMyTraits: %+v", r.Errors)
		}
		out := field[identityPayloadOut](t, r, "updateMyTraits")
		if got := codePaths(out.UserErrors); len(got) != 1 || got[0] != "VALIDATION_FAILED@/traits/username" || !strings.Contains(out.UserErrors[0].Message, mixed) {
			t.Errorf("updateMyTraits: userErrors %+v, want VALIDATION_FAILED at /traits/username", out.UserErrors)
		}
	})
}

// registerToken signs up with traits and returns the session token.
func (s *testServer) registerToken(t *testing.T, traits map[string]any, password string) (string, string) {
	t.Helper()
	out := s.register(t, map[string]any{"traits": traits, "password": password})
	if len(out.UserErrors) > 0 || out.SessionToken == nil {
		t.Fatalf("register %v: %v", traits, codePaths(out.UserErrors))
	}
	return *out.SessionToken, out.Session.Identity.ID
}

// TestLoginPrefersTheExactForm: a login identifier that is one identity's
// username as typed and another's phone number once normalised signs in
// the username's owner, always, on both engines, whichever was written
// first and however the rows sort; the phone number's owner signs in with
// any other form of the number.
func TestLoginPrefersTheExactForm(t *testing.T) {
	eachIdentifierServer(t, func(t *testing.T, s *testServer, _ string) {
		// The phone number first, so that neither insertion order nor the
		// identifiers' sort order makes the right answer by luck.
		ids := map[string]string{}
		for _, u := range []struct {
			who, schema, trait, value, password string
		}{
			{"sms", "sms", "phone_number", "+1 (415) 555-2671", pw1},
			{"spaced", "", "username", "+1 415 555 2671", pw2},
			{"extension", "", "username", "+14155552671 x5", pw3},
		} {
			errs, _, id := registerUser(t, s, u.schema, map[string]any{u.trait: u.value}, u.password)
			if errs != nil {
				t.Fatalf("register %s: %v", u.who, errs)
			}
			ids[u.who] = id
		}
		tests := []struct {
			typed, password, want string // want: who, or "" for INVALID_CREDENTIALS
		}{
			{"+1 415 555 2671", pw2, "spaced"},
			{"+14155552671 x5", pw3, "extension"},
			{"+1 415 555 2671", pw1, ""}, // the username's credential is the one checked
			{"+14155552671 x5", pw1, ""},
			{"+14155552671", pw1, "sms"},
			{"+1-415-555-2671", pw1, "sms"},
			{"+1 (415) 555-2671", pw1, "sms"},
			{" +1  415 555 2671 ", pw2, "spaced"},
			{"+14155552671 X5", pw3, "extension"},
		}
		for range 3 { // an unordered lookup may answer right by luck once
			for _, tc := range tests {
				if tc.want == "" {
					s.wantLoginFails(t, tc.typed, tc.password, "INVALID_CREDENTIALS")
					continue
				}
				if _, sess := s.mustLogin(t, tc.typed, tc.password); sess.Identity.ID != ids[tc.want] {
					t.Errorf("login %q signed in %s, want %s (%s)", tc.typed, sess.Identity.ID, tc.want, ids[tc.want])
				}
			}
		}
	})
}

// TestLoginFindsLegacyIdentifiers: an identifier stored before the Unicode
// rules (trimmed and lower-cased only, here a fullwidth "ｂob") still signs
// in when typed as then, after every canonical form, on both engines.
func TestLoginFindsLegacyIdentifiers(t *testing.T) {
	eachIdentifierServer(t, func(t *testing.T, s *testServer, dsn string) {
		_, legacyID := s.registerToken(t, map[string]any{"username": "bob"}, pw1)
		sqlExec(t, dsn, "UPDATE identity_credential_identifiers SET identifier = '\uff42ob' WHERE identifier = 'bob'")
		if _, sess := s.mustLogin(t, "\uff42ob", pw1); sess.Identity.ID != legacyID {
			t.Errorf("legacy login reached %s, want %s", sess.Identity.ID, legacyID)
		}
		// A canonical "bob" registered since wins over the legacy form.
		_, bobID := s.registerToken(t, map[string]any{"username": "bob"}, pw2)
		if _, sess := s.mustLogin(t, "\uff42ob", pw2); sess.Identity.ID != bobID {
			t.Errorf("login reached %s, want the canonical bob %s", sess.Identity.ID, bobID)
		}
	})
}

// TestMetadataWithNUL: metadata is not validated, and U+0000 in it is
// stored and read back as given (both engines keep metadata in JSON text
// columns, which take the \u0000 escape): no internal error.
func TestMetadataWithNUL(t *testing.T) {
	eachIdentifierServer(t, func(t *testing.T, s *testServer, _ string) {
		meta := map[string]any{"a\x00": "b\x00"}
		ident := mustCreate(t, s, map[string]any{"traits": map[string]any{"username": "meta"}, "metadataPublic": meta, "metadataAdmin": meta})
		got := getIdentity(t, s, ident.ID)
		for _, raw := range []json.RawMessage{got.MetadataPublic, got.MetadataAdmin} {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil || m["a\x00"] != "b\x00" {
				t.Errorf("metadata read back as %s (%v)", raw, err)
			}
		}
		p := patchIdentity(t, s, ident.ID, map[string]any{"op": "add", "path": "/metadata_public/c", "value": "\x00"})
		if p.Identity == nil {
			t.Errorf("patch metadata with NUL: %v", errorsAt(p.UserErrors))
		}
	})
}

// TestIdentifierFilterWithNUL: the admin list filter with a NUL in the
// identifier finds nothing instead of failing the query on PostgreSQL.
func TestIdentifierFilterWithNUL(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		r := s.gql(t, testAdminKey, `query($v: String!) { identities(first: 5, filter: {credentialsIdentifier: $v}) { edges { node { id } } } }`,
			map[string]any{"v": "alice\u0000@example.com"})
		if len(r.Errors) > 0 || string(r.Data) != `{"identities":{"edges":[]}}` {
			t.Fatalf("filter with NUL: %s %+v", r.Data, r.Errors)
		}
	})
}
