// Package db is the storage layer and the only package that imports bun. It
// maps unexported row structs to model types, runs queries over bun.IDB so
// they compose inside one transaction, turns driver errors into model errors
// in one place (errors.go), and carries the embedded SQL migrations of each
// dialect.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Kind is a database engine family.
type Kind string

// The engines the service runs on. CockroachDB speaks PostgreSQL's protocol
// and is Postgres here.
const (
	Postgres Kind = "postgres"
	SQLite   Kind = "sqlite"
)

// DB is an open database. It is safe for concurrent use.
type DB struct {
	bun  *bun.DB
	kind Kind

	// cache holds active sessions for ActiveSession while StartSessionCache
	// runs (PostgreSQL only); nil otherwise.
	cache     *sessionCache
	stopCache func()

	// counter and failures serve CountQueries and RecordFailedQueries.
	// They are installed when the DB opens, because bun's hook list may
	// not change while queries run (background loops run from the start),
	// and cost an atomic load per query while off.
	counter  *queryCounter
	failures *failedQueries

	stmtMu            sync.Mutex
	activeSessionStmt atomic.Pointer[sql.Stmt]
	// stmts are the prepared statements of the identity reads (stmt.go).
	stmts statements
	// webhooks are the configured webhooks events are queued for
	// (events.go).
	webhooks webhookTargets
}

// ParseDSN checks a dsn and tells its engine: sqlite://FILE, sqlite://:memory:,
// postgres://… (postgresql:// and cockroach:// too).
func ParseDSN(dsn string) (Kind, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		if strings.TrimPrefix(dsn, "sqlite://") == "" {
			return "", errors.New("sqlite:// needs a file path or :memory:")
		}
		return SQLite, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"), strings.HasPrefix(dsn, "cockroach://"):
		if _, err := url.Parse(dsn); err != nil {
			return "", errors.New("not a valid URL")
		}
		return Postgres, nil
	default:
		return "", fmt.Errorf("%q must start with sqlite:// or postgres://", RedactDSN(dsn))
	}
}

// RedactDSN hides a password in a dsn so it can be logged.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		if i := strings.Index(dsn, "://"); i >= 0 && strings.Contains(dsn[i:], "@") {
			return dsn[:i+3] + "…"
		}
		return dsn
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// Open connects to the database named by dsn. A SQLite file and its folder
// are created when missing. Open does not migrate: see MigrateUp.
func Open(ctx context.Context, dsn string) (*DB, error) {
	kind, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch kind {
	case SQLite:
		db, err = openSQLite(strings.TrimPrefix(dsn, "sqlite://"))
	default:
		db, err = openPostgres(dsn)
	}
	if err != nil {
		return nil, err
	}
	db.installTestHooks()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.Ping(pctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to %s: %w", RedactDSN(dsn), err)
	}
	return db, nil
}

// openPostgres uses bun's own pgdriver: on this machine it served bun's
// queries faster than pgx (see README, "PostgreSQL driver").
func openPostgres(dsn string) (*DB, error) {
	u, _ := url.Parse(dsn)
	if u.Scheme == "cockroach" || u.Scheme == "postgresql" {
		u.Scheme = "postgres"
	}
	q := u.Query()
	if q.Get("sslmode") == "" && isLoopback(u.Hostname()) {
		// A local database needs no TLS; pgdriver would insist otherwise.
		q.Set("sslmode", "disable")
		u.RawQuery = q.Encode()
	}
	connector := pgdriver.NewConnector(
		pgdriver.WithDSN(u.String()),
		pgdriver.WithTimeout(5*time.Second),
		pgdriver.WithApplicationName("identityd"),
	)
	sqldb := sql.OpenDB(connector)
	// A restart of PostgreSQL leaves dead connections in the pool; recycling
	// idle ones keeps the window short, and database/sql retries ErrBadConn.
	sqldb.SetMaxOpenConns(32)
	sqldb.SetMaxIdleConns(32)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	sqldb.SetConnMaxLifetime(30 * time.Minute)
	return &DB{bun: bun.NewDB(sqldb, pgdialect.New()), kind: Postgres}, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "" || strings.HasPrefix(host, "127.") || host == "::1" || strings.HasPrefix(host, "/")
}

// openSQLite opens a SQLite file (or a private in-memory database) with WAL,
// a busy timeout, foreign keys on, and write transactions that take the lock
// up front (_txlock=immediate): without it two read-then-write transactions
// deadlock and one fails at once with SQLITE_BUSY.
func openSQLite(file string) (*DB, error) {
	memory := file == ":memory:"
	params := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		params.Add("_pragma", p)
	}
	params.Set("_txlock", "immediate")
	var dsn string
	if memory {
		dsn = "file::memory:?" + params.Encode()
	} else {
		if err := MakeDataDir(filepath.Dir(file)); err != nil {
			return nil, err
		}
		// The file holds password hashes: readable by its owner only.
		// SQLite gives its -wal and -shm files the database file's mode.
		f, err := os.OpenFile(file, os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
		_ = f.Close()
		dsn = "file:" + file + "?" + params.Encode()
	}
	sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
	if err != nil {
		return nil, err
	}
	if memory {
		// Each connection to :memory: is a database of its own: keep one.
		sqldb.SetMaxOpenConns(1)
	} else {
		sqldb.SetMaxOpenConns(8)
		sqldb.SetMaxIdleConns(8)
	}
	sqldb.SetConnMaxIdleTime(0)
	return &DB{bun: bun.NewDB(sqldb, sqlitedialect.New()), kind: SQLite}, nil
}

// Kind tells the engine.
func (db *DB) Kind() Kind { return db.kind }

// Ping checks that the database answers; /health/ready uses it.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.bun.NewRaw("SELECT 1").Scan(ctx, &one); err != nil {
		return err
	}
	return nil
}

// Close closes every connection.
func (db *DB) Close() error {
	if db.stopCache != nil {
		db.stopCache()
	}
	if stmt := db.activeSessionStmt.Load(); stmt != nil {
		_ = stmt.Close()
	}
	db.stmts.close()
	return db.bun.Close()
}

// MakeDataDir makes dir, the folder of the SQLite file and of local state,
// when it is missing but its parent exists: `go run .` then works in a fresh
// clone (./data). It makes no more than that last level, so a typo in a DSN
// (sqlite:///nonexistent/dir/x.db) is an error that names the folder, not a
// tree of folders created wherever the process may write.
func MakeDataDir(dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("dsn: %s is not a folder", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return fmt.Errorf("dsn: the folder %s does not exist; create it first or choose another path (only its last level, %s, is made)", parent, filepath.Base(dir))
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dsn: create the folder %s: %w", dir, err)
	}
	return nil
}
