package main

// What the identity read and write paths cost and return, over real HTTP on
// SQLite and PostgreSQL: a mutation's identity is exactly what a fresh read
// returns (it is built from what was written, not read back), and a read
// loads only the relations its answer shows.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/schemas"
)

// multiSchema has two password identifiers that are both verifiable and
// recovery addresses, and a phone that is a code identifier and a
// verifiable address by sms: identities with several credentials and
// addresses of each kind.
const multiSchema = `{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {
          "type": "string", "format": "email",
          "ory.sh/kratos": {
            "credentials": {"password": {"identifier": true}},
            "verification": {"via": "email"},
            "recovery": {"via": "email"}
          }
        },
        "backup": {
          "type": "string", "format": "email",
          "ory.sh/kratos": {
            "credentials": {"password": {"identifier": true}},
            "verification": {"via": "email"},
            "recovery": {"via": "email"}
          }
        },
        "phone": {
          "type": "string", "format": "tel",
          "ory.sh/kratos": {
            "credentials": {"code": {"identifier": true, "via": "sms"}},
            "verification": {"via": "sms"}
          }
        }
      },
      "required": ["email"],
      "additionalProperties": false
    }
  }
}`

func newMultiTestServer(t *testing.T, dsn string) *testServer {
	return newTestServer(t, dsn, func(c *Config) {
		c.Identity.Schemas = append(c.Identity.Schemas,
			schemas.Source{ID: "multi", URL: "base64://" + base64.StdEncoding.EncodeToString([]byte(multiSchema))},
			schemas.Source{ID: "blank", URL: "preset://blank"})
		withPersonSchema(c)
	})
}

// rawField returns data.<path…> of r exactly as the server wrote it.
func rawField(t *testing.T, r *gqlResponse, path ...any) json.RawMessage {
	t.Helper()
	cur := json.RawMessage(r.Data)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			var m map[string]json.RawMessage
			if err := json.Unmarshal(cur, &m); err != nil {
				t.Fatalf("%v: %s is not an object", path, cur)
			}
			cur = m[k]
		case int:
			var a []json.RawMessage
			if err := json.Unmarshal(cur, &a); err != nil || k >= len(a) {
				t.Fatalf("%v: %s has no element %d", path, cur, k)
			}
			cur = a[k]
		}
	}
	return cur
}

