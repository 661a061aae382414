package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db/dbtest"
)

// sessionConnOut is a SessionConnection as the tests below ask for it.
type sessionConnOut struct {
	Edges []struct {
		Cursor string
		Node   struct {
			ID       string
			Active   bool
			Identity *struct{ ID string }
		}
	}
	PageInfo struct {
		HasNextPage     bool
		HasPreviousPage bool
		StartCursor     *string
		EndCursor       *string
	}
	TotalCount        *int
	IsTotalCountExact *bool
}

func (c sessionConnOut) ids() []string {
	out := []string{}
	for _, e := range c.Edges {
		out = append(out, e.Node.ID)
	}
	return out
}

func (c sessionConnOut) cursorOf(t *testing.T, id string) string {
	t.Helper()
	for _, e := range c.Edges {
		if e.Node.ID == id {
			return e.Cursor
		}
	}
	t.Fatalf("session %s is not on the page", id)
	return ""
}

const qSessions = `query($first: Int, $after: String, $filter: SessionFilter) {
  sessions(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id active identity { id } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    totalCount isTotalCountExact
  }
}`

// listSessions runs qSessions as admin.
func (s *testServer) listSessions(t *testing.T, vars map[string]any) sessionConnOut {
	t.Helper()
	return field[sessionConnOut](t, s.admin(t, qSessions, vars), "sessions")
}

