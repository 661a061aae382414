package db

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/identityd/identityd/model"
)

// The reads and the listener of the live feed (internal/eventfeed): new
// events are announced on EventsChannel (PostgreSQL) and read back by id, or
// found by polling (SQLite, and PostgreSQL while its listener is down).

// feedReadBatch is the most events one read returns.
const feedReadBatch = 500

// EventsByID returns the events with these ids that exist, in id order
// (the order they happened in). Ids of events already pruned are skipped.
func (db *DB) EventsByID(ctx context.Context, ids []uuid.UUID) ([]*model.Event, error) {
	var out []*model.Event
	for start := 0; start < len(ids); start += feedReadBatch {
		chunk := ids[start:min(start+feedReadBatch, len(ids))]
		var rows []*eventRow
		if err := db.bun.NewSelect().Model(&rows).Where("id IN (?)", bun.In(chunk)).OrderExpr("id").Scan(ctx); err != nil {
			return nil, wrap(err)
		}
		for _, r := range rows {
			out = append(out, r.model())
		}
	}
	return out, nil
}

// EventsAfterID returns at most limit events whose id is greater than
// after, in id order. Ids are UUIDv7, made when the change began: an event
// may commit after one with a greater id, so a caller polling with it looks
// back a little and drops what it has seen.
func (db *DB) EventsAfterID(ctx context.Context, after uuid.UUID, limit int) ([]*model.Event, error) {
	var rows []*eventRow
	if err := db.bun.NewSelect().Model(&rows).Where("id > ?", after).OrderExpr("id").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, wrap(err)
	}
	out := make([]*model.Event, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, nil
}

// EventIDsAfterID returns at most limit ids of events greater than after,
// in order: what a poll needs to find the events it has not seen, without
// reading those it has.
func (db *DB) EventIDsAfterID(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	if err := db.bun.NewSelect().Table("events").Column("id").Where("id > ?", after).OrderExpr("id").Limit(int64(limit)).Scan(ctx, &ids); err != nil {
		return nil, wrap(err)
	}
	return ids, nil
}

// LatestEventRow is, on SQLite, the rowid of the newest event (0 without
// any). SQLite runs one write transaction at a time, so rowids are handed
// out in commit order: polling "rowid > the last one read" misses nothing,
// unlike polling by id.
func (db *DB) LatestEventRow(ctx context.Context) (int64, error) {
	if db.kind != SQLite {
		return 0, errors.New("LatestEventRow: rowids are SQLite's")
	}
	var n int64
	if err := db.bun.NewRaw("SELECT coalesce(max(rowid), 0) FROM events").Scan(ctx, &n); err != nil {
		return 0, wrap(err)
	}
	return n, nil
}

// EventsAfterRow returns, on SQLite, the events whose rowid is greater than
// after and at most upTo, in rowid (commit) order, at most limit of them,
// with the rowid of each.
func (db *DB) EventsAfterRow(ctx context.Context, after, upTo int64, limit int) ([]*model.Event, []int64, error) {
	if db.kind != SQLite {
		return nil, nil, errors.New("EventsAfterRow: rowids are SQLite's")
	}
	var rows []struct {
		eventRow
		RowID int64 `bun:"feed_rowid"`
	}
	err := db.bun.NewRaw("SELECT rowid AS feed_rowid, * FROM events WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
		after, upTo, limit).Scan(ctx, &rows)
	if err != nil {
		return nil, nil, wrap(err)
	}
	out := make([]*model.Event, len(rows))
	ids := make([]int64, len(rows))
	for i := range rows {
		out[i] = rows[i].eventRow.model()
		ids[i] = rows[i].RowID
	}
	return out, ids, nil
}

// EventListener hears of new events on PostgreSQL: a connection of its own
// that LISTENs on EventsChannel, and on a channel only it knows, which Ping
// sends to through the pool, so a silent failure of the connection shows
// as pings that do not come back.
type EventListener struct {
	db   *DB
	ln   *pgdriver.Listener
	ping string
}

// ListenEvents opens an EventListener. It fails on SQLite.
func (db *DB) ListenEvents(ctx context.Context) (*EventListener, error) {
	if db.kind != Postgres {
		return nil, errors.New("ListenEvents: only PostgreSQL announces events")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &EventListener{db: db, ln: pgdriver.NewListener(db.bun), ping: EventsChannel + "_ping_" + hex.EncodeToString(b[:])}
	if err := l.ln.Listen(ctx, EventsChannel, l.ping); err != nil {
		_ = l.ln.Close()
		return nil, err
	}
	return l, nil
}

// Receive waits up to timeout for a notification: an event's id, or
// (ping) one of this listener's pings. A wait that times out returns an
// error for which IsTimeout is true; the listener still works then. A
// notification on EventsChannel that is not an id is skipped.
func (l *EventListener) Receive(ctx context.Context, timeout time.Duration) (id uuid.UUID, ping bool, err error) {
	for {
		channel, payload, err := l.ln.ReceiveTimeout(ctx, timeout)
		if err != nil {
			return uuid.Nil, false, err
		}
		if channel == l.ping {
			return uuid.Nil, true, nil
		}
		if id, err := uuid.Parse(payload); err == nil {
			return id, false, nil
		}
	}
}

// Ping sends this listener a notification through the pool, as any write
// goes; Receive reports it when it comes back. It bypasses bun's query
// hooks (CountQueries), like the session cache's pings.
func (l *EventListener) Ping(ctx context.Context) error {
	_, err := l.db.bun.DB.ExecContext(ctx, "SELECT pg_notify($1, '')", l.ping)
	return err
}

// Close closes the listener's connection; a Receive blocked on it returns.
func (l *EventListener) Close() error { return l.ln.Close() }

// IsTimeout tells whether err is a wait that timed out.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
