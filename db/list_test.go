package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// TestCountsAreBounded: a count reads at most its limit of rows and says
// the limit when more match; the probe before a cursor finds only rows of
// the same filter. Identities and sessions alike, on both engines.
func TestCountsAreBounded(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		inactive := model.IdentityStateInactive
		var ids []uuid.UUID
		for i := range 5 {
			w := write(fmt.Sprintf("count%d@example.com", i))
			if i%2 == 1 {
				w.Identity.State = inactive
			}
			if _, err := store.CreateIdentity(ctx, w); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, w.Identity.ID)
		}
		for _, tc := range []struct {
			name   string
			f      db.IdentityFilter
			limit  int
			want   int
			before uuid.UUID
			prev   bool
		}{
			{"all", db.IdentityFilter{}, 100, 5, ids[0], true},
			{"bounded", db.IdentityFilter{}, 3, 3, uuid.Nil, false},
			{"filtered", db.IdentityFilter{State: &inactive}, 100, 2, ids[0], false},
			{"filtered, bounded", db.IdentityFilter{State: &inactive}, 1, 1, ids[1], true},
			{"no ids", db.IdentityFilter{IDs: []uuid.UUID{}}, 100, 0, ids[4], false},
			{"identifiers", db.IdentityFilter{Identifiers: []string{"count3@example.com", "nobody@example.com"}}, 100, 1, ids[2], false},
		} {
			n, err := store.CountIdentities(ctx, tc.f, tc.limit)
			if err != nil || n != tc.want {
				t.Errorf("%s: CountIdentities(limit %d) = %d, %v; want %d", tc.name, tc.limit, n, err, tc.want)
			}
			prev, err := store.IdentitiesBefore(ctx, tc.f, tc.before)
			if err != nil || prev != tc.prev {
				t.Errorf("%s: IdentitiesBefore = %v, %v; want %v", tc.name, prev, err, tc.prev)
			}
		}

		// Sessions: three of ids[0], one ended, one expired.
		var sids []uuid.UUID
		for i := range 3 {
			s := &model.Session{ID: uuid.Must(uuid.NewV7()), IdentityID: ids[0], IssuedAt: now, AuthenticatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if i == 2 {
				s.ExpiresAt = now.Add(-time.Second)
			}
			if err := store.CreateSession(ctx, &db.NewSession{Session: s, TokenHash: []byte(s.ID.String())}); err != nil {
				t.Fatal(err)
			}
			sids = append(sids, s.ID)
		}
		if err := store.RevokeSession(ctx, ids[0], sids[1], now); err != nil {
			t.Fatal(err)
		}
		yes, no := true, false
		for _, tc := range []struct {
			name      string
			f         db.SessionFilter
			limit     int
			want      []uuid.UUID
			wantCount int
		}{
			{"all", db.SessionFilter{Now: now}, 100, []uuid.UUID{sids[2], sids[1], sids[0]}, 3},
			{"bounded", db.SessionFilter{Now: now}, 2, []uuid.UUID{sids[2], sids[1], sids[0]}, 2},
			{"working", db.SessionFilter{Active: &yes, Now: now}, 100, []uuid.UUID{sids[0]}, 1},
			{"ended or expired", db.SessionFilter{Active: &no, Now: now}, 100, []uuid.UUID{sids[2], sids[1]}, 2},
			{"someone else's", db.SessionFilter{IdentityID: &ids[1], Now: now}, 100, []uuid.UUID{}, 0},
		} {
			n, err := store.CountSessions(ctx, tc.f, tc.limit)
			if err != nil || n != tc.wantCount {
				t.Errorf("%s: CountSessions(limit %d) = %d, %v; want %d", tc.name, tc.limit, n, err, tc.wantCount)
			}
			got, more, err := store.ListSessions(ctx, tc.f, uuid.Nil, 10)
			if err != nil || more || len(got) != len(tc.want) {
				t.Fatalf("%s: ListSessions: %d, %v, %v; want %d", tc.name, len(got), more, err, len(tc.want))
			}
			for i, s := range got {
				if s.ID != tc.want[i] {
					t.Errorf("%s: session %d is %s, want %s (newest first)", tc.name, i, s.ID, tc.want[i])
				}
			}
		}
		// After the newest, the older ones; before it, nothing of the
		// working sessions, which are all older.
		page, more, err := store.ListSessions(ctx, db.SessionFilter{Now: now}, sids[2], 1)
		if err != nil || len(page) != 1 || page[0].ID != sids[1] || !more {
			t.Errorf("one after the newest: %v more %v, %v; want %s and more", page, more, err, sids[1])
		}
		if prev, err := store.SessionsBefore(ctx, db.SessionFilter{Active: &yes, Now: now}, sids[1]); err != nil || prev {
			t.Errorf("working sessions at or before %s: %v, %v; want none", sids[1], prev, err)
		}
		if prev, err := store.SessionsBefore(ctx, db.SessionFilter{Now: now}, sids[1]); err != nil || !prev {
			t.Errorf("sessions at or before %s: %v, %v; want some", sids[1], prev, err)
		}
		if _, err := store.Session(ctx, uuid.Must(uuid.NewV7())); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("unknown session: %v, want NOT_FOUND", err)
		}
		if s, err := store.Session(ctx, sids[1]); err != nil || s.Active {
			t.Errorf("an ended session by id: %+v, %v", s, err)
		}
	})
}
