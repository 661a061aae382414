package db

import (
	"context"
	"log/slog"
	"strings"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// Announcing events after commit.
//
// A NOTIFY inside a transaction makes PostgreSQL take one database-wide
// lock at commit and hold it until the commit record is flushed, so every
// transaction that notifies commits one after another, each waiting for its
// own fsync: measured, that halved createIdentity's throughput. The writes
// of this package therefore run in runInTx, which collects the ids of the
// events the transaction wrote and announces them once it has committed, in
// one statement of its own that does not wait for a flush
// (synchronous_commit off for it alone: a notification is not data, and the
// feed polls for anything a crash made it miss). insertEvents called
// outside runInTx still notifies inside its caller's transaction.

// notifyKey is where runInTx keeps the ids to announce.
type notifyKey struct{}

type pendingNotify struct{ ids []uuid.UUID }

// runInTx is bun's RunInTx for writes that may write events: on PostgreSQL
// their ids are announced on EventsChannel after the commit.
func (db *DB) runInTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if db.kind != Postgres {
		return db.bun.RunInTx(ctx, nil, fn)
	}
	p := &pendingNotify{}
	err := db.bun.RunInTx(context.WithValue(ctx, notifyKey{}, p), nil, fn)
	if err == nil && len(p.ids) > 0 {
		db.notifyEvents(context.WithoutCancel(ctx), p.ids)
	}
	return err
}

// deferNotify records ids to announce after the commit of the runInTx
// transaction that ctx belongs to; false when there is none (the caller
// notifies in its transaction).
func deferNotify(ctx context.Context, ids []uuid.UUID) bool {
	p, ok := ctx.Value(notifyKey{}).(*pendingNotify)
	if ok {
		p.ids = append(p.ids, ids...)
	}
	return ok
}

// notifyEvents announces committed events, in one statement. An id of an
// event rolled back with a savepoint is announced too: readers look events
// up by id and skip those that do not exist. A failure is logged: the
// change has committed, and the feed finds missed events by polling.
func (db *DB) notifyEvents(ctx context.Context, ids []uuid.UUID) {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	if _, err := db.bun.ExecContext(ctx,
		"SELECT set_config('synchronous_commit', 'off', true), pg_notify(?, x) FROM unnest(string_to_array(?, ',')) AS x",
		EventsChannel, strings.Join(s, ",")); err != nil {
		slog.WarnContext(ctx, "announcing events failed", "events", len(ids), "error", err)
	}
}
