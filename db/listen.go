package db

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/driver/pgdriver"
)

// StartSessionCache turns on the session cache (see sessionCache) and runs
// its listener until ctx ends or the database is closed. Only PostgreSQL can
// tell other processes' changes, so on SQLite, or on a PostgreSQL without the
// notify triggers (CockroachDB has no LISTEN), it does nothing and every
// request reads its session from the database. It returns at once; the cache
// serves nothing until the first ping has come back.
func (db *DB) StartSessionCache(ctx context.Context, log *slog.Logger) {
	if db.kind != Postgres {
		return
	}
	var n int
	err := db.bun.NewRaw(`SELECT count(*) FROM pg_trigger WHERE tgname IN ('identities_cache_notify', 'sessions_cache_notify')`).Scan(ctx, &n)
	if err != nil || n != 2 {
		log.Warn("session cache off: the database lacks the notify triggers", "err", err)
		return
	}
	c := newSessionCache()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	listening := make(chan struct{}, 1)
	wg.Go(func() { db.listenLoop(ctx, c, listening, log) })
	wg.Go(func() { db.pingLoop(ctx, c, listening, log) })
	db.cache = c
	db.stopCache = func() { cancel(); wg.Wait() }
}

// changed drops an identity's cached sessions after this process changed
// the identity or its sessions: the notification from the triggers follows,
// but a client must see its own write at once.
func (db *DB) changed(identityID uuid.UUID) {
	if db.cache == nil {
		return
	}
	if identityID == uuid.Nil {
		db.cache.flush()
		return
	}
	db.cache.invalidate(identityID)
}

// pingLoop sends this process a notification every pingInterval, through
// the pool like any write; listenLoop trusts the cache as long as they come
// back, and at once when a new listening connection is up (listening). It
// bypasses bun (and so its query hooks, see CountQueries).
func (db *DB) pingLoop(ctx context.Context, c *sessionCache, listening <-chan struct{}, log *slog.Logger) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, pingInterval)
		_, err := db.bun.DB.ExecContext(pctx, "SELECT pg_notify($1, $2)", cacheChannel, c.pingPayload())
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Debug("session cache ping failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-listening:
		}
	}
}

// listenLoop applies notifications to the cache. Any trouble with the
// listening connection empties the cache and stops serving from it until a
// ping sent after the trouble comes back on a working connection; the cache
// is emptied again then, since changes made while nobody listened were
// missed.
func (db *DB) listenLoop(ctx context.Context, c *sessionCache, listening chan<- struct{}, log *slog.Logger) {
	var ln *pgdriver.Listener
	// A receive blocked on the connection does not see ctx end: closing
	// the listener is what wakes it, so that stopping takes no longer than
	// the round trip (it took up to pingInterval, a second per shutdown).
	var current atomic.Pointer[pgdriver.Listener]
	stopWaking := context.AfterFunc(ctx, func() {
		if l := current.Load(); l != nil {
			_ = l.Close()
		}
	})
	defer stopWaking()
	defer func() {
		if ln != nil {
			_ = ln.Close()
		}
	}()
	trusted := false
	reset := c.mono() // pings sent before this prove nothing
	lastBack := c.mono()
	fail := func(why string, err error) {
		if trusted {
			log.Warn("session cache off until its listener is back", "why", why, "err", err)
		}
		trusted = false
		c.validUntil.Store(0)
		c.flush()
		reset = c.mono()
		lastBack = reset
		if ln != nil {
			_ = ln.Close()
			ln = nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(pingInterval / 2):
		}
	}
	for ctx.Err() == nil {
		if ln == nil {
			ln = pgdriver.NewListener(db.bun)
			current.Store(ln)
			if ctx.Err() != nil {
				return // stopped before the listener could be woken
			}
			if err := ln.Listen(ctx, cacheChannel); err != nil {
				fail("listen", err)
				continue
			}
			select {
			case listening <- struct{}{}:
			default:
			}
		}
		_, payload, err := ln.ReceiveTimeout(ctx, pingInterval)
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				return
			case errors.As(err, &ne) && ne.Timeout():
				// Quiet is fine as long as our pings come back.
				if c.mono()-lastBack > int64(3*maxStale) {
					fail("no ping came back", err)
				}
			default:
				fail("receive", err)
			}
			continue
		}
		if sent, ok := c.parsePing(payload); ok {
			if sent <= reset {
				continue
			}
			lastBack = c.mono()
			if !trusted {
				c.flush()
				trusted = true
				log.Debug("session cache on")
			}
			if until := sent + int64(maxStale); until > c.validUntil.Load() {
				c.validUntil.Store(until)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(payload, "sync:"+c.instance+":"); ok {
			c.synced(rest)
			continue
		}
		if strings.HasPrefix(payload, "ping:") || strings.HasPrefix(payload, "sync:") {
			continue // another process's
		}
		id, err := uuid.Parse(payload)
		if err != nil {
			c.flush() // not ours to understand: be safe
			continue
		}
		c.invalidate(id)
	}
}

// SyncSessionCache returns once this process's session cache has applied
// every change committed before the call: it sends itself a notification
// and waits for it to come back behind them. Tests use it after writing to
// the database behind the service's back; it returns at once when there is
// no cache.
func (db *DB) SyncSessionCache(ctx context.Context) error {
	c := db.cache
	if c == nil {
		return nil
	}
	token, done := c.awaitSync()
	defer c.synced(token)
	// A notification sent while the listener reconnects is lost: send again
	// until one comes back.
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := db.bun.DB.ExecContext(ctx, "SELECT pg_notify($1, $2)", cacheChannel, "sync:"+c.instance+":"+token); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
