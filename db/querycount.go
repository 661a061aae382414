package db

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/uptrace/bun"
)

// queryCounter is a bun.QueryHook that counts queries while it is on. It is
// installed at most once per DB and stays installed; when off it costs one
// atomic load per query.
type queryCounter struct {
	on sync.Mutex // held by the one CountQueries running at a time
	// counting is set while a CountQueries is running.
	counting atomic.Bool
	n        atomic.Int64
}

func (c *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	if c.counting.Load() && ctx.Value(backgroundKey{}) == nil {
		c.n.Add(1)
	}
	return ctx
}

type backgroundKey struct{}

// BackgroundContext marks ctx as a background loop's (the courier, the code
// requests, pruning): CountQueries leaves its queries out, since they run
// on their own clock, not as part of the operation a test counts.
func BackgroundContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// installTestHooks installs the hooks of CountQueries and
// RecordFailedQueries, off until they are called.
func (db *DB) installTestHooks() {
	db.counter, db.failures = &queryCounter{}, &failedQueries{}
	db.bun.AddQueryHook(db.counter)
	db.bun.AddQueryHook(db.failures)
}

func (c *queryCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// CountQueries starts counting the queries db runs, on every connection, and
// returns stop, which ends the count and returns it. It is for tests that
// check how many queries an operation costs (a page of 250 identities must
// cost what a page of 1 does). Counts do not overlap: a second CountQueries
// waits until the first one's stop. Queries of background loops (see
// BackgroundContext) are not counted.
func (db *DB) CountQueries() (stop func() int) {
	c := db.counter
	c.on.Lock()
	c.n.Store(0)
	c.counting.Store(true)
	var once sync.Once
	var total int
	return func() int {
		once.Do(func() {
			c.counting.Store(false)
			total = int(c.n.Load())
			c.on.Unlock()
		})
		return total
	}
}

// counted counts a query run outside bun (a prepared statement), if a
// CountQueries is running.
func (db *DB) counted() {
	if db.counter.counting.Load() {
		db.counter.n.Add(1)
	}
}

// failedQueries is a bun.QueryHook that keeps the text of every query that
// fails while it is on.
type failedQueries struct {
	mu    sync.Mutex
	on    bool
	texts []string
}

func (f *failedQueries) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (f *failedQueries) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if e.Err == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.on {
		f.texts = append(f.texts, e.Query)
	}
}

// RecordFailedQueries starts keeping the SQL text of every query db runs
// that fails, as the database receives it (bun writes values inline), and
// returns stop, which ends the recording and returns the texts. PostgreSQL
// logs the text of a failed statement, so tests use it to check that no
// failure a user can cause carries a secret.
func (db *DB) RecordFailedQueries() (stop func() []string) {
	f := db.failures
	f.mu.Lock()
	f.on, f.texts = true, nil
	f.mu.Unlock()
	return func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.on = false
		return f.texts
	}
}
