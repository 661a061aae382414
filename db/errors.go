package db

import (
	"database/sql"
	"errors"
	"strings"

	"github.com/uptrace/bun/driver/pgdriver"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/identityd/identityd/model"
)

// This file is the one place where driver errors become model errors.

// isUniqueViolation reports whether err is a unique-constraint violation on
// either engine.
func isUniqueViolation(err error) bool {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C') == "23505"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// isForeignKeyViolation reports whether err is a foreign-key violation on
// either engine (a row of an identity deleted meanwhile).
func isForeignKeyViolation(err error) bool {
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		return pgErr.Field('C') == "23503"
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		return sqErr.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return false
}

// notFound maps "no rows" to a NOT_FOUND model error and passes others on.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return model.Errorf(model.CodeNotFound, "%s not found", what)
	}
	return err
}

// isConnectionError tells failures of the connection (the database is down
// or restarting) from failures of the query, so callers can answer
// "unavailable" instead of "internal error".
func isConnectionError(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "broken pipe") ||
		strings.Contains(s, "connection reset") || errors.Is(err, sql.ErrConnDone) ||
		strings.Contains(s, "EOF") || strings.Contains(s, "57P01") // admin_shutdown
}

// wrap turns a storage failure into an error for the layers above: model
// errors pass through, an unreachable database becomes UNAVAILABLE (safe to
// show, nothing internal in it), and anything else stays internal.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	var me *model.Error
	var mes model.Errors
	if errors.As(err, &me) || errors.As(err, &mes) {
		return err
	}
	if isConnectionError(err) {
		return errors.Join(model.Errorf(model.CodeUnavailable, "the database is unavailable, try again shortly"), err)
	}
	return err
}
