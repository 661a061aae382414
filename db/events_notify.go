package db

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

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
// events the transaction wrote and, once it has committed, hands them to a
// notifier that announces them in the background, many at once, in
// statements of their own that do not wait for a flush (synchronous_commit
// off for them alone: a notification is not data, and the feed polls for
// anything a crash made it miss). insertEvents called outside runInTx still
// notifies inside its caller's transaction.

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
		db.announce(p.ids)
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

// notifier announces the committed events of one DB off the request path,
// many in one statement: while one statement runs, the ids committed
// meanwhile gather for the next, so under load the cost of announcing is
// shared by many writes, and with none nothing runs (no goroutine waits).
type notifier struct {
	mu      sync.Mutex
	pending []uuid.UUID
	running bool
}

// announceDelay is how long announcements gather before they are sent: the
// live feed hears of an event this much later, at most.
const announceDelay = 10 * time.Millisecond

// notifiers holds each DB's notifier (the DB struct is shared code: this
// keeps the outbox's plumbing in this file).
var notifiers sync.Map // *DB → *notifier

// announce queues ids to be announced, starting a flush unless one runs.
func (db *DB) announce(ids []uuid.UUID) {
	v, _ := notifiers.LoadOrStore(db, &notifier{})
	n := v.(*notifier)
	n.mu.Lock()
	n.pending = append(n.pending, ids...)
	start := !n.running
	n.running = true
	n.mu.Unlock()
	if start {
		go db.flushAnnouncements(n)
	}
}

// flushAnnouncements announces what is queued, batch by batch, until the
// queue is empty.
func (db *DB) flushAnnouncements(n *notifier) {
	for {
		// A moment's wait gathers the writes committing meanwhile into one
		// statement: each statement is a transaction, and under load one
		// per write would cost nearly as much as the event's insert.
		time.Sleep(announceDelay)
		n.mu.Lock()
		batch := n.pending
		n.pending = nil
		if len(batch) == 0 {
			n.running = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		for len(batch) > 0 {
			k := min(len(batch), 500)
			db.notifyEvents(context.Background(), batch[:k])
			batch = batch[k:]
		}
	}
}

// notifyEvents announces committed events, in one statement. An id of an
// event rolled back with a savepoint is announced too: readers look events
// up by id and skip those that do not exist. A failure is logged: the
// changes have committed, and the feed finds missed events by polling.
func (db *DB) notifyEvents(ctx context.Context, ids []uuid.UUID) {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	// Through database/sql, not bun: a background statement must not count
	// as a request's query (CountQueries), as the session cache's pings.
	if _, err := db.bun.DB.ExecContext(ctx,
		"SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, x) FROM unnest(string_to_array($2, ',')) AS x",
		EventsChannel, strings.Join(s, ",")); err != nil {
		if strings.Contains(err.Error(), "database is closed") {
			return // the store closed with announcements pending: the feed's sweep finds them
		}
		slog.WarnContext(ctx, "announcing events failed", "events", len(ids), "error", err)
	}
}