// TestMutationsReturnWhatAFreshReadReturns: the identity every identity
// write returns, with every field and relation selected, is byte for byte
// the answer of an identity(id) query made right after, whether the write
// inserted it (create, import in one batch or item by item), replaced rows
// or kept them (update, patch, keeping a verified address), on both engines.
// The self-service writes return the same as an admin read of the fields
// an owner may see.
func TestMutationsReturnWhatAFreshReadReturns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newMultiTestServer(t, dsn)
		same := func(t *testing.T, what string, r *gqlResponse, path ...any) string {
			t.Helper()
			got := rawField(t, r, path...)
			var id struct{ ID string }
			if err := json.Unmarshal(got, &id); err != nil || id.ID == "" {
				t.Fatalf("%s returned no identity: %s", what, r.Data)
			}
			want := rawField(t, adminPost(t, s, qGet, map[string]any{"id": id.ID}), "identity")
			if !bytes.Equal(got, want) {
				t.Errorf("%s returned\n%s\nidentity(id) reads\n%s", what, got, want)
			}
			return id.ID
		}

		rich := func(tag string) map[string]any {
			return map[string]any{
				"schemaId": "multi",
				"traits":   map[string]any{"email": "zed" + tag + "@example.com", "backup": "a_b" + tag + "@example.com", "phone": "+1415555267" + tag},
				"credentials": map[string]any{
					"password": map[string]any{"hashedPassword": cheapBcrypt()},
					"oidc": map[string]any{"providers": []any{
						map[string]any{"provider": "b", "subject": "S" + tag},
						map[string]any{"provider": "B", "subject": "s" + tag},
					}},
				},
				"metadataPublic": map[string]any{"n": json.Number("9007199254740993"), "f": json.Number("1.50")},
				"metadataAdmin":  map[string]any{"note": "<&>"},
			}
		}

		r := adminPost(t, s, qCreate, map[string]any{"in": rich("1")})
		id := same(t, "createIdentity", r, "createIdentity", "identity")

		// A verified address keeps its stored state through updates: the
		// identity returned shows it as stored, not as the write imagined.
		sqlExec(t, dsn, `UPDATE identity_verifiable_addresses SET verified = TRUE, status = 'completed',
			verified_at = '2026-01-02 03:04:05.123456+00:00' WHERE value = 'zed1@example.com'`)
		time.Sleep(2 * time.Millisecond) // new rows sort after the kept ones

		r = adminPost(t, s, qUpdate, map[string]any{"id": id, "in": map[string]any{
			"traits": map[string]any{"email": "zed1@example.com", "backup": "aaa1@example.com"},
			"state":  "INACTIVE", "metadataPublic": map[string]any{"k": []any{1, 2}},
		}})
		same(t, "updateIdentity", r, "updateIdentity", "identity")
		if !strings.Contains(string(r.Data), `"status":"completed"`) {
			t.Errorf("updateIdentity lost the verified address: %s", r.Data)
		}

		r = adminPost(t, s, qPatch, map[string]any{"id": id, "patch": []any{
			op("replace", "/traits/backup", "bbb1@example.com"),
			op("add", "/traits/phone", "+14155552679"),
			op("replace", "/state", "active"),
			op("add", "/metadata_admin", map[string]any{"x": 1}),
		}})
		same(t, "patchIdentity", r, "patchIdentity", "identity")

		// A schema without identifiers: the password credential keeps its
		// hash without identifiers, the OIDC links stay.
		r = adminPost(t, s, qUpdate, map[string]any{"id": id, "in": map[string]any{"schemaId": "blank", "traits": map[string]any{}}})
		same(t, "updateIdentity to a schema without identifiers", r, "updateIdentity", "identity")

		// One batch that goes in whole, one that goes item by item.
		for _, batch := range [][]map[string]any{
			{rich("2"), rich("3"), {"traits": map[string]any{"email": "plain@example.com"}}},
			{rich("4"), rich("4"), {"traits": map[string]any{"email": "not an email"}}, rich("5")},
		} {
			r = adminPost(t, s, qImport, map[string]any{"in": batch})
			ok := 0
			for i := range batch {
				if string(rawField(t, r, "importIdentities", "results", i, "identity")) == "null" {
					continue
				}
				ok++
				same(t, fmt.Sprintf("importIdentities item %d", i), r, "importIdentities", "results", i, "identity")
			}
			if ok < 2 {
				t.Fatalf("import: only %d items were stored: %s", ok, r.Data)
			}
		}

		// Self-service: register and updateMyTraits return what an admin
		// reads of the same fields.
		const ownFields = `id schemaId state stateChangedAt traits metadataPublic verifiableAddresses { id value via verified status verifiedAt } recoveryAddresses { id value via } createdAt updatedAt`
		ownRead := func(id string) json.RawMessage {
			return rawField(t, adminPost(t, s, `query($id: UUID!) { identity(id: $id) { `+ownFields+` } }`, map[string]any{"id": id}), "identity")
		}
		r = s.gql(t, "", `mutation($in: RegisterInput!) { register(input: $in) { sessionToken session { identity { `+ownFields+` } } userErrors { code } } }`,
			map[string]any{"in": map[string]any{"schemaId": "person", "traits": map[string]any{"email": "own@example.com", "username": "owner"}, "password": pw1}})
		got := rawField(t, r, "register", "session", "identity")
		var reg struct{ ID string }
		_ = json.Unmarshal(got, &reg)
		if want := ownRead(reg.ID); !bytes.Equal(got, want) {
			t.Errorf("register returned\n%s\nidentity(id) reads\n%s", got, want)
		}
		var token string
		_ = json.Unmarshal(rawField(t, r, "register", "sessionToken"), &token)
		r = s.gql(t, token, `mutation($t: JSON!) { updateMyTraits(traits: $t) { identity { `+ownFields+` } userErrors { code } } }`,
			map[string]any{"t": map[string]any{"email": "own2@example.com", "username": "owner"}})
		got = rawField(t, r, "updateMyTraits", "identity")
		if want := ownRead(reg.ID); !bytes.Equal(got, want) {
			t.Errorf("updateMyTraits returned\n%s\nidentity(id) reads\n%s", got, want)
		}
	})
}

