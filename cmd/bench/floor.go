package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/identityd/identityd/internal/password"
)

// floorQuery is the read every session lookup needs at least: the session
// by its token's hash, joined to its identity, on the unique index.
const floorQuery = "SELECT s.id FROM sessions s JOIN identities i ON i.id = s.identity_id WHERE s.token_hash = $1"

// floor is one floor measurement.
type floor struct {
	Name string // "read" or "hash"
	Conc int
	Ops  int
	Rate float64
	Lat  []time.Duration // sorted
	Errs int
	usage
}

// openFloorDB opens the server's database the way the server does: bun's
// pgdriver with the same pool size, or the SQLite file through sqliteshim
// with the same pragmas and pool.
func openFloorDB(dsn string) (*sql.DB, string, error) {
	if file, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		params := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
			params.Add("_pragma", p)
		}
		db, err := sql.Open(sqliteshim.ShimName, "file:"+file+"?"+params.Encode())
		if err != nil {
			return nil, "", err
		}
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
		return db, "sqliteshim (modernc), same file, 8 connections", nil
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn), pgdriver.WithTimeout(5*time.Second)))
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	return db, "bun pgdriver + database/sql, 32 connections", nil
}

// readFloor runs floorQuery with random existing token hashes at conc for
// the measured duration (after the same warm-up as a scenario).
func (r *runner) readFloor(ctx context.Context, db *sql.DB, conc int) (*floor, error) {
	// The SQLite driver takes a $1 placeholder as well; the hash is bytes
	// either way (BYTEA, BLOB), as the server binds it.
	one := func(ctx context.Context) error {
		var id string
		return db.QueryRowContext(ctx, floorQuery, r.tokenHashes[rand.IntN(len(r.tokenHashes))]).Scan(&id)
	}
	if err := one(ctx); err != nil {
		return nil, fmt.Errorf("read floor: %w", err)
	}
	f := &floor{Name: "read", Conc: conc}
	run := func(d time.Duration, record bool) time.Duration {
		deadline := time.Now().Add(d)
		var mu sync.Mutex
		var wg sync.WaitGroup
		var budget atomic.Int64
		budget.Store(int64(r.o.maxRequests))
		start := time.Now()
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				errs := 0
				for ctx.Err() == nil && time.Now().Before(deadline) && budget.Add(-1) >= 0 {
					t0 := time.Now()
					if one(ctx) != nil {
						errs++
					}
					lat = append(lat, time.Since(t0))
				}
				if record {
					mu.Lock()
					f.Lat = append(f.Lat, lat...)
					f.Errs += errs
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	if r.o.warmup > 0 {
		run(r.o.warmup, false)
	}
	r.quiet(ctx)
	wt := startWatch(r.pid, false, r.dbName())
	elapsed := run(r.o.duration, true)
	f.usage = wt.stop()
	slices.Sort(f.Lat)
	f.Ops = len(f.Lat)
	f.Rate = float64(f.Ops) / elapsed.Seconds()
	return f, ctx.Err()
}

// hashFloor computes argon2id hashes at the configured parameters through
// internal/password with the server's bound on hashes at once: what login
// could reach if hashing were all it did.
func (r *runner) hashFloor(ctx context.Context, conc int) (*floor, error) {
	h := password.NewHasher(r.o.argon2, r.o.hashSlots)
	f := &floor{Name: "hash", Conc: conc}
	r.quiet(ctx)
	wt := startWatch(r.pid, false, "")
	deadline := time.Now().Add(r.o.duration)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				_, err := h.Hash(ctx, benchPassword)
				d := time.Since(t0)
				mu.Lock()
				f.Lat = append(f.Lat, d)
				if err != nil {
					f.Errs++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	f.usage = wt.stop()
	slices.Sort(f.Lat)
	f.Ops = len(f.Lat)
	f.Rate = float64(f.Ops) / elapsed.Seconds()
	return f, ctx.Err()
}
