package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

type throttleRow struct {
	bun.BaseModel `bun:"table:login_throttles"`

	Key           string     `bun:"key,pk"`
	Failures      int        `bun:"failures"`
	LastFailureAt time.Time  `bun:"last_failure_at"`
	BlockedUntil  *time.Time `bun:"blocked_until"`
}

// LoginBlockedUntil returns the latest time until which any of keys is
// blocked, or the zero time when none is blocked at now.
func (db *DB) LoginBlockedUntil(ctx context.Context, keys []string, now time.Time) (time.Time, error) {
	var rows []*throttleRow
	if err := db.bun.NewSelect().Model(&rows).Column("key", "blocked_until").
		Where("key IN (?) AND blocked_until > ?", bun.In(keys), now.UTC()).Scan(ctx); err != nil {
		return time.Time{}, wrap(err)
	}
	var until time.Time
	for _, r := range rows {
		if r.BlockedUntil != nil && r.BlockedUntil.After(until) {
			until = r.BlockedUntil.UTC()
		}
	}
	return until, nil
}

// RecordLoginFailure counts one failed attempt for key and returns the count
// so far. Failures older than window are forgotten. block decides, from the
// count, until when key is blocked (zero: not blocked). One statement: two
// server processes counting at once both count.
func (db *DB) RecordLoginFailure(ctx context.Context, key string, now time.Time, window time.Duration, block func(failures int) time.Time) (int, error) {
	now = now.UTC()
	row := &throttleRow{Key: key, Failures: 1, LastFailureAt: now}
	if _, err := db.bun.NewInsert().Model(row).
		On("CONFLICT (key) DO UPDATE").
		Set("failures = CASE WHEN ?TableAlias.last_failure_at < ? THEN 1 ELSE ?TableAlias.failures + 1 END", now.Add(-window)).
		Set("last_failure_at = EXCLUDED.last_failure_at").
		Returning("failures").
		Exec(ctx, &row.Failures); err != nil {
		return 0, wrap(err)
	}
	if until := block(row.Failures); !until.IsZero() {
		if _, err := db.bun.NewUpdate().Model((*throttleRow)(nil)).Set("blocked_until = ?", until.UTC()).
			Where("key = ?", key).Exec(ctx); err != nil {
			return 0, wrap(err)
		}
	}
	return row.Failures, nil
}

// ClearLoginFailures forgets key's failures, after a successful login.
func (db *DB) ClearLoginFailures(ctx context.Context, key string) error {
	_, err := db.bun.NewDelete().Model((*throttleRow)(nil)).Where("key = ?", key).Exec(ctx)
	return wrap(err)
}
