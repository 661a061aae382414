package db

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// messageRow is a courier_messages row: the outbox.
type messageRow struct {
	bun.BaseModel `bun:"table:courier_messages"`

	ID            uuid.UUID `bun:"id,pk"`
	Via           string    `bun:"via"`
	Status        string    `bun:"status"`
	Recipient     string    `bun:"recipient"`
	Subject       string    `bun:"subject"`
	Body          string    `bun:"body"`
	HTMLBody      string    `bun:"html_body"`
	TemplateType  string    `bun:"template_type"`
	TemplateData  rawJSON   `bun:"template_data"`
	SendCount     int       `bun:"send_count"`
	LastError     string    `bun:"last_error"`
	NextAttemptAt time.Time `bun:"next_attempt_at"`
	CreatedAt     time.Time `bun:"created_at"`
	UpdatedAt     time.Time `bun:"updated_at"`
}

func newMessageRow(m *model.CourierMessage) *messageRow {
	data := rawJSON(m.TemplateData)
	if len(data) == 0 {
		data = rawJSON("{}")
	}
	return &messageRow{
		ID: m.ID, Via: m.Via, Status: m.Status, Recipient: m.Recipient, Subject: m.Subject,
		Body: m.Body, HTMLBody: m.HTMLBody, TemplateType: m.TemplateType, TemplateData: data, SendCount: m.SendCount,
		LastError: m.LastError, NextAttemptAt: m.CreatedAt.UTC(), CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}
}

