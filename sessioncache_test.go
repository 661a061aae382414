package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/session"
)

// waitCached waits until the server answers whoami for token from its
// session cache (no query at all), which on PostgreSQL it does once its
// listener has heard its first ping back; it fails the test if that never
// happens. Only for PostgreSQL: SQLite has no cache.
func (s *testServer) waitCached(t *testing.T, token string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		stop := s.app.store.CountQueries()
		r := s.gql(t, token, `{ whoami { id } }`, nil)
		n := stop()
		if len(r.Errors) > 0 {
			t.Fatalf("whoami: %+v", r.Errors)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("whoami still costs %d queries: the session cache never served", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSessionCacheAcrossProcesses: two server processes share one database;
// whatever one of them, or anyone else, changes about a session or its
// identity, the other one's whoami reflects as soon as the change's
// notification has arrived (syncCache waits for exactly that, so a missed
// notification fails the test instead of being waited out). On SQLite,
// which has no cache, the same holds trivially and the test checks it too.
func TestSessionCacheAcrossProcesses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		a := newTestServer(t, dsn, nil)
		b := newTestServer(t, dsn, nil)
		a.app.store.CountQueries()() // installs the hooks while nothing runs
		b.app.store.CountQueries()()
		pg := !strings.HasPrefix(dsn, "sqlite")
		n := 0
		// warm signs up a new identity on a and makes b cache its session.
		warm := func(t *testing.T) (token, id string) {
			n++
			token, id = a.mustRegister(t, fmt.Sprintf("cached%d@example.com", n), pw1)
			if pg {
				b.waitCached(t, token)
				a.waitCached(t, token)
			}
			return token, id
		}

		t.Run("traits changed by the owner", func(t *testing.T) {
			token, _ := warm(t)
			r := a.gql(t, token, `mutation { updateMyTraits(traits: {email: "renamed@example.com"}) { identity { id } userErrors { code } } }`, nil)
			if len(r.Errors) > 0 || strings.Contains(string(r.Data), `"code"`) {
				t.Fatalf("updateMyTraits: %s %+v", r.Data, r.Errors)
			}
			// a sees its own write at once, without waiting for anything.
			if got := a.whoami(t, token).Identity.Traits; got["email"] != "renamed@example.com" {
				t.Errorf("a's whoami right after its own write: traits %s", got)
			}
			b.syncCache(t)
			if got := b.whoami(t, token).Identity.Traits; got["email"] != "renamed@example.com" {
				t.Errorf("b's whoami: traits %s, want the new email", got)
			}
		})
		t.Run("logout", func(t *testing.T) {
			token, _ := warm(t)
			r := a.gql(t, token, `mutation { logout { userErrors { code } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("logout: %+v", r.Errors)
			}
			a.wantUnauthenticated(t, token, "a, right after logging out")
			b.syncCache(t)
			b.wantUnauthenticated(t, token, "b, after the logout on a")
		})
		t.Run("identity disabled by an admin", func(t *testing.T) {
			token, id := warm(t)
			a.admin(t, `mutation($id: UUID!) { updateIdentity(id: $id, input: {traits: {email: "disabled@example.com"}, state: INACTIVE}) { identity { id } userErrors { code } } }`,
				map[string]any{"id": id})
			b.syncCache(t)
			b.wantUnauthenticated(t, token, "b, after the identity was disabled on a")
			a.admin(t, `mutation($id: UUID!) { updateIdentity(id: $id, input: {traits: {email: "disabled@example.com"}, state: ACTIVE}) { identity { id } userErrors { code } } }`,
				map[string]any{"id": id})
			b.syncCache(t)
			b.wantUnauthenticated(t, token, "b, after the identity was enabled again")
		})
		t.Run("identity deleted", func(t *testing.T) {
			token, id := warm(t)
			a.admin(t, `mutation($id: UUID!) { deleteIdentity(id: $id) { deletedId userErrors { code } } }`, map[string]any{"id": id})
			b.syncCache(t)
			b.wantUnauthenticated(t, token, "b, after the identity was deleted on a")
		})
		t.Run("session revoked by a write outside the service", func(t *testing.T) {
			token, _ := warm(t)
			me := b.whoami(t, token)
			sqlExec(t, dsn, fmt.Sprintf("UPDATE sessions SET active = false WHERE id = '%s'", me.ID))
			b.syncCache(t)
			b.wantUnauthenticated(t, token, "b, after a manual revocation")
			a.syncCache(t)
			a.wantUnauthenticated(t, token, "a, after a manual revocation")
		})
		t.Run("other sessions ended by a password change", func(t *testing.T) {
			token, _ := warm(t)
			other, _ := a.mustLogin(t, fmt.Sprintf("cached%d@example.com", n), pw1)
			if pg {
				b.waitCached(t, other)
			}
			r := a.gql(t, token, `mutation($in: ChangePasswordInput!) { changeMyPassword(input: $in) { userErrors { code } } }`,
				map[string]any{"in": map[string]any{"currentPassword": pw1, "newPassword": pw2}})
			if len(r.Errors) > 0 || strings.Contains(string(r.Data), `"code"`) {
				t.Fatalf("changeMyPassword: %s %+v", r.Data, r.Errors)
			}
			b.syncCache(t)
			b.wantUnauthenticated(t, other, "b, the other session after the password change")
			b.whoami(t, token)
		})
	})
}

// TestSessionCacheListenerLoss: when a process's listening connection dies,
// changes made meanwhile are never served stale once the listener is back,
// and the cache serves again after it is.
func TestSessionCacheListenerLoss(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	s := newTestServer(t, dsn, nil)
	s.app.store.CountQueries()()
	token, _ := s.mustRegister(t, "listener@example.com", pw1)
	keep, _ := s.mustLogin(t, "listener@example.com", pw1)
	s.waitCached(t, token)
	s.waitCached(t, keep)

	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	defer sqldb.Close()
	ctx := context.Background()
	var killed int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%identityd_cache%'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	// Revoked while the listener is gone: its notification is lost.
	if _, err := sqldb.ExecContext(ctx, `UPDATE sessions SET active = false WHERE token_hash = $1`, session.HashToken(token)); err != nil {
		t.Fatal(err)
	}
	s.syncCache(t) // returns once a new listener hears its own notification
	s.wantUnauthenticated(t, token, "after the listener came back")
	s.waitCached(t, keep)
	s.wantUnauthenticated(t, token, "once the cache serves again")
}
