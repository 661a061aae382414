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

// MigrateDown rolls back the last applied group of migrations.
func (db *DB) MigrateDown(ctx context.Context) ([]string, error) {
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
	group, err := m.Rollback(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return names(group), nil
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
