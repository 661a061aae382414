// Package eventfeed is the live feed of events for the identityEvents
// subscription: every event written by any server process, fanned out to
// this process's subscribers.
//
// Where new events come from depends on the database. On PostgreSQL every
// event is announced on db.EventsChannel when its transaction commits, by
// whichever process made it; the broker LISTENs on a connection of its own
// and reads the announced events by id, many at once when many arrive. Its
// own pings, sent through the pool, prove the listener works; while it does
// not (a lost connection, a restart of the database), the broker polls the
// table instead and, once listening again, reads what it may have missed.
// On SQLite (one process) the broker polls the table every PollInterval,
// only while someone is subscribed, by rowid: SQLite writes one transaction
// at a time, so rowids grow in commit order and a poll misses nothing.
//
// Every subscriber has a bounded buffer. One that does not keep up is ended
// with an error (DropNotice) rather than holding up the others or growing
// the server's memory, and the number of subscriptions is bounded.
package eventfeed

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Defaults of the Options.
const (
	DefaultMaxSubscribers = 100
	DefaultBuffer         = 256
	DefaultPollInterval   = 200 * time.Millisecond
)

const (
	// pingInterval is how often the PostgreSQL listener is pinged; it is
	// taken for broken when no ping has come back for three of them.
	pingInterval = time.Second
	// lookback is how far before the newest event seen a poll by id
	// starts on PostgreSQL: ids are made when a change begins, so an event
	// can commit after one with a greater id. Events seen are not sent twice.
	lookback = 5 * time.Second
	// readBatch is the most events read at once.
	readBatch = 500
	// sweepTicks: every this many pings, while listening, the table is
	// polled all the same, for events whose announcement was lost (events
	// are announced after their commit, by the process that made them,
	// which may fail or die in between).
	sweepTicks = 5
	// patience is how long a subscriber with a full buffer may take to
	// make room, once per batch of events, before it is ended.
	patience = 200 * time.Millisecond
)

// Options tune a Broker; zero values take the defaults.
type Options struct {
	// MaxSubscribers bounds this process's subscriptions.
	MaxSubscribers int
	// Buffer is how many events may wait for one subscriber; a subscriber
	// with a full buffer is ended.
	Buffer int
	// PollInterval is how often the table is polled (SQLite, and
	// PostgreSQL while its listener is down).
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Broker fans events out to subscribers. It is safe for concurrent use.
// Events flow while Run runs.
type Broker struct {
	store *db.DB
	opts  Options

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	// joined wakes the SQLite poller when a subscriber arrives.
	joined chan struct{}
	// pollMu is held by each SQLite poll and by Subscribe while it reads
	// where its subscriber starts.
	pollMu sync.Mutex

	// PostgreSQL: the newest event id seen (for polls after trouble) and
	// the ids sent lately (so that a poll does not send one again).
	cursor uuid.UUID
	seen   map[uuid.UUID]struct{}
	// listening is true while the PostgreSQL listener is known to work.
	listening atomic.Bool
}

type subscriber struct {
	ch chan *model.Event
	f  filter
	// fromRow: on SQLite, the newest rowid when it subscribed; only
	// later events are its.
	fromRow int64
	note    *dropNote
	stop    func() bool
}

// New returns a Broker over store, with opts (at most one).
func New(store *db.DB, opts ...Options) *Broker {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.MaxSubscribers <= 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Broker{store: store, opts: o, subs: map[*subscriber]struct{}{}, joined: make(chan struct{}, 1),
		seen: map[uuid.UUID]struct{}{}}
}

// Subscribe returns the events that match f from now on, until ctx ends
// (the channel is closed then), the subscriber falls behind by more than
// the buffer (the channel is closed, and DropNotice(ctx) tells why), or
// the broker closes. since and until of f are ignored. With
// MaxSubscribers already subscribed it fails with UNAVAILABLE.
func (b *Broker) Subscribe(ctx context.Context, f *model.EventFilter) (<-chan *model.Event, error) {
	s := &subscriber{ch: make(chan *model.Event, b.opts.Buffer), f: newFilter(f), note: noteFrom(ctx)}
	if b.store.Kind() == db.SQLite {
		// No poll runs between reading the newest rowid and joining:
		// one would send the events after it to the others only.
		b.pollMu.Lock()
		defer b.pollMu.Unlock()
		n, err := b.store.LatestEventRow(ctx)
		if err != nil {
			return nil, err
		}
		s.fromRow = n
	}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, model.Errorf(model.CodeUnavailable, "the server is shutting down; subscribe again on another")
	case len(b.subs) >= b.opts.MaxSubscribers:
		b.mu.Unlock()
		return nil, model.Errorf(model.CodeUnavailable, "this server already serves %d live subscriptions, its limit; close one or try again later", b.opts.MaxSubscribers)
	}
	b.subs[s] = struct{}{}
	s.stop = context.AfterFunc(ctx, func() { b.remove(s, nil) })
	b.mu.Unlock()
	select {
	case b.joined <- struct{}{}:
	default:
	}
	return s.ch, nil
}

