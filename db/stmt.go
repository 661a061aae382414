package db

import (
	"context"
	"database/sql"
	"sync"
)

// statements holds prepared statements by their SQL text, each prepared
// once per DB (database/sql prepares it again on each connection that runs
// it). A prepared statement is neither parsed nor planned again: pgdriver
// otherwise sends every query as new text with its arguments inline, which
// PostgreSQL parses and plans each time, and SQLite compiles each new text.
// It is for the hot reads whose text is one of a few fixed forms.
type statements struct {
	mu sync.Mutex // held while preparing, so a text is prepared once
	m  sync.Map   // SQL text → *sql.Stmt
}

// get returns the statement for query, preparing it the first time.
func (s *statements) get(ctx context.Context, sqldb *sql.DB, query string) (*sql.Stmt, error) {
	if stmt, ok := s.m.Load(query); ok {
		return stmt.(*sql.Stmt), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if stmt, ok := s.m.Load(query); ok {
		return stmt.(*sql.Stmt), nil
	}
	stmt, err := sqldb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.m.Store(query, stmt)
	return stmt, nil
}

// close closes every statement.
func (s *statements) close() {
	s.m.Range(func(_, stmt any) bool {
		_ = stmt.(*sql.Stmt).Close()
		return true
	})
}
