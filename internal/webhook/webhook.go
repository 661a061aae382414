// Package webhook delivers events to the configured webhooks, signed as the
// Standard Webhooks spec says, from the webhook_deliveries outbox that
// storage fills in each event's transaction: Worker sends, Service is what
// admins read and retry.
package webhook

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Service lists and retries deliveries. It is safe for concurrent use.
type Service struct {
	store *db.DB
	now   func() time.Time
}

// New returns a Service on store; now is the clock (time.Now when nil).
func New(store *db.DB, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// List returns a page of deliveries, newest first, after the cursor.
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.WebhookDeliveryFilter) (*model.Page[*model.WebhookDelivery], error) {
	limit, cursor, err := model.PageArgs(first, after)
	if err != nil {
		return nil, err
	}
	var filter db.WebhookDeliveryFilter
	if f != nil {
		if f.Status != nil {
			filter.Status = strings.ToLower(string(*f.Status))
		}
		if f.EventID != nil {
			filter.EventID = *f.EventID
		}
		if f.URL != nil {
			filter.URL = *f.URL
		}
	}
	items, more, err := s.store.ListDeliveries(ctx, filter, cursor, limit)
	if err != nil {
		return nil, err
	}
	page := &model.Page[*model.WebhookDelivery]{Items: items, HasNext: more}
	if cursor != uuid.Nil {
		if page.HasPrevious, err = s.store.DeliveriesBefore(ctx, filter, cursor); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Retry queues a delivery again at once, its tries counted afresh:
// NOT_FOUND when there is none, CONFLICT while a worker is sending it.
func (s *Service) Retry(ctx context.Context, id uuid.UUID) (*model.WebhookDelivery, error) {
	return s.store.RetryDelivery(ctx, id, s.now())
}
