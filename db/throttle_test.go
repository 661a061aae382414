package db_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
)

// TestLoginThrottle walks one set of keys through the rule, on a clock of
// its own, and checks both engines count alike.
func TestLoginThrottle(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		const window = time.Hour
		addr := db.ThrottleKey{Key: "address", Free: 4, Cap: time.Hour}
		ident := db.ThrottleKey{Key: strings.Repeat("long identifier ", 1<<16), Free: 2, Cap: 4 * time.Second}
		keys := []db.ThrottleKey{addr, ident}
		reserve := func(t *testing.T, at time.Time, keys ...db.ThrottleKey) time.Time {
			t.Helper()
			until, err := store.ReserveLoginAttempt(ctx, keys, at, window)
			if err != nil {
				t.Fatal(err)
			}
			return until
		}
		want := func(t *testing.T, at time.Time, wantUntil time.Time) {
			t.Helper()
			if got := reserve(t, at, keys...); !got.Equal(wantUntil) {
				t.Fatalf("at +%v: blocked until %v, want %v", at.Sub(t0), got, wantUntil)
			}
		}
		s := time.Second
		want(t, t0, time.Time{})                         // ident 1, addr 1
		want(t, t0, time.Time{})                         // ident 2 → blocked 1s
		want(t, t0.Add(500*time.Millisecond), t0.Add(s)) // refused, not counted
		want(t, t0.Add(s), time.Time{})                  // ident 3 → 2s, addr 3
		want(t, t0.Add(2*s), t0.Add(3*s))
		want(t, t0.Add(3*s), time.Time{}) // ident 4 → 4s (cap), addr 4 → 1s
		want(t, t0.Add(4*s), t0.Add(7*s))
		want(t, t0.Add(7*s), time.Time{}) // ident 5 → 4s (cap), addr 5 → 2s
		want(t, t0.Add(9*s), t0.Add(11*s))
		// A good login: the identifier starts again, the address gets its
		// attempt back but stays above its free count, so its block stays.
		if err := store.SettleLoginAttempt(ctx, []string{ident.Key}, []db.ThrottleKey{addr}); err != nil {
			t.Fatal(err)
		}
		want(t, t0.Add(8*s), t0.Add(9*s))
		want(t, t0.Add(9*s), time.Time{}) // addr 5 again → 2s, ident 1
		// Below its free count again, a refund lifts the address's block.
		other := db.ThrottleKey{Key: "other address", Free: 1, Cap: time.Hour}
		if got := reserve(t, t0, other); !got.IsZero() {
			t.Fatalf("first attempt refused until %v", got)
		}
		if got := reserve(t, t0, other); !got.Equal(t0.Add(s)) {
			t.Fatalf("second attempt: blocked until %v, want %v", got, t0.Add(s))
		}
		if err := store.SettleLoginAttempt(ctx, nil, []db.ThrottleKey{other}); err != nil {
			t.Fatal(err)
		}
		if got := reserve(t, t0, other); !got.IsZero() {
			t.Fatalf("after the refund: refused until %v", got)
		}
		// After the window without attempts a key starts again.
		late := t0.Add(window + time.Minute)
		want(t, late, time.Time{})
		want(t, late, time.Time{}) // ident 2 → blocked
		want(t, late, late.Add(s))

		// Pruning keeps what still counts or blocks.
		if n, err := store.PruneLoginThrottles(ctx, late, window); err != nil || n != 1 {
			t.Fatalf("prune: %d rows, %v; want 1 (the other address)", n, err)
		}
		if n, err := store.PruneLoginThrottles(ctx, late.Add(window+time.Second), window); err != nil || n != 2 {
			t.Fatalf("prune: %d rows, %v; want 2", n, err)
		}
	})
}

// TestLoginThrottleConcurrent: attempts that arrive together are counted one
// after another, so exactly Free of them are allowed.
func TestLoginThrottleConcurrent(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		keys := []db.ThrottleKey{
			{Key: "address", Free: 20, Cap: time.Hour},
			{Key: "identifier from address", Free: 5, Cap: time.Hour},
			{Key: "identifier", Free: 5, Cap: time.Minute},
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 40 {
			wg.Go(func() {
				until, err := store.ReserveLoginAttempt(ctx, keys, now, time.Hour)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Error(err)
				} else if until.IsZero() {
					allowed++
				}
			})
		}
		wg.Wait()
		if allowed != 5 {
			t.Errorf("%d of 40 concurrent attempts allowed, want 5", allowed)
		}
	})
}
