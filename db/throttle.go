package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// ThrottleKey is one counter that an attempt is charged to, with its rule:
// the attempt that reaches Free blocks the key for 1s, each further attempt
// for twice as long as the one before, up to Cap.
type ThrottleKey struct {
	// Key names what is counted (an address, an identifier, …). Any length:
	// it is stored as its SHA-256.
	Key  string
	Free int
	Cap  time.Duration
}

// throttleHash is how a key is stored: a fixed 32 bytes however long the
// name, so a client cannot grow a row or overflow an index entry.
func throttleHash(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// ReserveLoginAttempt charges one attempt to every key, or to none: when any
// key is blocked at now it changes nothing and returns the time until which
// one is blocked (so a refused attempt costs nothing and counts for nothing);
// otherwise it counts the attempt on each key and returns the zero time. A
// key's count starts again when its last attempt is older than window.
//
// The attempt is reserved before the password is compared, and atomically:
// concurrent attempts on one key are counted one after another, so exactly
// Free of them get through, however many arrive at once. On PostgreSQL it is
// one round trip (identityd_throttle_reserve locks the rows in key order);
// on SQLite one write transaction, which holds the database.
func (db *DB) ReserveLoginAttempt(ctx context.Context, keys []ThrottleKey, now time.Time, window time.Duration) (time.Time, error) {
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	r := newReservation(keys, now, window)
	var until int64
	var err error
	if db.kind == Postgres {
		err = db.bun.NewRaw("SELECT "+reserveSQL, r.args()...).Scan(ctx, &until)
	} else {
		err = db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) (err error) {
			until, err = reserveSQLite(ctx, tx, r)
			return err
		})
	}
	if err != nil {
		return time.Time{}, wrap(err)
	}
	return untilTime(until), nil
}

// untilTime is a reservation's answer: the zero time when it went through.
func untilTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// reservation is ReserveLoginAttempt's arguments as the database takes them.
type reservation struct {
	hashes          [][]byte
	free            []int
	caps            []int64
	nowMS, windowMS int64
}

func newReservation(keys []ThrottleKey, now time.Time, window time.Duration) *reservation {
	r := &reservation{hashes: make([][]byte, len(keys)), free: make([]int, len(keys)), caps: make([]int64, len(keys)),
		nowMS: now.UnixMilli(), windowMS: window.Milliseconds()}
	for i, k := range keys {
		r.hashes[i], r.free[i], r.caps[i] = throttleHash(k.Key), k.Free, k.Cap.Milliseconds()
	}
	return r
}

// reserveSQL calls identityd_throttle_reserve with args' five arguments.
const reserveSQL = "identityd_throttle_reserve(?::bytea[], ?::integer[], ?::bigint[], ?, ?)"

func (r *reservation) args() []any {
	return []any{pgdialect.Array(r.hashes), pgdialect.Array(r.free), pgdialect.Array(r.caps), r.nowMS, r.windowMS}
}

// reserveSQLite is identityd_throttle_reserve (see the PostgreSQL migration)
// step by step, in the caller's write transaction: SQLite's write
// transaction takes the database's lock when it begins (_txlock=immediate),
// so nothing else counts in between.
func reserveSQLite(ctx context.Context, tx bun.Tx, r *reservation) (int64, error) {
	hashes, free, caps, nowMS, windowMS := r.hashes, r.free, r.caps, r.nowMS, r.windowMS
	var until int64
	err := func() error {
		values := strings.TrimSuffix(strings.Repeat("(?, 0, ?), ", len(hashes)), ", ")
		args := make([]any, 0, 2*len(hashes))
		for _, h := range hashes {
			args = append(args, h, nowMS)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO login_throttles (key, attempts, last_attempt_ms) VALUES "+values+
			" ON CONFLICT (key) DO NOTHING", args...); err != nil {
			return err
		}
		var blocked sql.NullInt64
		if err := tx.NewRaw("SELECT max(blocked_until_ms) FROM login_throttles WHERE key IN (?)", bun.In(hashes)).
			Scan(ctx, &blocked); err != nil {
			return err
		}
		if blocked.Int64 > nowMS {
			until = blocked.Int64
			return nil
		}
		for i, h := range hashes {
			if _, err := tx.ExecContext(ctx, reserveSQLiteUpdate, nowMS-windowMS, nowMS, free[i], caps[i], h); err != nil {
				return err
			}
		}
		return nil
	}()
	return until, err
}

