package eventfeed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// start runs a broker over store until the test ends.
func start(t *testing.T, store *db.DB, o Options) *Broker {
	t.Helper()
	o.PollInterval = 20 * time.Millisecond
	o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := New(store, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

func record(t *testing.T, store *db.DB, typ string, identity uuid.UUID) *model.Event {
	t.Helper()
	e := model.NewEvent(context.Background(), typ, identity, false, time.Now())
	if err := store.RecordEvents(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// next waits for one event.
func next(t *testing.T, ch <-chan *model.Event) *model.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return nil
}

// quiet fails if an event arrives within d.
func quiet(t *testing.T, ch <-chan *model.Event, d time.Duration) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected event %s %s", e.Type, e.ID)
	case <-time.After(d):
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitListening waits until the PostgreSQL listener is up, so that a test
// knows which path (notification or poll) an event takes.
func waitListening(t *testing.T, b *Broker, store *db.DB) {
	t.Helper()
	if store.Kind() == db.Postgres {
		waitFor(t, "the listener", b.listening.Load)
	}
}

func TestBrokerDeliversFiltersAndUnsubscribes(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		before := record(t, store, "identity.created", uuid.New())
		b := start(t, store, Options{})
		waitListening(t, b, store)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		all, err := b.Subscribe(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		alice := uuid.New()
		onlyAlice, _ := b.Subscribe(ctx, &model.EventFilter{IdentityID: &alice})
		onlySessions, _ := b.Subscribe(ctx, &model.EventFilter{Types: []string{"session.*", "login.failed"}})
		if got := b.Subscribers(); got != 3 {
			t.Fatalf("Subscribers() = %d, want 3", got)
		}

		e1 := record(t, store, "identity.updated", alice)
		e2 := record(t, store, "session.created", uuid.New())
		e3 := record(t, store, "login.failed", uuid.Nil)
		e4 := record(t, store, "session.revoked", alice)

		// On PostgreSQL an event is announced after its commit by a
		// background notifier, so one committed just before the broker
		// started may still be heard: it may come first, and is not
		// counted.
		var got []uuid.UUID
		for len(got) < 4 {
			if e := next(t, all); e.ID != before.ID {
				got = append(got, e.ID)
			}
		}
		if want := []uuid.UUID{e1.ID, e2.ID, e3.ID, e4.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("all: got %v, want %v (not %v, made before subscribing)", got, want, before.ID)
		}
		if e := next(t, onlyAlice); e.ID != e1.ID || e.Type != "identity.updated" || *e.IdentityID != alice {
			t.Errorf("alice's first: %+v", e)
		}
		if e := next(t, onlyAlice); e.ID != e4.ID {
			t.Errorf("alice's second: %s, want %s", e.ID, e4.ID)
		}
		for _, want := range []uuid.UUID{e2.ID, e3.ID, e4.ID} {
			if e := next(t, onlySessions); e.ID != want {
				t.Errorf("sessions: %s (%s), want %s", e.ID, e.Type, want)
			}
		}
		quiet(t, all, 200*time.Millisecond)
		quiet(t, onlyAlice, 0)

		cancel()
		waitFor(t, "unsubscribing", func() bool { return b.Subscribers() == 0 })
		if _, ok := <-all; ok {
			t.Error("the channel is open after its context ended")
		}
	})
}

func TestBrokerDropsASlowSubscriber(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		b := start(t, store, Options{Buffer: 4})
		waitListening(t, b, store)
		slowCtx := WithDropNotice(context.Background())
		slow, _ := b.Subscribe(slowCtx, nil)
		fast, _ := b.Subscribe(context.Background(), nil)

		// One write of many events: they arrive together, as a burst does.
		var events []*model.Event
		for range 10 {
			events = append(events, model.NewEvent(context.Background(), "identity.updated", uuid.New(), false, time.Now()))
		}
		if err := store.RecordEvents(context.Background(), events...); err != nil {
			t.Fatal(err)
		}
		// The fast one reads as they come and gets every one.
		for i, want := range events {
			if e := next(t, fast); e.ID != want.ID {
				t.Fatalf("fast subscriber's event %d: %s, want %s", i, e.ID, want.ID)
			}
		}
		waitFor(t, "the slow subscriber to be dropped", func() bool { return b.Subscribers() == 1 })
		n := 0
		for range slow {
			n++
		}
		if n != 4 {
			t.Errorf("the slow subscriber got %d events before its end, want its buffer (4)", n)
		}
		var me *model.Error
		if err := DropNotice(slowCtx); !errors.As(err, &me) || me.Code != model.CodeUnavailable || !strings.Contains(me.Message, "fell behind") {
			t.Errorf("DropNotice = %v, want UNAVAILABLE saying it fell behind", err)
		}
		// The others go on.
		e := record(t, store, "identity.deleted", uuid.New())
		if got := next(t, fast); got.ID != e.ID {
			t.Errorf("after the drop: %s, want %s", got.ID, e.ID)
		}
	})
}

