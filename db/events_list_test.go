package db_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// TestEventsListAndPrune: the events listing is newest first in keyset
// pages, filters by identity, types (with "*" and LIKE's metacharacters
// taken literally) and time; pruning deletes in batches until none is left
// and keeps the newer ones.
func TestEventsListAndPrune(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
		types := []string{model.EventIdentityCreated, model.EventSessionCreated, model.EventLoginFailed, model.EventSessionRevoked, model.EventIdentityUpdated}
		var made []*model.Event
		for i := range 25 {
			who := a
			if i%2 == 1 {
				who = b
			}
			at := base.Add(time.Duration(i) * time.Hour)
			e := model.NewEvent(ctx, types[i%len(types)], who, false, at)
			e.ID = v7At(t, at) // as if made then
			made = append(made, e)
		}
		if err := store.RecordEvents(ctx, made...); err != nil {
			t.Fatal(err)
		}
		list := func(f db.EventFilter) []uuid.UUID {
			t.Helper()
			var out []uuid.UUID
			cursor := uuid.Nil
			for {
				page, more, err := store.ListEvents(ctx, f, cursor, 4)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					out = append(out, e.ID)
				}
				if !more {
					return out
				}
				cursor = page[len(page)-1].ID
				if prev, err := store.EventsAfter(ctx, f, cursor); err != nil || !prev {
					t.Fatalf("EventsAfter %s: %v, %v", cursor, prev, err)
				}
			}
		}
		want := func(keep func(i int, e *model.Event) bool) []uuid.UUID {
			var out []uuid.UUID
			for i := len(made) - 1; i >= 0; i-- {
				if keep(i, made[i]) {
					out = append(out, made[i].ID)
				}
			}
			return out
		}
		since, until := base.Add(5*time.Hour), base.Add(10*time.Hour)
		for _, tc := range []struct {
			name string
			f    db.EventFilter
			keep func(i int, e *model.Event) bool
		}{
			{"all", db.EventFilter{}, func(int, *model.Event) bool { return true }},
			{"identity", db.EventFilter{IdentityID: &a}, func(_ int, e *model.Event) bool { return *e.IdentityID == a }},
			{"exact", db.EventFilter{Types: []string{model.EventLoginFailed}}, func(_ int, e *model.Event) bool { return e.Type == model.EventLoginFailed }},
			{"wildcard", db.EventFilter{Types: []string{"session.*"}}, func(_ int, e *model.Event) bool { return e.Type[:8] == "session." }},
			{"literal _ and %", db.EventFilter{Types: []string{"session_created", "%"}}, func(int, *model.Event) bool { return false }},
			{"identity, types and time", db.EventFilter{IdentityID: &b, Types: []string{"identity.*", "login.failed"}, Since: &since, Until: &until},
				func(i int, e *model.Event) bool {
					return *e.IdentityID == b && (e.Type == model.EventLoginFailed || e.Type[:9] == "identity.") && i >= 5 && i < 10
				}},
		} {
			if got, w := list(tc.f), want(tc.keep); !slices.Equal(got, w) {
				t.Errorf("%s: %d events %v, want %d %v", tc.name, len(got), got, len(w), w)
			}
		}
		got, err := store.GetEvent(ctx, made[3].ID)
		if err != nil || got.Type != made[3].Type || got.IdentityID == nil || *got.IdentityID != b {
			t.Errorf("GetEvent: %+v, %v", got, err)
		}
		if _, err := store.GetEvent(ctx, uuid.Must(uuid.NewV7())); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("GetEvent of none: %v", err)
		}

		n, err := store.PruneEvents(ctx, base.Add(20*time.Hour), 3)
		if err != nil || n != 20 {
			t.Fatalf("PruneEvents: %d, %v; want 20", n, err)
		}
		if got, w := list(db.EventFilter{}), want(func(i int, _ *model.Event) bool { return i >= 20 }); !slices.Equal(got, w) {
			t.Errorf("after pruning: %v, want %v", got, w)
		}
		if n, err := store.PruneEvents(ctx, base.Add(20*time.Hour), 0); err != nil || n != 0 {
			t.Errorf("pruning again: %d, %v", n, err)
		}
	})
}

// v7At is a UUIDv7 of time at.
func v7At(t *testing.T, at time.Time) uuid.UUID {
	t.Helper()
	u := uuid.Must(uuid.NewV7())
	ms := at.UnixMilli()
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (8 * (5 - i)))
	}
	return u
}
