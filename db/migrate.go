package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun/migrate"
)

//go:embed migrations
var migrationFiles embed.FS

// Migration is one migration and whether it has been applied.
type Migration struct {
	Name    string
	Comment string
	Applied bool
}

func (db *DB) migrator() (*migrate.Migrator, error) {
	sub, err := fs.Sub(migrationFiles, "migrations/"+string(db.kind))
	if err != nil {
		return nil, err
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return migrate.NewMigrator(db.bun, ms, migrate.WithMarkAppliedOnSuccess(true)), nil
}

// MigrateUp applies every pending migration, holding the migration lock so
// two processes starting together cannot both migrate. It returns the names
// applied, none when the schema is current.
func (db *DB) MigrateUp(ctx context.Context) ([]string, error) {
	m, err := db.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: init: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck // the lock row goes with the error anyway
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return names(group), nil
}

// MigrateDown rolls back the last steps applied migrations, newest first
// (all of them when steps is 0 or less), holding the migration lock. Each
// runs its down SQL (in a transaction where the file says so) and is then
// marked unapplied, so a failure leaves the ones before it rolled back and
// the failing one still applied. It returns the names rolled back.
func (db *DB) MigrateDown(ctx context.Context, steps int) ([]string, error) {
	m, err := db.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: init: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck
	all, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	applied := all.Applied() // newest first
	if steps > 0 && steps < len(applied) {
		applied = applied[:steps]
	}
	var done []string
	for i := range applied {
		mig := &applied[i]
		if mig.Down != nil {
			if err := mig.Down(ctx, m, mig); err != nil {
				return done, fmt.Errorf("migrate down: %s: %w", mig.Name, err)
			}
		}
		if err := m.MarkUnapplied(ctx, mig); err != nil {
			return done, fmt.Errorf("migrate down: %s: %w", mig.Name, err)
		}
		done = append(done, mig.Name)
	}
	return done, nil
}

// Migrations lists every migration and whether it is applied.
func (db *DB) Migrations(ctx context.Context) ([]Migration, error) {
	m, err := db.migrator()
	if err != nil {
		return nil, err
	}
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: init: %w", err)
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]Migration, len(ms))
	for i, x := range ms {
		out[i] = Migration{Name: x.Name, Comment: x.Comment, Applied: x.IsApplied()}
	}
	return out, nil
}

// CheckMigrated fails when a migration is pending, naming the command that
// applies it: a server must not run on a schema it does not know.
func (db *DB) CheckMigrated(ctx context.Context) error {
	ms, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	pending := 0
	for _, m := range ms {
		if !m.Applied {
			pending++
		}
	}
	if pending > 0 {
		return fmt.Errorf("the database has %d pending migration(s): run `identityd migrate up` (or `go run . migrate up`) first", pending)
	}
	return nil
}

func names(g *migrate.MigrationGroup) []string {
	if g == nil {
		return nil
	}
	out := make([]string, len(g.Migrations))
	for i, m := range g.Migrations {
		out[i] = m.Name
	}
	return out
}