func (r *messageRow) model() *model.CourierMessage {
	return &model.CourierMessage{
		ID: r.ID, Via: r.Via, Status: r.Status, Recipient: r.Recipient, Subject: r.Subject,
		Body: r.Body, HTMLBody: r.HTMLBody, TemplateType: r.TemplateType, TemplateData: []byte(r.TemplateData),
		SendCount: r.SendCount, LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// insertMessages queues msgs inside the caller's transaction: the outbox
// write goes with the change that caused it, or not at all. Each message
// needs its ID, Via, Recipient, bodies, TemplateType and CreatedAt; it is
// queued, due at once. The courier workers of this process are woken (see
// MessagesQueued).
func insertMessages(ctx context.Context, idb bun.IDB, msgs []*model.CourierMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	rows := make([]*messageRow, len(msgs))
	for i, m := range msgs {
		m.Status = model.MessageQueued
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = m.CreatedAt
		}
		rows[i] = newMessageRow(m)
	}
	q := idb.NewInsert().Model(&rows)
	if _, err := q.Exec(ctx); err != nil {
		return err
	}
	// Inside a transaction the rows are not visible until it commits, and
	// no hook runs then: the worker that wakes and finds nothing looks again
	// shortly (courier.Worker), so waking early costs a query at most.
	wakeWorkers(q.DB())
	return nil
}

// EnqueueMessages queues msgs on their own, for messages no other write
// causes.
func (db *DB) EnqueueMessages(ctx context.Context, msgs []*model.CourierMessage) error {
	return wrap(insertMessages(ctx, db.bun, msgs))
}

// workerWakers are the channels of the courier workers waiting on each
// database handle of this process. The wake-up is keyed by the bun handle
// because insertMessages sees only a bun.IDB (often a transaction), whose
// query still knows its handle.
var workerWakers = struct {
	sync.Mutex
	m map[*bun.DB][]chan struct{}
}{m: map[*bun.DB][]chan struct{}{}}

func wakeWorkers(h *bun.DB) {
	workerWakers.Lock()
	defer workerWakers.Unlock()
	for _, ch := range workerWakers.m[h] {
		select {
		case ch <- struct{}{}:
		default: // already signalled: one wake-up covers any number of messages
		}
	}
}

// MessagesQueued returns a channel that receives when this process queues a
// message on db (EnqueueMessages, an identity write with messages, any write
// through insertMessages), so a courier worker sends it at once instead of at
// its next poll; messages queued by other processes are found by polling.
// stop unsubscribes.
func (db *DB) MessagesQueued() (ch <-chan struct{}, stop func()) {
	c := make(chan struct{}, 1)
	workerWakers.Lock()
	workerWakers.m[db.bun] = append(workerWakers.m[db.bun], c)
	workerWakers.Unlock()
	return c, func() {
		workerWakers.Lock()
		defer workerWakers.Unlock()
		subs := slices.DeleteFunc(workerWakers.m[db.bun], func(x chan struct{}) bool { return x == c })
		if len(subs) == 0 {
			delete(workerWakers.m, db.bun)
		} else {
			workerWakers.m[db.bun] = subs
		}
	}
}

// Claim is a batch of messages one worker owns until Until: their status is
// processing and their next_attempt_at is Until, which is also the claim's
// token: FinishMessages changes a message only while both still hold, so a
// worker whose claim ran out (and was taken over) changes nothing.
type Claim struct {
	Messages []*model.CourierMessage
	Until    time.Time
}

// ClaimMessages takes up to limit messages sent by one of vias that are due
// at now (queued, or processing under a claim that ran out: a worker that
// died mid-batch), oldest due first, and marks them processing until
// now+hold. On PostgreSQL the rows are locked with FOR UPDATE SKIP LOCKED in
// the one statement, so workers in several processes each take different
// rows and never wait on each other; on SQLite the statement is a write
// transaction, which holds the database. A message of a via not listed (a
// channel that is not configured) stays queued.
func (db *DB) ClaimMessages(ctx context.Context, vias []string, now time.Time, limit int, hold time.Duration) (*Claim, error) {
	if len(vias) == 0 || limit < 1 {
		return &Claim{}, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	// PostgreSQL keeps microseconds: the token must compare equal when it
	// comes back.
	until := now.Add(hold).Truncate(time.Microsecond)
	var rows []*messageRow
	var err error
	if db.kind == Postgres {
		err = db.bun.NewRaw(`WITH due AS (
	SELECT id FROM courier_messages
	WHERE status IN ('queued', 'processing') AND next_attempt_at <= ? AND via IN (?)
	ORDER BY next_attempt_at
	LIMIT ?
	FOR UPDATE SKIP LOCKED
)
UPDATE courier_messages AS m SET status = 'processing', next_attempt_at = ?, updated_at = ?
FROM due WHERE m.id = due.id
RETURNING m.*`, now, bun.In(vias), limit, until, now).Scan(ctx, &rows)
	} else {
		err = db.bun.NewRaw(`UPDATE courier_messages SET status = 'processing', next_attempt_at = ?, updated_at = ?
WHERE id IN (
	SELECT id FROM courier_messages
	WHERE status IN ('queued', 'processing') AND next_attempt_at <= ? AND via IN (?)
	ORDER BY next_attempt_at
	LIMIT ?
)
RETURNING *`, until, now, now, bun.In(vias), limit).Scan(ctx, &rows)
	}
	if err != nil {
		return nil, wrap(fmt.Errorf("claim courier messages: %w", err))
	}
	// Ids are UUIDv7: send in the order the messages were made.
	slices.SortFunc(rows, func(a, b *messageRow) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	c := &Claim{Until: until, Messages: make([]*model.CourierMessage, len(rows))}
	for i, r := range rows {
		c.Messages[i] = r.model()
	}
	return c, nil
}

// MessageResult is what became of one claimed message.
type MessageResult struct {
	ID uuid.UUID
	// Status is model.MessageSent, MessageQueued (to be tried again at
	// NextAttemptAt) or MessageAbandoned.
	Status string
	// Attempted counts a delivery attempt (send_count + 1); false for a
	// message handed back untried (the worker is stopping).
	Attempted bool
	// LastError replaces the stored one when not empty: the reason of a
	// failed attempt, free of credentials.
	LastError     string
	NextAttemptAt time.Time
}

// FinishMessages records what became of the messages of claim, in one
// transaction: the sent ones in one statement, the others one by one. A
// message whose claim is no longer this one is left alone. It returns how
// many messages changed.
func (db *DB) FinishMessages(ctx context.Context, claim *Claim, results []MessageResult, now time.Time) (int, error) {
	now = now.UTC()
	var sent []uuid.UUID
	var other []MessageResult
	for _, r := range results {
		if r.Status == model.MessageSent {
			sent = append(sent, r.ID)
		} else {
			other = append(other, r)
		}
	}
	changed := 0
	err := db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if len(sent) > 0 {
			res, err := tx.NewUpdate().Model((*messageRow)(nil)).
				Set("status = ?", model.MessageSent).Set("send_count = send_count + 1").Set("updated_at = ?", now).
				Where("id IN (?)", bun.In(sent)).Where("status = ?", model.MessageProcessing).
				Where("next_attempt_at = ?", claim.Until).Exec(ctx)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			changed += int(n)
		}
		for _, r := range other {
			q := tx.NewUpdate().Model((*messageRow)(nil)).
				Set("status = ?", r.Status).Set("next_attempt_at = ?", r.NextAttemptAt.UTC()).Set("updated_at = ?", now).
				Where("id = ?", r.ID).Where("status = ?", model.MessageProcessing).Where("next_attempt_at = ?", claim.Until)
			if r.Attempted {
				q = q.Set("send_count = send_count + 1")
			}
			if r.LastError != "" {
				q = q.Set("last_error = ?", r.LastError)
			}
			res, err := q.Exec(ctx)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			changed += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, wrap(fmt.Errorf("finish courier messages: %w", err))
	}
	return changed, nil
}

// CourierMessageFilter narrows ListMessages; zero fields do not filter.
type CourierMessageFilter struct {
	// Status is a stored status (model.MessageQueued, …).
	Status string
	// Recipient matches the address exactly, or its lower-case form (how
	// email addresses are kept).
	Recipient string
}

func filterMessages(q *bun.SelectQuery, f CourierMessageFilter) *bun.SelectQuery {
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Recipient != "" {
		q = q.Where("recipient IN (?)", bun.In([]string{f.Recipient, strings.ToLower(f.Recipient)}))
	}
	return q
}

// ListMessages returns up to limit messages f matches, newest first (by id,
// a UUIDv7: creation order), after the keyset cursor after (uuid.Nil: from
// the newest), and whether more follow.
func (db *DB) ListMessages(ctx context.Context, f CourierMessageFilter, after uuid.UUID, limit int) ([]*model.CourierMessage, bool, error) {
	var rows []*messageRow
	return newestPage(ctx, filterMessages(db.bun.NewSelect().Model(&rows), f), &rows, after, limit, "courier messages", (*messageRow).model)
}

// CountMessages counts the messages f matches, reading at most limit.
func (db *DB) CountMessages(ctx context.Context, f CourierMessageFilter, limit int) (int, error) {
	n, err := db.countUpTo(ctx, filterMessages(db.bun.NewSelect().Model((*messageRow)(nil)), f), limit)
	return n, wrap(err)
}

// MessagesBefore tells whether f matches a message at or before the cursor
// in listing order (the cursor's or a newer one).
func (db *DB) MessagesBefore(ctx context.Context, f CourierMessageFilter, cursor uuid.UUID) (bool, error) {
	if cursor == uuid.Nil {
		return false, nil
	}
	found, err := filterMessages(db.bun.NewSelect().Model((*messageRow)(nil)), f).
		ColumnExpr("1").Where("id >= ?", cursor).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// GetMessage reads one message; NOT_FOUND when there is none.
func (db *DB) GetMessage(ctx context.Context, id uuid.UUID) (*model.CourierMessage, error) {
	row := new(messageRow)
	if err := db.bun.NewSelect().Model(row).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, wrap(notFound(err, "courier message"))
	}
	return row.model(), nil
}