// TestIdentityReadsLoadWhatIsSelected counts the queries of identity reads
// and writes: identity(id) is one statement whatever it selects, a page
// costs one query plus one per relation selected whatever its size, and
// createIdentity reads nothing back. Every answer is complete: relations
// reached through aliases, fragments and the whoami identity (loaded on
// demand) are all there.
func TestIdentityReadsLoadWhatIsSelected(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newMultiTestServer(t, dsn)
		s.app.store.CountQueries()() // installs the hook while nothing else runs

		const total = 250
		in := make([]map[string]any, total)
		for i := range in {
			in[i] = map[string]any{
				"schemaId": "multi",
				"traits":   map[string]any{"email": fmt.Sprintf("sel%03d@example.com", i), "backup": fmt.Sprintf("sel%03d@backup.example.com", i)},
				"credentials": map[string]any{
					"oidc": map[string]any{"providers": []any{map[string]any{"provider": "google", "subject": fmt.Sprint(i)}}},
				},
			}
		}
		for _, res := range importIdentities(t, s, in) {
			if res.Identity == nil {
				t.Fatalf("import: %v", errorsAt(res.UserErrors))
			}
		}
		first := listIdentities(t, s, map[string]any{"first": 1}).Edges[0].Node

		count := func(query string, vars map[string]any) (int, *gqlResponse) {
			t.Helper()
			stop := s.app.store.CountQueries()
			r := adminPost(t, s, query, vars)
			return stop(), r
		}
		get := func(sel string) string {
			return `query($id: UUID!) { identity(id: $id) { ` + sel + ` } }`
		}
		vars := map[string]any{"id": first.ID}
		for _, tc := range []struct {
			name, query string
			// wantIn are strings the answer must contain.
			wantIn []string
		}{
			{"no relation", get(`id traits`), []string{`"sel000@example.com"`}},
			{"verifiable addresses (the benchmark's get)", get(`id traits verifiableAddresses { id value via verified status }`),
				[]string{`"value":"sel000@backup.example.com"`, `"value":"sel000@example.com"`}},
			{"every relation", get(`id credentials { type identifiers } verifiableAddresses { value } recoveryAddresses { value }`),
				[]string{`"identifiers":["google:0"]`, `"recoveryAddresses":[{"value":"sel000@backup.example.com"},{"value":"sel000@example.com"}]`}},
			{"aliases, fragments and inline fragments", `query($id: UUID!) { identity(id: $id) { a: credentials { type } ...F } }
				fragment F on Identity { ... on Identity { mine: recoveryAddresses { value } } b: verifiableAddresses { via } }`,
				[]string{`"a":[{"type":"OIDC"}]`, `"mine":[{"value":"sel000@backup.example.com"}`, `"b":[{"via":"email"},{"via":"email"}]`}},
		} {
			n, r := count(tc.query, vars)
			if n != 1 {
				t.Errorf("identity(id) with %s: %d queries, want 1", tc.name, n)
			}
			for _, w := range tc.wantIn {
				if !strings.Contains(string(r.Data), w) {
					t.Errorf("identity(id) with %s: answer lacks %s: %s", tc.name, w, r.Data)
				}
			}
		}

		page := func(first int, sel string) string {
			return fmt.Sprintf(`{ identities(first: %d) { edges { cursor node { %s } } pageInfo { hasNextPage endCursor } } }`, first, sel)
		}
		for _, tc := range []struct {
			name, sel string
			want      int
		}{
			{"no relation (the benchmark's list)", `id schemaId state traits createdAt updatedAt`, 1},
			{"verifiable addresses", `id verifiableAddresses { value }`, 2},
			{"every relation", `id credentials { type } verifiableAddresses { value } recoveryAddresses { value }`, 4},
		} {
			for _, size := range []int{1, total} {
				n, r := count(page(size, tc.sel), nil)
				if n != tc.want {
					t.Errorf("page of %d with %s: %d queries, want %d", size, tc.name, n, tc.want)
				}
				var c connectionJSON
				dataField(t, r, "identities", &c)
				if len(c.Edges) != size {
					t.Fatalf("page of %d: %d edges", size, len(c.Edges))
				}
				for _, e := range c.Edges {
					if strings.Contains(tc.sel, "verifiableAddresses") && len(e.Node.VerifiableAddresses) != 2 {
						t.Fatalf("page of %d with %s: node %s has %d verifiable addresses", size, tc.name, e.Node.ID, len(e.Node.VerifiableAddresses))
					}
				}
			}
		}

		// createIdentity writes in one transaction and reads nothing back,
		// whatever the answer selects: count with no relation, then with
		// every one.
		var creates []int
		for i, sel := range []string{`id`, `id credentials { type } verifiableAddresses { id } recoveryAddresses { id }`} {
			n, r := count(`mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { `+sel+` } userErrors { code } } }`,
				map[string]any{"in": map[string]any{"traits": map[string]any{"email": fmt.Sprintf("new%d@example.com", i)}}})
			if !strings.Contains(string(r.Data), `"userErrors":[]`) {
				t.Fatalf("createIdentity: %s", r.Data)
			}
			creates = append(creates, n)
		}
		// BEGIN, six INSERTs (the identity, its password credential without
		// a hash, the identifier, the verifiable and the recovery address,
		// its identity.created event), COMMIT: the hook sees the INSERTs and,
		// depending on the driver, the transaction's ends.
		if creates[0] != creates[1] || creates[0] > 8 {
			t.Errorf("createIdentity: %v queries (no relation selected, every one); want the same, at most the 6 INSERTs and BEGIN/COMMIT", creates)
		}
		t.Logf("createIdentity: %d queries", creates[0])

		// whoami's identity is read alone; each relation the answer asks for
		// is loaded on demand, and right.
		token, _ := s.mustRegister(t, "who@example.com", pw1)
		r := s.gql(t, token, `{ whoami { identity { id verifiableAddresses { value } recoveryAddresses { value } } } }`, nil)
		if want := `"verifiableAddresses":[{"value":"who@example.com"}],"recoveryAddresses":[{"value":"who@example.com"}]`; !strings.Contains(string(r.Data), want) {
			t.Errorf("whoami: %s, want %s", r.Data, want)
		}
	})
}

