package db

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// IdentityFilter narrows a listing; zero fields do not filter.
type IdentityFilter struct {
	// Identifiers matches identities with any credential identifier among
	// these normalised forms (see schemas.LoginCandidates).
	Identifiers []string
	State       *model.IdentityState
	SchemaID    *string
	IDs         []uuid.UUID
	// ExternalID matches the identity with this external id, exactly.
	ExternalID *string
}

// ListIdentities returns up to limit identities whose id sorts after the
// keyset cursor after (uuid.Nil: from the start), in id order, and whether
// more follow. Ids are UUIDv7, so the order is creation order and a new
// identity never shifts a page another client is walking. The relations
// rels are loaded with the page, one query per relation whatever limit is;
// the others are left for the lazy loaders.
func (db *DB) ListIdentities(ctx context.Context, f IdentityFilter, after uuid.UUID, limit int, rels model.Relations) ([]*model.Identity, bool, error) {
	var rows []*identityRow
	q, ok := db.filterIdentities(db.bun.NewSelect().Model(&rows), f)
	if !ok {
		return []*model.Identity{}, false, nil
	}
	q = q.OrderExpr("id ASC").Limit(int64(limit) + 1)
	if after != uuid.Nil {
		q = q.Where("id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, false, wrap(fmt.Errorf("list identities: %w", err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]*model.Identity, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	if err := loadRelations(ctx, db.bun, out, rels); err != nil {
		return nil, false, wrap(err)
	}
	return out, more, nil
}

// CountIdentities counts the identities f matches, reading at most limit of
// them: the answer is limit when at least that many match.
func (db *DB) CountIdentities(ctx context.Context, f IdentityFilter, limit int) (int, error) {
	q, ok := db.filterIdentities(db.bun.NewSelect().Model((*identityRow)(nil)), f)
	if !ok {
		return 0, nil
	}
	n, err := db.countUpTo(ctx, q, limit)
	return n, wrap(err)
}

// IdentitiesBefore tells whether f matches an identity at or before the
// keyset cursor: one that a page starting after it does not show. One probe
// of the primary key, however many identities precede.
func (db *DB) IdentitiesBefore(ctx context.Context, f IdentityFilter, cursor uuid.UUID) (bool, error) {
	q, ok := db.filterIdentities(db.bun.NewSelect().Model((*identityRow)(nil)), f)
	if !ok || cursor == uuid.Nil {
		return false, nil
	}
	found, err := q.ColumnExpr("1").Where("id <= ?", cursor).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// filterIdentities narrows q, a query on identities, to what f matches; ok
// is false when f matches nothing, so no query need run.
func (db *DB) filterIdentities(q *bun.SelectQuery, f IdentityFilter) (_ *bun.SelectQuery, ok bool) {
	if (f.IDs != nil && len(f.IDs) == 0) || (f.Identifiers != nil && len(f.Identifiers) == 0) {
		return q, false
	}
	// No identity has an empty external id (empty means unset), nor one
	// holding NUL or invalid UTF-8, which PostgreSQL text cannot take in a
	// query either.
	if f.ExternalID != nil && (*f.ExternalID == "" || strings.ContainsRune(*f.ExternalID, 0) || !utf8.ValidString(*f.ExternalID)) {
		return q, false
	}
	if f.ExternalID != nil {
		q = q.Where("external_id = ?", *f.ExternalID)
	}
	if f.State != nil {
		q = q.Where("state = ?", stateToDB(*f.State))
	}
	if f.SchemaID != nil {
		q = q.Where("schema_id = ?", *f.SchemaID)
	}
	if len(f.IDs) > 0 {
		q = q.Where("id IN (?)", bun.In(f.IDs))
	}
	if len(f.Identifiers) > 0 {
		q = q.Where("id IN (?)", db.bun.NewSelect().Model((*identifierRow)(nil)).Column("identity_id").
			Where("identifier IN (?)", bun.In(f.Identifiers)))
	}
	return q, true
}

// countUpTo counts the rows q selects, reading at most limit of them: the
// LIMIT inside the subquery stops the scan there, where a plain count(*)
// would visit every matching row.
func (db *DB) countUpTo(ctx context.Context, q *bun.SelectQuery, limit int) (int, error) {
	var n int
	err := db.bun.NewSelect().
		TableExpr("(?) AS bounded", q.ColumnExpr("1").Limit(int64(limit))).
		ColumnExpr("count(*)").Scan(ctx, &n)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	return n, nil
}

// newestPage runs q, a filtered select into rows, for up to limit rows
// newest first (by id, a UUIDv7: creation order) after the keyset cursor
// after (uuid.Nil: from the newest), and returns them as models and whether
// more follow. A row made meanwhile sorts before every cursor, so it never
// shifts a page another client is walking.
func newestPage[R any, M any](ctx context.Context, q *bun.SelectQuery, rows *[]R, after uuid.UUID, limit int, what string, toModel func(R) M) ([]M, bool, error) {
	q = q.OrderExpr("id DESC").Limit(int64(limit) + 1)
	if after != uuid.Nil {
		q = q.Where("id < ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, false, wrap(fmt.Errorf("list %s: %w", what, err))
	}
	page := *rows
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	out := make([]M, len(page))
	for i, r := range page {
		out[i] = toModel(r)
	}
	return out, more, nil
}