func TestBrokerBoundsSubscriptionsAndCloses(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		b := start(t, store, Options{MaxSubscribers: 2})
		ctx := context.Background()
		first, _ := b.Subscribe(ctx, nil)
		if _, err := b.Subscribe(ctx, nil); err != nil {
			t.Fatal(err)
		}
		_, err := b.Subscribe(ctx, nil)
		var me *model.Error
		if !errors.As(err, &me) || me.Code != model.CodeUnavailable || !strings.Contains(me.Message, "2 live subscriptions") {
			t.Fatalf("third subscription: %v, want UNAVAILABLE naming the limit", err)
		}
		b.Close()
		if b.Subscribers() != 0 {
			t.Errorf("Subscribers() = %d after Close", b.Subscribers())
		}
		if _, ok := <-first; ok {
			t.Error("a channel is open after Close")
		}
		if _, err := b.Subscribe(ctx, nil); !errors.As(err, &me) || me.Code != model.CodeUnavailable {
			t.Errorf("Subscribe after Close: %v, want UNAVAILABLE", err)
		}
	})
}

// TestBrokerHearsOtherProcesses: on PostgreSQL an event written through
// another connection pool (another process) reaches this one's subscriber,
// and while the listener is down (its connection killed) events still
// arrive, by polling, none twice.
func TestBrokerHearsOtherProcesses(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	store := dbtest.Open(t, dsn)
	other := dbtest.Open(t, dsn)
	b := start(t, store, Options{})
	waitListening(t, b, store)
	ch, _ := b.Subscribe(context.Background(), nil)

	e := record(t, other, "identity.created", uuid.New())
	if got := next(t, ch); got.ID != e.ID {
		t.Fatalf("got %s, want %s", got.ID, e.ID)
	}

	// Kill the listening connection; write while it reconnects.
	killListeners(t, dsn)
	var want []uuid.UUID
	for range 5 {
		want = append(want, record(t, other, "identity.updated", uuid.New()).ID)
		time.Sleep(50 * time.Millisecond)
	}
	waitListening(t, b, store)
	want = append(want, record(t, other, "identity.deleted", uuid.New()).ID)
	var got []uuid.UUID
	for range want {
		got = append(got, next(t, ch).ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	quiet(t, ch, 300*time.Millisecond)
}

// killListeners ends the connections of dsn's database that LISTEN, as a
// database restart or a network failure would.
func killListeners(t *testing.T, dsn string) {
	t.Helper()
	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	defer sqldb.Close()
	var n int
	err := sqldb.QueryRowContext(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&n)
	if err != nil || n == 0 {
		t.Fatalf("killing the listener: %d killed, %v", n, err)
	}
}

func TestFilterAndIDs(t *testing.T) {
	id := uuid.New()
	e := &model.Event{Type: "identity.state_changed", IdentityID: &id}
	for _, c := range []struct {
		f    *model.EventFilter
		want bool
	}{
		{nil, true},
		{&model.EventFilter{}, true},
		{&model.EventFilter{Types: []string{}}, true},
		{&model.EventFilter{Types: []string{"identity.*"}}, true},
		{&model.EventFilter{Types: []string{"*"}}, true},
		{&model.EventFilter{Types: []string{"session.*", "identity.state_changed"}}, true},
		{&model.EventFilter{Types: []string{"identity.created"}}, false},
		{&model.EventFilter{IdentityID: &id, Types: []string{"*changed"}}, true},
		{&model.EventFilter{IdentityID: new(uuid.New())}, false},
	} {
		if got := newFilter(c.f).match(e); got != c.want {
			t.Errorf("%+v: match = %v, want %v", c.f, got, c.want)
		}
	}
	if newFilter(&model.EventFilter{IdentityID: &id}).match(&model.Event{Type: "login.failed"}) {
		t.Error("an event of no identity matched an identity filter")
	}

	now := time.Now()
	v7 := uuid.Must(uuid.NewV7())
	if b := lowerBound(now.Add(-time.Second)); !idLess(b, v7) {
		t.Errorf("lowerBound(a second ago) %s is not below a new id %s", b, v7)
	}
	if d := idTime(v7).Sub(now); d < -time.Second || d > time.Second {
		t.Errorf("idTime of a new id is %s off", d)
	}
	if got := idTime(lowerBound(now)); !got.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("idTime(lowerBound(t)) = %s, want %s", got, now.Truncate(time.Millisecond))
	}
}

// TestBrokerFindsUnannouncedEvents: on PostgreSQL an event whose
// announcement was lost (its process died after the commit) still arrives,
// found by the sweep that polls while the listener works.
func TestBrokerFindsUnannouncedEvents(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	store := dbtest.Open(t, dsn)
	b := start(t, store, Options{})
	waitListening(t, b, store)
	ch, _ := b.Subscribe(context.Background(), nil)

	sqldb := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(dsn)))
	defer sqldb.Close()
	id := uuid.Must(uuid.NewV7())
	if _, err := sqldb.ExecContext(context.Background(),
		`INSERT INTO events (id, type, occurred_at, actor_kind) VALUES ($1, 'identity.created', now(), 'system')`, id.String()); err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch); e.ID != id {
		t.Fatalf("got %s, want %s", e.ID, id)
	}
	// Announced ones are not sent again by the sweep.
	e := record(t, store, "identity.updated", uuid.New())
	if got := next(t, ch); got.ID != e.ID {
		t.Fatalf("got %s, want %s", got.ID, e.ID)
	}
	quiet(t, ch, time.Duration(sweepTicks+1)*pingInterval)
}