// TestAdminSessions: an admin console lists every identity's sessions,
// newest first, filtered by identity and by whether they still work, pages
// through them with keyset cursors, counts them, and reads one by id; only
// admins may.
func TestAdminSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		s := newTestServer(t, dsn, nil)
		s.app.store.CountQueries()() // installs the hook while nothing runs
		sid := func(token string) string { t.Helper(); return s.whoami(t, token).ID }
		ta, ann := s.mustRegister(t, "ann@example.com", pw1)
		a1 := sid(ta)
		t2, _ := s.mustLogin(t, "ann@example.com", pw1)
		a2 := sid(t2)
		t3, _ := s.mustLogin(t, "ann@example.com", pw1)
		a3 := sid(t3)
		tb, bob := s.mustRegister(t, "bob@example.com", pw1)
		b1 := sid(tb)
		tc, cy := s.mustRegister(t, "cy@example.com", pw1)
		c1 := sid(tc)
		owner := map[string]string{a1: ann, a2: ann, a3: ann, b1: bob, c1: cy}

		// a2 ended by an admin, b1 expired: neither works any more.
		r := s.admin(t, `mutation($id: UUID!) { revokeSession(id: $id) { userErrors { code } } }`, map[string]any{"id": a2})
		if errs := field[struct{ UserErrors []userError }](t, r, "revokeSession").UserErrors; len(errs) != 0 {
			t.Fatalf("revokeSession: %v", codePaths(errs))
		}
		sqlExec(t, dsn, fmt.Sprintf("UPDATE sessions SET expires_at = '2000-01-01 00:00:00+00:00' WHERE id = '%s'", b1))

		t.Run("filters", func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				filter map[string]any
				want   []string
			}{
				{"none", nil, []string{c1, b1, a3, a2, a1}},
				{"identity", map[string]any{"identityId": ann}, []string{a3, a2, a1}},
				{"active", map[string]any{"active": true}, []string{c1, a3, a1}},
				{"ended or expired", map[string]any{"active": false}, []string{b1, a2}},
				{"both", map[string]any{"identityId": ann, "active": false}, []string{a2}},
				{"unknown identity", map[string]any{"identityId": uuid.NewString()}, []string{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := s.listSessions(t, map[string]any{"filter": tc.filter})
					if got := c.ids(); !slices.Equal(got, tc.want) {
						t.Errorf("sessions %v, want newest first %v", got, tc.want)
					}
					if c.TotalCount == nil || *c.TotalCount != len(tc.want) || c.IsTotalCountExact == nil || !*c.IsTotalCountExact {
						t.Errorf("totalCount %v exact %v, want exactly %d", c.TotalCount, c.IsTotalCountExact, len(tc.want))
					}
					if c.PageInfo.HasNextPage || c.PageInfo.HasPreviousPage {
						t.Errorf("pageInfo %+v on a single page", c.PageInfo)
					}
					for _, e := range c.Edges {
						if e.Node.Identity == nil || e.Node.Identity.ID != owner[e.Node.ID] {
							t.Errorf("session %s shows identity %+v, want %s", e.Node.ID, e.Node.Identity, owner[e.Node.ID])
						}
						if e.Node.Active != (e.Node.ID != a2) {
							t.Errorf("session %s active %v", e.Node.ID, e.Node.Active)
						}
					}
				})
			}
		})

		t.Run("pages", func(t *testing.T) {
			var got []string
			var after any
			for page := 0; ; page++ {
				if page > 5 {
					t.Fatalf("paging by 2 does not end: %v", got)
				}
				c := s.listSessions(t, map[string]any{"first": 2, "after": after})
				got = append(got, c.ids()...)
				if c.PageInfo.HasPreviousPage != (page > 0) {
					t.Errorf("page %d: hasPreviousPage %v", page, c.PageInfo.HasPreviousPage)
				}
				if c.TotalCount == nil || *c.TotalCount != 5 {
					t.Errorf("page %d: totalCount %v, want 5 on every page", page, c.TotalCount)
				}
				if *c.PageInfo.StartCursor != c.Edges[0].Cursor || *c.PageInfo.EndCursor != c.Edges[len(c.Edges)-1].Cursor {
					t.Errorf("page %d: pageInfo %+v", page, c.PageInfo)
				}
				if !c.PageInfo.HasNextPage {
					break
				}
				after = *c.PageInfo.EndCursor
			}
			if want := []string{c1, b1, a3, a2, a1}; !slices.Equal(got, want) {
				t.Errorf("paging by 2 visited %v, want %v", got, want)
			}
			// A new session comes before the first page: the pages already
			// handed out stay as they were.
			all := s.listSessions(t, nil)
			s.mustLogin(t, "bob@example.com", pw1)
			rest := s.listSessions(t, map[string]any{"after": all.cursorOf(t, b1)})
			if got, want := rest.ids(), []string{a3, a2, a1}; !slices.Equal(got, want) {
				t.Errorf("after b1 once a session was added: %v, want %v", got, want)
			}
			// hasPreviousPage is about the filtered listing: nothing of
			// ann's comes at or before cy's session.
			c := s.listSessions(t, map[string]any{"after": all.cursorOf(t, c1), "filter": map[string]any{"identityId": ann}})
			if !slices.Equal(c.ids(), []string{a3, a2, a1}) || c.PageInfo.HasPreviousPage {
				t.Errorf("ann's sessions after cy's: %v hasPreviousPage %v, want all of ann's and false", c.ids(), c.PageInfo.HasPreviousPage)
			}
			c = s.listSessions(t, map[string]any{"after": all.cursorOf(t, a3), "filter": map[string]any{"identityId": ann}})
			if !slices.Equal(c.ids(), []string{a2, a1}) || !c.PageInfo.HasPreviousPage {
				t.Errorf("ann's sessions after a3: %v hasPreviousPage %v, want [a2 a1] and true", c.ids(), c.PageInfo.HasPreviousPage)
			}
		})

		t.Run("bounds", func(t *testing.T) {
			for _, vars := range []map[string]any{{"first": 0}, {"first": 1001}, {"after": "not a cursor"}, {"after": "AAAA"}} {
				r := s.gql(t, testAdminKey, qSessions, vars)
				if got := r.codes(); !slices.Equal(got, []string{"BAD_USER_INPUT"}) {
					t.Errorf("%v: codes %v, want BAD_USER_INPUT", vars, got)
				}
			}
			if c := s.listSessions(t, map[string]any{"first": 1000}); len(c.Edges) != 6 {
				t.Errorf("first: 1000 gave %d sessions, want all 6", len(c.Edges))
			}
		})

		t.Run("one by id", func(t *testing.T) {
			const q = `query($id: UUID!) { session(id: $id) { id active expiresAt identity { id } } }`
			got := field[*struct {
				ID       string
				Active   bool
				Identity struct{ ID string }
			}](t, s.admin(t, q, map[string]any{"id": a2}), "session")
			if got == nil || got.ID != a2 || got.Active || got.Identity.ID != ann {
				t.Errorf("session(a2) = %+v, want the ended session of ann", got)
			}
			if r := s.admin(t, q, map[string]any{"id": b1}); !strings.Contains(string(r.Data), b1) {
				t.Errorf("session(b1), expired: %s, want it", r.Data)
			}
			if r := s.admin(t, q, map[string]any{"id": uuid.NewString()}); string(r.Data) != `{"session":null}` {
				t.Errorf("unknown session: %s, want null", r.Data)
			}
		})

		// Identities of a page are read together: the page costs as many
		// queries with identities as its size is, whatever it is.
		t.Run("identities read in bulk", func(t *testing.T) {
			cost := func(first int) int {
				stop := s.app.store.CountQueries()
				c := s.listSessions(t, map[string]any{"first": first})
				n := stop()
				if len(c.Edges) != first {
					t.Fatalf("first %d gave %d", first, len(c.Edges))
				}
				return n
			}
			if one, six := cost(1), cost(6); one != six {
				t.Errorf("a page of 1 cost %d queries, a page of 6 cost %d: want the same", one, six)
			}
			stop := s.app.store.CountQueries()
			s.admin(t, `{ sessions { edges { node { id } } pageInfo { hasNextPage } } }`, nil)
			if n := stop(); n != 1 {
				t.Errorf("sessions without identity, count or hasPreviousPage cost %d queries, want 1", n)
			}
		})

		t.Run("admins only", func(t *testing.T) {
			for _, tc := range []struct {
				name, token, query, want string
			}{
				{"a session lists", ta, `{ sessions { edges { node { id } } totalCount } }`, "FORBIDDEN"},
				{"nobody lists", "", `{ sessions { edges { node { id } } } }`, "UNAUTHENTICATED"},
				{"a bad token lists", "ids_st_unknown", `{ sessions { edges { node { id } } } }`, "UNAUTHENTICATED"},
				{"a session reads one", ta, fmt.Sprintf(`{ session(id: %q) { id } }`, b1), "FORBIDDEN"},
				{"nobody reads one", "", fmt.Sprintf(`{ session(id: %q) { id } }`, b1), "UNAUTHENTICATED"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := s.gql(t, tc.token, tc.query, nil)
					if got := r.codes(); !slices.Equal(got, []string{tc.want}) {
						t.Errorf("codes %v, want %s", got, tc.want)
					}
					if d := string(r.Data); d != "" && d != "null" && d != `{"session":null}` {
						t.Errorf("data %s, want none", d)
					}
					for _, id := range []string{a1, a2, a3, b1, c1} {
						if strings.Contains(string(r.Data), id) {
							t.Errorf("a session id leaked: %s", r.Data)
						}
					}
				})
			}
		})
	})
}