// reserveSQLiteUpdate counts one attempt on one key; every SET expression
// sees the row as it was, so the new count is spelled out where needed.
// Arguments (bun's ?N count from 0): the window's start, now, free, cap, key.
const reserveSQLiteUpdate = `UPDATE login_throttles SET
	attempts = CASE WHEN last_attempt_ms < ?0 THEN 1 ELSE attempts + 1 END,
	last_attempt_ms = ?1,
	blocked_until_ms = CASE WHEN (CASE WHEN last_attempt_ms < ?0 THEN 1 ELSE attempts + 1 END) < ?2 THEN 0
		ELSE ?1 + min(1000 << min((CASE WHEN last_attempt_ms < ?0 THEN 1 ELSE attempts + 1 END) - ?2, 40), ?3) END
WHERE key = ?4`

// SettleLoginAttempt undoes what ReserveLoginAttempt counted for an attempt
// that turned out not to be a failure: the keys in clear start again from
// nothing (the identifier of a good login), and each key in refund gives the
// one attempt back (an address, which many good users may share), its block
// lifted when it falls below its free count again.
func (db *DB) SettleLoginAttempt(ctx context.Context, clear []string, refund []ThrottleKey) error {
	if len(clear)+len(refund) == 0 {
		return nil
	}
	// free < 0 marks a key to clear.
	hashes := make([][]byte, 0, len(clear)+len(refund))
	free := make([]int, 0, cap(hashes))
	for _, k := range clear {
		hashes, free = append(hashes, throttleHash(k)), append(free, -1)
	}
	for _, k := range refund {
		hashes, free = append(hashes, throttleHash(k.Key)), append(free, k.Free)
	}
	var err error
	if db.kind == Postgres {
		// The rows are locked in key order first, as the reservation locks
		// them: locked in another order the two could deadlock.
		_, err = db.bun.NewRaw(`UPDATE login_throttles AS t SET
	attempts = CASE WHEN s.free < 0 THEN 0 ELSE GREATEST(t.attempts - 1, 0) END,
	blocked_until_ms = CASE WHEN s.free >= 0 AND t.attempts - 1 >= s.free THEN t.blocked_until_ms ELSE 0 END
FROM (SELECT l.key, c.free FROM login_throttles AS l
	JOIN unnest(?::bytea[], ?::integer[]) AS c (key, free) ON c.key = l.key
	ORDER BY l.key FOR UPDATE OF l) AS s
WHERE t.key = s.key`, pgdialect.Array(hashes), pgdialect.Array(free)).Exec(ctx)
	} else {
		err = db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for i, h := range hashes {
				if _, err := tx.ExecContext(ctx, `UPDATE login_throttles SET
	attempts = CASE WHEN ?0 < 0 THEN 0 ELSE max(attempts - 1, 0) END,
	blocked_until_ms = CASE WHEN ?0 >= 0 AND attempts - 1 >= ?0 THEN blocked_until_ms ELSE 0 END
WHERE key = ?1`, free[i], h); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return wrap(err)
}

// PruneLoginThrottles deletes the counters that no longer count anything:
// their last attempt is older than window before now and they block nothing.
// It returns how many went. The counters are transient; without pruning a
// client trying many names would grow the table forever.
func (db *DB) PruneLoginThrottles(ctx context.Context, now time.Time, window time.Duration) (int, error) {
	nowMS := now.UnixMilli()
	res, err := db.bun.NewRaw("DELETE FROM login_throttles WHERE last_attempt_ms < ? AND blocked_until_ms <= ?",
		nowMS-window.Milliseconds(), nowMS).Exec(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