// Subscribers is how many subscriptions are open.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Listening tells whether, on PostgreSQL, the broker hears of new events
// as they commit (rather than polling for them while its listener is
// down, or before it first listens).
func (b *Broker) Listening() bool { return b.listening.Load() }

// Close ends every subscription (their channels close, as when the feed
// has nothing more to say) and refuses new ones: called when the server
// shuts down, so that open streams do not hold the shutdown up. It may be
// called more than once.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		b.removeLocked(s, nil)
	}
}

func (b *Broker) remove(s *subscriber, why error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removeLocked(s, why)
}

// removeLocked ends s once, whoever asks first.
func (b *Broker) removeLocked(s *subscriber, why error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	if why != nil && s.note != nil {
		s.note.set(why)
	}
	if s.stop != nil {
		s.stop()
	}
	close(s.ch)
}

// deliver sends events, in order, to every subscriber they match; rows
// are their SQLite rowids (nil on PostgreSQL). A subscriber whose buffer is
// full gets a little time (patience, once per call) to make room, as a
// client reading a burst (an import) does; one that does not is ended. So a
// slow subscriber holds the others up at most once, by patience, and never
// grows the server's memory.
func (b *Broker) deliver(events []*model.Event, rows []int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var waited map[*subscriber]time.Time // when each one's patience ends
	for i, e := range events {
		for s := range b.subs {
			if rows != nil && rows[i] <= s.fromRow {
				continue
			}
			if !s.f.match(e) {
				continue
			}
			select {
			case s.ch <- e:
				continue
			default:
			}
			if waited == nil {
				waited = map[*subscriber]time.Time{}
			}
			until, ok := waited[s]
			if !ok {
				until = time.Now().Add(patience)
				waited[s] = until
			}
			t := time.NewTimer(time.Until(until))
			select {
			case s.ch <- e:
			case <-t.C:
				b.opts.Logger.Warn("live feed subscriber dropped: it fell behind", "buffer", b.opts.Buffer)
				b.removeLocked(s, model.Errorf(model.CodeUnavailable,
					"this subscription fell behind: more than %d events waited for the client to read them; subscribe again (the events query lists what was missed)", b.opts.Buffer))
			}
			t.Stop()
		}
	}
}

// Run feeds subscribers until ctx ends, then closes the broker. Start it
// with the server (a background loop) and stop it before the database
// closes.
func (b *Broker) Run(ctx context.Context) {
	if b.store.Kind() == db.Postgres {
		b.runPostgres(ctx)
	} else {
		b.runSQLite(ctx)
	}
	if ctx.Err() != nil {
		b.Close()
	}
}

// runSQLite polls by rowid while there are subscribers.
func (b *Broker) runSQLite(ctx context.Context) {
	t := time.NewTicker(b.opts.PollInterval)
	defer t.Stop()
	cursor := int64(-1)
	for {
		if b.Subscribers() == 0 {
			// Wait for one; the wake-up may be stale (one who has left),
			// so look again: polling from no subscriber's start would
			// read the whole table.
			cursor = -1
			select {
			case <-ctx.Done():
				return
			case <-b.joined:
			}
			continue
		}
		if cursor < 0 {
			cursor = b.oldestFromRow()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next, err := b.pollRows(ctx, cursor)
		if err != nil {
			if ctx.Err() == nil {
				b.opts.Logger.Warn("live feed: reading new events failed", "err", err)
			}
			continue
		}
		cursor = next
	}
}

// oldestFromRow is the earliest subscription's rowid: where polling starts.
func (b *Broker) oldestFromRow() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	first := true
	var n int64
	for s := range b.subs {
		if first || s.fromRow < n {
			n, first = s.fromRow, false
		}
	}
	return n
}

