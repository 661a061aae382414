package db

import (
	"context"
	"fmt"

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
}

// ListIdentities returns up to limit identities whose id sorts after the
// keyset cursor after (uuid.Nil: from the start), in id order, and whether
// more follow. Ids are UUIDv7, so the order is creation order and a new
// identity never shifts a page another client is walking. The relations
// rels are loaded with the page, one query per relation whatever limit is;
// the others are left for the lazy loaders.
func (db *DB) ListIdentities(ctx context.Context, f IdentityFilter, after uuid.UUID, limit int, rels model.Relations) ([]*model.Identity, bool, error) {
	if f.IDs != nil && len(f.IDs) == 0 {
		return []*model.Identity{}, false, nil
	}
	var rows []*identityRow
	q := db.bun.NewSelect().Model(&rows).OrderExpr("id ASC").Limit(int64(limit) + 1)
	if after != uuid.Nil {
		q = q.Where("id > ?", after)
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
	if f.Identifiers != nil {
		if len(f.Identifiers) == 0 {
			return []*model.Identity{}, false, nil
		}
		q = q.Where("id IN (?)", db.bun.NewSelect().Model((*identifierRow)(nil)).Column("identity_id").
			Where("identifier IN (?)", bun.In(f.Identifiers)))
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
