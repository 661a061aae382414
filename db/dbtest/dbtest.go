// Package dbtest runs one test body on every database the service supports,
// each test in a fresh database of its own that is dropped afterwards. A
// database that cannot be reached fails the test: nothing is skipped.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/identityd/identityd/db"
)

// PostgresAdminDSN is the server tests create their databases on: env
// TEST_POSTGRES_DSN, or the local trust-auth server.
func PostgresAdminDSN() string {
	if dsn := os.Getenv("TEST_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Each runs fn as a subtest per engine ("sqlite", "postgres") with the dsn of
// a fresh, empty (unmigrated) database.
func Each(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, NewSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, NewPostgres(t)) })
}

// EachDB is Each with the database opened and migrated.
func EachDB(t *testing.T, fn func(t *testing.T, store *db.DB)) {
	t.Helper()
	Each(t, func(t *testing.T, dsn string) { fn(t, Open(t, dsn)) })
}

// NewSQLite returns the dsn of a fresh SQLite file in the test's temp folder.
func NewSQLite(t testing.TB) string {
	t.Helper()
	return "sqlite://" + filepath.Join(t.TempDir(), "test.db")
}

// NewPostgres creates a database on the test server and drops it when the
// test ends, returning its dsn.
func NewPostgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminDSN()
	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(admin), pgdriver.WithTimeout(5*time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		t.Fatalf("PostgreSQL at %s is unreachable (set TEST_POSTGRES_DSN): %v", db.RedactDSN(admin), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "identityd_test_" + hex.EncodeToString(b[:])
	if _, err := sqldb.ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %q", name)); err != nil {
		_ = sqldb.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := sqldb.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %q WITH (FORCE)", name)); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		_ = sqldb.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("TEST_POSTGRES_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens dsn, applies every migration and closes it when the test ends.
func Open(t testing.TB, dsn string) *db.DB {
	t.Helper()
	ctx := context.Background()
	store, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", db.RedactDSN(dsn), err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return store
}