// pollRows sends the events after the rowid cursor and returns the new one.
func (b *Broker) pollRows(ctx context.Context, cursor int64) (int64, error) {
	b.pollMu.Lock()
	defer b.pollMu.Unlock()
	latest, err := b.store.LatestEventRow(ctx)
	if err != nil {
		return cursor, err
	}
	if latest < cursor {
		// The newest events were pruned and rowids start lower again.
		return latest, nil
	}
	for cursor < latest {
		events, rows, err := b.store.EventsAfterRow(ctx, cursor, latest, readBatch)
		if err != nil {
			return cursor, err
		}
		if len(events) == 0 {
			return latest, nil
		}
		b.deliver(events, rows)
		cursor = rows[len(rows)-1]
	}
	return cursor, nil
}

// runPostgres listens, and polls while it cannot.
func (b *Broker) runPostgres(ctx context.Context) {
	b.mu.Lock()
	b.cursor = lowerBound(time.Now())
	b.mu.Unlock()
	warned := false
	for ctx.Err() == nil {
		l, err := b.store.ListenEvents(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !warned {
				b.opts.Logger.Warn("live feed: cannot listen for events; polling the table until it can", "err", err)
				warned = true
			}
			b.pollFor(ctx, pingInterval)
			continue
		}
		// Listening from here on: what committed before is read once.
		b.catchUp(ctx)
		b.listening.Store(true)
		if warned {
			b.opts.Logger.Info("live feed: listening for events again")
			warned = false
		}
		err = b.listen(ctx, l)
		b.listening.Store(false)
		_ = l.Close()
		if ctx.Err() != nil {
			return
		}
		b.opts.Logger.Warn("live feed: the event listener failed; polling the table until it is back", "err", err)
		warned = true
		b.pollFor(ctx, pingInterval/2)
	}
}

// pollFor polls the table every PollInterval for d.
func (b *Broker) pollFor(ctx context.Context, d time.Duration) {
	end := time.NewTimer(d)
	defer end.Stop()
	t := time.NewTicker(b.opts.PollInterval)
	defer t.Stop()
	for {
		b.catchUp(ctx)
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-t.C:
		}
	}
}

// catchUp reads, by id, the events after the cursor (looking back a
// little) that have not been sent, and sends them. With no subscriber it
// only moves the cursor to now.
func (b *Broker) catchUp(ctx context.Context) {
	if b.Subscribers() == 0 {
		b.mu.Lock()
		b.cursor = lowerBound(time.Now())
		clear(b.seen)
		b.mu.Unlock()
		return
	}
	b.mu.Lock()
	from := lowerBound(idTime(b.cursor).Add(-lookback))
	b.mu.Unlock()
	for ctx.Err() == nil {
		ids, err := b.store.EventIDsAfterID(ctx, from, readBatch)
		if err == nil && len(ids) > 0 {
			b.mu.Lock()
			unseen := ids[:0:0]
			for _, id := range ids {
				if _, ok := b.seen[id]; !ok {
					unseen = append(unseen, id)
				}
			}
			b.mu.Unlock()
			var events []*model.Event
			if len(unseen) > 0 {
				events, err = b.store.EventsByID(ctx, unseen)
			}
			if err == nil {
				b.deliverNew(events)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				b.opts.Logger.Warn("live feed: reading new events failed", "err", err)
			}
			return
		}
		if len(ids) < readBatch {
			return
		}
		from = ids[len(ids)-1]
	}
}

// deliverNew sends the events not sent yet and remembers them.
func (b *Broker) deliverNew(events []*model.Event) {
	b.mu.Lock()
	fresh := events[:0:0]
	for _, e := range events {
		if _, ok := b.seen[e.ID]; ok {
			continue
		}
		b.seen[e.ID] = struct{}{}
		fresh = append(fresh, e)
		if idLess(b.cursor, e.ID) {
			b.cursor = e.ID
		}
	}
	// Forget what no poll looks at any more.
	horizon := idTime(b.cursor).Add(-2 * lookback)
	for id := range b.seen {
		if idTime(id).Before(horizon) {
			delete(b.seen, id)
		}
	}
	b.mu.Unlock()
	if len(fresh) > 0 {
		b.deliver(fresh, nil)
	}
}