// BenchmarkIdentityGet measures the server's own cost of the load tool's
// identity(id) (traits and verifiable addresses), through the whole HTTP
// handler but without a network, on each database.
//
//	go test -run '^$' -bench IdentityGet -benchmem -cpuprofile cpu.out .
func BenchmarkIdentityGet(b *testing.B) {
	for name, dsn := range map[string]func(testing.TB) string{"sqlite": dbtest.NewSQLite, "postgres": dbtest.NewPostgres} {
		b.Run(name, func(b *testing.B) {
			s := newTestServer(b, dsn(b), nil)
			body, _ := json.Marshal(map[string]any{
				"query":     `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } } }`,
				"variables": map[string]any{"in": map[string]any{"traits": map[string]any{"email": "get@example.com"}}},
			})
			var created struct {
				Data struct {
					CreateIdentity struct{ Identity struct{ ID string } }
				}
			}
			if err := json.Unmarshal(serve(s, body).Body.Bytes(), &created); err != nil || created.Data.CreateIdentity.Identity.ID == "" {
				b.Fatalf("create: %v", err)
			}
			body, _ = json.Marshal(map[string]any{
				"query":     `query($id: UUID!) { identity(id: $id) { id traits verifiableAddresses { id value via verified status } } }`,
				"variables": map[string]any{"id": created.Data.CreateIdentity.Identity.ID},
			})
			if w := serve(s, body); !strings.Contains(w.Body.String(), `"verifiableAddresses":[{"id"`) {
				b.Fatalf("identity: %s", w.Body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					serve(s, body)
				}
			})
		})
	}
}

// serve runs one admin GraphQL request through the server's handler.
func serve(s *testServer, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	w := httptest.NewRecorder()
	s.app.handler.ServeHTTP(w, req)
	return w
}
