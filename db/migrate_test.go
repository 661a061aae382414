package db_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
)

// TestMigrationsFromZero applies every migration to an empty database, rolls
// them all back and applies them again, on every engine: the down files must
// undo the up files exactly, or the second up fails.
func TestMigrationsFromZero(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		store, err := db.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()

		if err := store.CheckMigrated(ctx); err == nil {
			t.Fatal("CheckMigrated on an empty database: got nil, want an error naming migrate up")
		} else if got := err.Error(); !strings.Contains(got, "migrate up") {
			t.Fatalf("CheckMigrated error %q does not name `migrate up`", got)
		}

		first, err := store.MigrateUp(ctx)
		if err != nil {
			t.Fatalf("up: %v", err)
		}
		if len(first) == 0 {
			t.Fatal("up applied nothing on an empty database")
		}
		if err := store.CheckMigrated(ctx); err != nil {
			t.Fatalf("after up: %v", err)
		}
		again, err := store.MigrateUp(ctx)
		if err != nil || len(again) != 0 {
			t.Fatalf("second up: applied %v, err %v; want nothing", again, err)
		}

		ms, err := store.Migrations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if !m.Applied {
				t.Errorf("migration %s not applied after up", m.Name)
			}
		}

		// One step by default: only the newest migration.
		one, err := store.MigrateDown(ctx, 1)
		if err != nil {
			t.Fatalf("down 1: %v", err)
		}
		if want := first[len(first)-1]; len(one) != 1 || one[0] != want {
			t.Fatalf("down 1 rolled back %v, want [%s]", one, want)
		}
		if err := store.CheckMigrated(ctx); err == nil {
			t.Fatal("after down 1, nothing is pending")
		}
		if again, err := store.MigrateUp(ctx); err != nil || !slices.Equal(again, one) {
			t.Fatalf("up after down 1: applied %v, err %v; want %v", again, err, one)
		}

		rolled, err := store.MigrateDown(ctx, 0)
		if err != nil {
			t.Fatalf("down all: %v", err)
		}
		slices.Sort(rolled)
		slices.Sort(first)
		if !slices.Equal(rolled, first) {
			t.Fatalf("down rolled back %v, want %v", rolled, first)
		}
		if _, err := store.MigrateUp(ctx); err != nil {
			t.Fatalf("up after down: %v", err)
		}
	})
}