// listen reads announced events until the listener fails or ctx ends. A
// goroutine receives; this one reads the events, as many at once as have
// been announced meanwhile, and pings.
func (b *Broker) listen(ctx context.Context, l *db.EventListener) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A receive blocked on the connection does not see ctx end: closing
	// the listener wakes it.
	defer context.AfterFunc(lctx, func() { _ = l.Close() })()
	ids := make(chan uuid.UUID, 4*readBatch)
	var overflow atomic.Bool
	var lastBack atomic.Int64
	lastBack.Store(time.Now().UnixNano())
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for {
			id, ping, err := l.Receive(lctx, pingInterval)
			switch {
			case err == nil && ping:
				lastBack.Store(time.Now().UnixNano())
			case err == nil:
				select {
				case ids <- id:
				default:
					overflow.Store(true) // read by a poll instead
				}
			case db.IsTimeout(err):
			default:
				errc <- err
				return
			}
		}
	})
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-t.C:
			if time.Since(time.Unix(0, lastBack.Load())) > 3*pingInterval {
				return errPingsLost
			}
			pctx, pcancel := context.WithTimeout(lctx, pingInterval)
			err := l.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				b.opts.Logger.Debug("live feed: ping failed", "err", err)
			}
			ticks++
			if overflow.Swap(false) || ticks%sweepTicks == 0 {
				b.catchUp(ctx)
			}
		case id := <-ids:
			batch := []uuid.UUID{id}
		more:
			for len(batch) < readBatch {
				select {
				case id := <-ids:
					batch = append(batch, id)
				default:
					break more
				}
			}
			if overflow.Swap(false) {
				b.catchUp(ctx)
			}
			if b.Subscribers() == 0 {
				b.mu.Lock()
				for _, id := range batch {
					if idLess(b.cursor, id) {
						b.cursor = id
					}
				}
				b.mu.Unlock()
				continue
			}
			events, err := b.store.EventsByID(ctx, batch)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				// Read again by a poll once the database answers.
				b.opts.Logger.Warn("live feed: reading announced events failed", "err", err)
				overflow.Store(true)
				continue
			}
			b.deliverNew(events)
		}
	}
}

type feedError string

func (e feedError) Error() string { return string(e) }

const errPingsLost = feedError("no ping came back for three intervals")

// lowerBound is the smallest UUIDv7 of time t: every id made at t or later
// is greater.
func lowerBound(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(max(t.UnixMilli(), 0))
	for i := range 6 {
		u[i] = byte(ms >> (8 * (5 - i)))
	}
	return u
}

// idTime is when a UUIDv7 was made (to the millisecond).
func idTime(u uuid.UUID) time.Time {
	var ms int64
	for i := range 6 {
		ms = ms<<8 | int64(u[i])
	}
	return time.UnixMilli(ms)
}

func idLess(a, b uuid.UUID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// filter is an EventFilter as the feed applies it.
type filter struct {
	identityID *uuid.UUID
	types      []string
}

func newFilter(f *model.EventFilter) filter {
	if f == nil {
		return filter{}
	}
	return filter{identityID: f.IdentityID, types: f.Types}
}

// match: the identity, when given, is the event's; the types, when given
// (an empty list is taken as none given), include a pattern that matches.
func (f filter) match(e *model.Event) bool {
	if f.identityID != nil && (e.IdentityID == nil || *e.IdentityID != *f.identityID) {
		return false
	}
	if len(f.types) == 0 {
		return true
	}
	for _, p := range f.types {
		if db.MatchEventType(p, e.Type) {
			return true
		}
	}
	return false
}

// dropNote is where Subscribe records why it ended a subscription.
type dropNote struct {
	mu  sync.Mutex
	err error
}

func (n *dropNote) set(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err == nil {
		n.err = err
	}
}

type dropKey struct{}

// WithDropNotice returns ctx in which a subscription made with it records
// why the broker ended it (DropNotice), so that the transport can tell the
// client in an error before the stream ends.
func WithDropNotice(ctx context.Context) context.Context {
	return context.WithValue(ctx, dropKey{}, &dropNote{})
}

// DropNotice is why the broker ended the subscription made with ctx (see
// WithDropNotice); nil when it did not, or ended it only because ctx did
// or the server is shutting down.
func DropNotice(ctx context.Context) error {
	n := noteFrom(ctx)
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func noteFrom(ctx context.Context) *dropNote {
	n, _ := ctx.Value(dropKey{}).(*dropNote)
	return n
}