// TestAdminIdentitiesCountAndPreviousPage: the identity listing counts what
// its filter matches, the same on every page, and says there is a previous
// page only when a matching identity precedes the cursor.
func TestAdminIdentitiesCountAndPreviousPage(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		s.app.store.CountQueries()() // installs the hook while nothing runs
		var ids []string
		for i, state := range []string{"ACTIVE", "INACTIVE", "ACTIVE", "INACTIVE", "ACTIVE"} {
			r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { id } userErrors { code } } }`,
				map[string]any{"in": map[string]any{"traits": map[string]any{"email": fmt.Sprintf("n%d@example.com", i)}, "state": state}})
			ids = append(ids, field[struct{ Identity struct{ ID string } }](t, r, "createIdentity").Identity.ID)
		}
		const q = `query($first: Int, $after: String, $filter: IdentityFilter) {
  identities(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage }
    totalCount isTotalCountExact
  }
}`
		type conn struct {
			Edges []struct {
				Cursor string
				Node   struct{ ID string }
			}
			PageInfo          struct{ HasNextPage, HasPreviousPage bool }
			TotalCount        *int
			IsTotalCountExact *bool
		}
		list := func(vars map[string]any) conn {
			t.Helper()
			return field[conn](t, s.admin(t, q, vars), "identities")
		}
		edgeIDs := func(c conn) []string {
			out := []string{}
			for _, e := range c.Edges {
				out = append(out, e.Node.ID)
			}
			return out
		}
		all := list(nil)
		cursor := func(id string) string {
			for _, e := range all.Edges {
				if e.Node.ID == id {
					return e.Cursor
				}
			}
			t.Fatalf("no cursor for %s", id)
			return ""
		}
		inactive := map[string]any{"state": "INACTIVE"}
		for _, tc := range []struct {
			name      string
			vars      map[string]any
			want      []string
			wantCount int
			wantPrev  bool
		}{
			{"all", nil, ids, 5, false},
			{"filtered", map[string]any{"filter": inactive}, []string{ids[1], ids[3]}, 2, false},
			{"second page", map[string]any{"first": 2, "after": cursor(ids[1])}, []string{ids[2], ids[3]}, 5, true},
			// Nothing INACTIVE comes at or before the first identity: the
			// cursor alone does not make a previous page.
			{"after a cursor with nothing of the filter before it", map[string]any{"filter": inactive, "after": cursor(ids[0])}, []string{ids[1], ids[3]}, 2, false},
			{"after a cursor with the filter's first before it", map[string]any{"filter": inactive, "after": cursor(ids[2])}, []string{ids[3]}, 2, true},
			{"after the last", map[string]any{"after": cursor(ids[4])}, []string{}, 5, true},
			{"ids", map[string]any{"filter": map[string]any{"ids": []string{ids[4], ids[0]}}}, []string{ids[0], ids[4]}, 2, false},
			{"no ids", map[string]any{"filter": map[string]any{"ids": []string{}}, "after": cursor(ids[2])}, []string{}, 0, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := list(tc.vars)
				if got := edgeIDs(c); !slices.Equal(got, tc.want) {
					t.Errorf("ids %v, want %v", got, tc.want)
				}
				if c.TotalCount == nil || *c.TotalCount != tc.wantCount || c.IsTotalCountExact == nil || !*c.IsTotalCountExact {
					t.Errorf("totalCount %v exact %v, want exactly %d", c.TotalCount, c.IsTotalCountExact, tc.wantCount)
				}
				if c.PageInfo.HasPreviousPage != tc.wantPrev {
					t.Errorf("hasPreviousPage %v, want %v", c.PageInfo.HasPreviousPage, tc.wantPrev)
				}
			})
		}

		// Neither the count nor the probe runs unless asked for.
		for _, tc := range []struct {
			query string
			want  int
		}{
			{`{ identities { edges { node { id } } pageInfo { hasNextPage endCursor } } }`, 1},
			{`{ identities { totalCount } }`, 2},
			{`{ identities { totalCount isTotalCountExact } }`, 2},
			{`{ identities { pageInfo { hasPreviousPage } } }`, 1}, // no cursor: nothing to probe
		} {
			stop := s.app.store.CountQueries()
			s.admin(t, tc.query, nil)
			if n := stop(); n != tc.want {
				t.Errorf("%s cost %d queries, want %d", tc.query, n, tc.want)
			}
		}
		stop := s.app.store.CountQueries()
		s.admin(t, q, map[string]any{"after": cursor(ids[2])})
		if n := stop(); n != 3 {
			t.Errorf("a page with its count and previous-page probe cost %d queries, want 3", n)
		}
		if r := s.gql(t, "", `{ identities { totalCount } }`, nil); !slices.Equal(r.codes(), []string{"UNAUTHENTICATED"}) || strings.Contains(string(r.Data), "totalCount") {
			t.Errorf("anonymous count: codes %v data %s", r.codes(), r.Data)
		}
	})
}

// TestAdminCredentialsListOnlyWhatExists: an identity created without a
// password, or with OIDC links only, lists no PASSWORD credential, on every
// path that shows credentials, while its login identifiers stay reserved;
// once it gets a password, the credential shows.
func TestAdminCredentialsListOnlyWhatExists(t *testing.T) {
	eachServer(t, func(t *testing.T, s *testServer) {
		type credOut struct {
			Type        string
			Identifiers []string
		}
		type identOut struct {
			ID          string
			Credentials []credOut
		}
		render := func(cs []credOut) []string {
			out := []string{}
			for _, c := range cs {
				out = append(out, c.Type+":"+strings.Join(c.Identifiers, ","))
			}
			return out
		}
		const fields = `id credentials { type identifiers }`
		create := func(in map[string]any) (identOut, []userError) {
			t.Helper()
			r := s.admin(t, `mutation($in: CreateIdentityInput!) { createIdentity(input: $in) { identity { `+fields+` } userErrors { code message path } } }`,
				map[string]any{"in": in})
			p := field[struct {
				Identity   *identOut
				UserErrors []userError
			}](t, r, "createIdentity")
			if p.Identity == nil {
				return identOut{}, p.UserErrors
			}
			return *p.Identity, p.UserErrors
		}
		// every returns the credentials of id on each read path over HTTP:
		// the single read and the page load (db's tests cover the lazy
		// loader, which only the owner's whoami reaches, and it may not
		// read credentials).
		every := func(id string) map[string][]string {
			t.Helper()
			out := map[string][]string{}
			one := field[identOut](t, s.admin(t, `query($id: UUID!) { identity(id: $id) { `+fields+` } }`, map[string]any{"id": id}), "identity")
			out["identity"] = render(one.Credentials)
			page := field[struct{ Edges []struct{ Node identOut } }](t,
				s.admin(t, `query($ids: [UUID!]) { identities(filter: {ids: $ids}) { edges { node { `+fields+` } } } }`, map[string]any{"ids": []string{id}}), "identities")
			if len(page.Edges) != 1 {
				t.Fatalf("identities(ids: [%s]): %d edges", id, len(page.Edges))
			}
			out["identities"] = render(page.Edges[0].Node.Credentials)
			return out
		}
		check := func(name string, created identOut, want []string) {
			t.Helper()
			if got := render(created.Credentials); !slices.Equal(got, want) {
				t.Errorf("%s: createIdentity answered credentials %v, want %v", name, got, want)
			}
			for path, got := range every(created.ID) {
				if !slices.Equal(got, want) {
					t.Errorf("%s: %s shows credentials %v, want %v", name, path, got, want)
				}
			}
		}

		noPassword, errs := create(map[string]any{"traits": map[string]any{"email": "nopass@example.com"}})
		if len(errs) != 0 {
			t.Fatal(codePaths(errs))
		}
		check("no password", noPassword, []string{})
		oidc, errs := create(map[string]any{"traits": map[string]any{"email": "oidc@example.com"},
			"credentials": map[string]any{"oidc": map[string]any{"providers": []any{map[string]any{"provider": "github", "subject": "42"}}}}})
		if len(errs) != 0 {
			t.Fatal(codePaths(errs))
		}
		check("OIDC only", oidc, []string{"OIDC:github:42"})
		withPassword, errs := create(map[string]any{"traits": map[string]any{"email": "pass@example.com"},
			"credentials": map[string]any{"password": map[string]any{"password": pw1}}})
		if len(errs) != 0 {
			t.Fatal(codePaths(errs))
		}
		check("password", withPassword, []string{"PASSWORD:pass@example.com"})
		_, registered := s.mustRegister(t, "registered@example.com", pw1)
		for path, got := range every(registered) {
			if !slices.Equal(got, []string{"PASSWORD:registered@example.com"}) {
				t.Errorf("registered: %s shows credentials %v", path, got)
			}
		}

		// The identifiers of the identities without a password stay theirs.
		for _, email := range []string{"nopass@example.com", "oidc@example.com"} {
			if _, errs := create(map[string]any{"traits": map[string]any{"email": email}}); !slices.Equal(codePaths(errs), []string{"IDENTIFIER_TAKEN@/traits/email"}) {
				t.Errorf("a second identity with %s: %v, want IDENTIFIER_TAKEN", email, codePaths(errs))
			}
		}

		// A password set later shows from then on.
		r := s.admin(t, `mutation($id: UUID!, $in: UpdateIdentityInput!) { updateIdentity(id: $id, input: $in) { identity { `+fields+` } userErrors { code message path } } }`,
			map[string]any{"id": oidc.ID, "in": map[string]any{"traits": map[string]any{"email": "oidc@example.com"},
				"credentials": map[string]any{"password": map[string]any{"password": pw2}}}})
		p := field[struct {
			Identity   *identOut
			UserErrors []userError
		}](t, r, "updateIdentity")
		if p.Identity == nil {
			t.Fatal(codePaths(p.UserErrors))
		}
		check("password added", *p.Identity, []string{"OIDC:github:42", "PASSWORD:oidc@example.com"})
		s.mustLogin(t, "oidc@example.com", pw2)
	})
}
