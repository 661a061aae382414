package db

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// EventFilter narrows the events listing; zero fields do not filter.
type EventFilter struct {
	IdentityID *uuid.UUID
	// Types are event types, or patterns where "*" matches any run of
	// characters ("identity.*").
	Types []string
	// Since and Until bound occurred_at: at or after Since, before Until.
	Since, Until *time.Time
}

// ListEvents returns up to limit events whose id sorts before the keyset
// cursor before (uuid.Nil: from the newest), newest first, and whether more
// follow. Ids are UUIDv7, so this is a backward scan of the primary key (or
// of events_identity_idx for one identity) that stops after limit+1 rows.
func (db *DB) ListEvents(ctx context.Context, f EventFilter, before uuid.UUID, limit int) ([]*model.Event, bool, error) {
	var rows []*eventRow
	q := filterEvents(db.bun.NewSelect().Model(&rows), f)
	if before != uuid.Nil {
		q = q.Where("id < ?", before)
	}
	if f.IdentityID != nil {
		// Ordering by (identity_id, id) lets the planner walk the partial
		// index backwards for one identity.
		q = q.OrderExpr("identity_id DESC, id DESC")
	} else {
		q = q.OrderExpr("id DESC")
	}
	if err := q.Limit(int64(limit) + 1).Scan(ctx); err != nil {
		return nil, false, wrap(fmt.Errorf("list events: %w", err))
	}
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}
	out := make([]*model.Event, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, more, nil
}

// GetEvent returns one event; NOT_FOUND when there is none.
func (db *DB) GetEvent(ctx context.Context, id uuid.UUID) (*model.Event, error) {
	row := new(eventRow)
	if err := db.bun.NewSelect().Model(row).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "event")
	}
	return row.model(), nil
}

// EventsAfter tells whether f matches an event newer than the keyset
// cursor: one that a page starting after it does not show.
func (db *DB) EventsAfter(ctx context.Context, f EventFilter, cursor uuid.UUID) (bool, error) {
	if cursor == uuid.Nil {
		return false, nil
	}
	found, err := filterEvents(db.bun.NewSelect().Model((*eventRow)(nil)), f).
		ColumnExpr("1").Where("id >= ?", cursor).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// filterEvents narrows q, a query on events, to what f matches.
func filterEvents(q *bun.SelectQuery, f EventFilter) *bun.SelectQuery {
	if f.IdentityID != nil {
		q = q.Where("identity_id = ?", *f.IdentityID)
	}
	// Ids are UUIDv7 made as the event is (occurred_at is read from the
	// same clock within microseconds): bounding the id too lets the scan of
	// the primary key or events_identity_idx start and stop near the time
	// range instead of filtering every newer or older row. The margin
	// covers any skew between the two; occurred_at decides exactly.
	if f.Since != nil {
		q = q.Where("occurred_at >= ?", f.Since.UTC()).Where("id >= ?", idTimeBound(f.Since.Add(-idTimeMargin)))
	}
	if f.Until != nil {
		q = q.Where("occurred_at < ?", f.Until.UTC()).Where("id < ?", idTimeBound(f.Until.Add(idTimeMargin)))
	}
	if len(f.Types) > 0 {
		var exact, like []string
		for _, t := range f.Types {
			if strings.Contains(t, "*") {
				like = append(like, eventTypeLike(t))
			} else {
				exact = append(exact, t)
			}
		}
		q = q.WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			if len(exact) > 0 {
				q = q.WhereOr("type IN (?)", bun.In(exact))
			}
			for _, p := range like {
				q = q.WhereOr(`type LIKE ? ESCAPE '\'`, p)
			}
			return q
		})
	}
	return q
}

// idTimeMargin is how far an event's id time may be from its occurred_at.
const idTimeMargin = time.Minute

// idTimeBound is the smallest UUIDv7 of t's millisecond: every id made
// then or later sorts at or after it, every earlier one before.
func idTimeBound(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := t.UnixMilli()
	if ms < 0 {
		ms = 0
	}
	if ms >= 1<<48 {
		ms = 1<<48 - 1
	}
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (8 * (5 - i)))
	}
	return u
}

// eventTypeLike turns a type pattern ("*" any run) into a LIKE pattern with
// LIKE's own metacharacters escaped.
func eventTypeLike(pattern string) string {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteByte('%')
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// pruneEventsBatch is how many events one pruning statement deletes: small
// enough that no statement holds its locks for long.
const pruneEventsBatch = 1000

// PruneEvents deletes the events that occurred before before, and their
// webhook deliveries (ON DELETE CASCADE), batch events at a time (0: the
// default of 1,000), each batch its own short statement, until none is
// left; it returns how many went. Ids are UUIDv7, so the oldest events are
// the first ids: each batch is a range of the primary key.
func (db *DB) PruneEvents(ctx context.Context, before time.Time, batch int) (int, error) {
	if batch <= 0 {
		batch = pruneEventsBatch
	}
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		ids := db.bun.NewSelect().Model((*eventRow)(nil)).Column("id").
			Where("occurred_at < ?", before.UTC()).OrderExpr("id").Limit(int64(batch))
		res, err := db.bun.NewDelete().Model((*eventRow)(nil)).Where("id IN (?)", ids).Exec(ctx)
		if err != nil {
			return total, wrap(fmt.Errorf("prune events: %w", err))
		}
		n, _ := res.RowsAffected()
		total += int(n)
		if n < int64(batch) {
			return total, nil
		}
	}
}
