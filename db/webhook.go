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

// The webhook outbox: webhook_deliveries rows, written by insertEvents in
// each event's transaction, claimed and finished by internal/webhook's
// worker exactly as courier messages are (see ClaimMessages).

func (r *deliveryRow) model() *model.WebhookDelivery {
	d := &model.WebhookDelivery{ID: r.ID, EventID: r.EventID, URL: r.URL, Status: model.WebhookDeliveryStatus(strings.ToUpper(r.Status)),
		Attempts: r.Attempts, LastResponseCode: r.LastResponseCode, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.LastError != "" {
		e := r.LastError
		d.LastError = &e
	}
	// A delivered or abandoned one is not tried again; a processing one is
	// being tried (its next_attempt_at is the claim's end, not a plan).
	if r.Status == DeliveryQueued {
		t := r.NextAttemptAt.UTC()
		d.NextAttemptAt = &t
	}
	return d
}

// webhookWakers are the channels of the webhook workers waiting on each
// store of this process (see WebhookDeliveriesQueued).
var webhookWakers = struct {
	sync.Mutex
	m map[*DB][]chan struct{}
}{m: map[*DB][]chan struct{}{}}

// wakeWebhookWorkers tells this process's webhook workers on db that a
// delivery was queued. Inside a transaction the row shows only once it
// commits: a worker that finds nothing looks again shortly.
func wakeWebhookWorkers(db *DB) {
	webhookWakers.Lock()
	defer webhookWakers.Unlock()
	for _, ch := range webhookWakers.m[db] {
		select {
		case ch <- struct{}{}:
		default: // one wake-up covers any number of deliveries
		}
	}
}

// WebhookDeliveriesQueued returns a channel that receives when this process
// queues a webhook delivery on db (any event written for a configured
// webhook, or a retry), so a worker sends it at once instead of at its next
// poll; deliveries queued by other processes are found by polling. stop
// unsubscribes.
func (db *DB) WebhookDeliveriesQueued() (ch <-chan struct{}, stop func()) {
	c := make(chan struct{}, 1)
	webhookWakers.Lock()
	webhookWakers.m[db] = append(webhookWakers.m[db], c)
	webhookWakers.Unlock()
	return c, func() {
		webhookWakers.Lock()
		defer webhookWakers.Unlock()
		subs := slices.DeleteFunc(webhookWakers.m[db], func(x chan struct{}) bool { return x == c })
		if len(subs) == 0 {
			delete(webhookWakers.m, db)
		} else {
			webhookWakers.m[db] = subs
		}
	}
}

// DeliveryClaim is a batch of deliveries one worker owns until Until: their
// status is processing and their next_attempt_at is Until, which is also
// the claim's token (FinishDelivery changes a delivery only while both
// still hold, so a worker whose claim ran out and was taken over changes
// nothing).
type DeliveryClaim struct {
	Deliveries []*model.WebhookDelivery
	Until      time.Time
}

// ClaimDeliveries takes up to limit deliveries to url that are due at now
// (queued, or processing under a claim that ran out: a worker that died
// mid-batch), oldest due first, each with its event, and marks them
// processing until now+hold. On PostgreSQL the rows are locked with FOR
// UPDATE SKIP LOCKED in the one statement, so workers in several processes
// take different rows and never wait on each other; on SQLite the statement
// is a write transaction, which holds the database.
func (db *DB) ClaimDeliveries(ctx context.Context, url string, now time.Time, limit int, hold time.Duration) (*DeliveryClaim, error) {
	if limit < 1 {
		return &DeliveryClaim{}, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	until := now.Add(hold).Truncate(time.Microsecond)
	var rows []*deliveryRow
	var err error
	if db.kind == Postgres {
		err = db.bun.NewRaw(`WITH due AS (
	SELECT id FROM webhook_deliveries
	WHERE status IN ('queued', 'processing') AND next_attempt_at <= ? AND url = ?
	ORDER BY next_attempt_at
	LIMIT ?
	FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries AS d SET status = 'processing', next_attempt_at = ?, updated_at = ?
FROM due WHERE d.id = due.id
RETURNING d.*`, now, url, limit, until, now).Scan(ctx, &rows)
	} else {
		err = db.bun.NewRaw(`UPDATE webhook_deliveries SET status = 'processing', next_attempt_at = ?, updated_at = ?
WHERE id IN (
	SELECT id FROM webhook_deliveries
	WHERE status IN ('queued', 'processing') AND next_attempt_at <= ? AND url = ?
	ORDER BY next_attempt_at
	LIMIT ?
)
RETURNING *`, until, now, now, url, limit).Scan(ctx, &rows)
	}
	if err != nil {
		return nil, wrap(fmt.Errorf("claim webhook deliveries: %w", err))
	}
	c := &DeliveryClaim{Until: until}
	if len(rows) == 0 {
		return c, nil
	}
	// Ids are UUIDv7: send in the order the deliveries were made.
	slices.SortFunc(rows, func(a, b *deliveryRow) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	ids := make([]uuid.UUID, 0, len(rows))
	for _, r := range rows {
		ids = append(ids, r.EventID)
	}
	var events []*eventRow
	if err := db.bun.NewSelect().Model(&events).Where("id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
		return nil, wrap(fmt.Errorf("read the events of webhook deliveries: %w", err))
	}
	byID := make(map[uuid.UUID]*model.Event, len(events))
	for _, e := range events {
		byID[e.ID] = e.model()
	}
	for _, r := range rows {
		d := r.model()
		d.Event = byID[r.EventID]
		if d.Event == nil {
			// Pruned between the claim and the read: the delivery went
			// with it (ON DELETE CASCADE), nothing to send.
			continue
		}
		c.Deliveries = append(c.Deliveries, d)
	}
	return c, nil
}

// DeliveryResult is what became of one claimed delivery.
type DeliveryResult struct {
	ID uuid.UUID
	// Status is DeliveryDelivered, DeliveryQueued (to be tried again at
	// NextAttemptAt) or DeliveryAbandoned.
	Status string
	// Attempted counts a try (attempts + 1); false for a delivery handed
	// back untried (the worker is stopping).
	Attempted    bool
	ResponseCode *int
	// Error is why the try failed, empty when it did not.
	Error         string
	NextAttemptAt time.Time
}

// FinishDelivery records what became of a delivery of claim. It tells
// whether it did: false when the claim is no longer this one (it ran out
// and another worker took the delivery over, or an admin retried it).
func (db *DB) FinishDelivery(ctx context.Context, claim *DeliveryClaim, r DeliveryResult, now time.Time) (bool, error) {
	now = now.UTC()
	next := r.NextAttemptAt
	if next.IsZero() {
		next = now
	}
	q := db.bun.NewUpdate().Model((*deliveryRow)(nil)).
		Set("status = ?", r.Status).Set("next_attempt_at = ?", next.UTC()).Set("updated_at = ?", now).
		Where("id = ?", r.ID).Where("status = ?", DeliveryProcessing).Where("next_attempt_at = ?", claim.Until)
	if r.Attempted {
		q = q.Set("attempts = attempts + 1").Set("last_response_code = ?", r.ResponseCode).Set("last_error = ?", r.Error)
	}
	res, err := q.Exec(ctx)
	if err != nil {
		return false, wrap(fmt.Errorf("finish webhook delivery: %w", err))
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// WebhookDeliveryFilter narrows ListDeliveries; zero fields do not filter.
type WebhookDeliveryFilter struct {
	// Status is a stored status (DeliveryQueued, …).
	Status  string
	EventID uuid.UUID
	URL     string
}

func filterDeliveries(q *bun.SelectQuery, f WebhookDeliveryFilter) *bun.SelectQuery {
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.EventID != uuid.Nil {
		q = q.Where("event_id = ?", f.EventID)
	}
	if f.URL != "" {
		q = q.Where("url = ?", f.URL)
	}
	return q
}

// ListDeliveries returns up to limit deliveries f matches, newest first (by
// id, a UUIDv7: creation order), after the keyset cursor after (uuid.Nil:
// from the newest), and whether more follow.
func (db *DB) ListDeliveries(ctx context.Context, f WebhookDeliveryFilter, after uuid.UUID, limit int) ([]*model.WebhookDelivery, bool, error) {
	var rows []*deliveryRow
	return newestPage(ctx, filterDeliveries(db.bun.NewSelect().Model(&rows), f), &rows, after, limit, "webhook deliveries", (*deliveryRow).model)
}

// DeliveriesBefore tells whether f matches a delivery at or before the
// cursor in listing order (the cursor's or a newer one).
func (db *DB) DeliveriesBefore(ctx context.Context, f WebhookDeliveryFilter, cursor uuid.UUID) (bool, error) {
	if cursor == uuid.Nil {
		return false, nil
	}
	found, err := filterDeliveries(db.bun.NewSelect().Model((*deliveryRow)(nil)), f).
		ColumnExpr("1").Where("id >= ?", cursor).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// GetDelivery reads one delivery; NOT_FOUND when there is none.
func (db *DB) GetDelivery(ctx context.Context, id uuid.UUID) (*model.WebhookDelivery, error) {
	row := new(deliveryRow)
	if err := db.bun.NewSelect().Model(row).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, wrap(notFound(err, "webhook delivery"))
	}
	return row.model(), nil
}

// RetryDelivery queues a delivery again, due at now, with its attempts
// counted afresh (the last answer and error are kept until the next try).
// NOT_FOUND when there is none; CONFLICT while a worker is sending it.
func (db *DB) RetryDelivery(ctx context.Context, id uuid.UUID, now time.Time) (*model.WebhookDelivery, error) {
	now = now.UTC()
	var rows []*deliveryRow
	_, err := db.bun.NewUpdate().Model((*deliveryRow)(nil)).
		Set("status = ?", DeliveryQueued).Set("attempts = 0").Set("next_attempt_at = ?", now).Set("updated_at = ?", now).
		Where("id = ?", id).Where("status <> ?", DeliveryProcessing).
		Returning("*").Exec(ctx, &rows)
	if err != nil {
		return nil, wrap(fmt.Errorf("retry webhook delivery: %w", err))
	}
	if len(rows) == 0 {
		if _, err := db.GetDelivery(ctx, id); err != nil {
			return nil, err
		}
		return nil, model.Errorf(model.CodeConflict, "the delivery is being sent right now; try again when it is done")
	}
	wakeWebhookWorkers(db)
	return rows[0].model(), nil
}
