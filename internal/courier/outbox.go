package courier

import (
	"context"
	"strings"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Outbox is what admins read of the courier's messages: with no SMTP server
// configured, this is where a newcomer finds the codes the flows sent.
type Outbox struct {
	store *db.DB
}

// NewOutbox reads messages from store.
func NewOutbox(store *db.DB) *Outbox { return &Outbox{store: store} }

// List is a keyset page of messages, newest first, that f matches.
func (o *Outbox) List(ctx context.Context, first *int, after *string, f *model.CourierMessageFilter, extras model.PageExtras) (*model.Page[*model.CourierMessage], error) {
	limit, cursor, err := model.PageArgs(first, after)
	if err != nil {
		return nil, err
	}
	var filter db.CourierMessageFilter
	if f != nil {
		if f.Status != nil {
			filter.Status = strings.ToLower(string(*f.Status))
		}
		if f.Recipient != nil {
			filter.Recipient = strings.TrimSpace(*f.Recipient)
		}
	}
	items, more, err := o.store.ListMessages(ctx, filter, cursor, limit)
	if err != nil {
		return nil, err
	}
	page := &model.Page[*model.CourierMessage]{Items: items, HasNext: more}
	err = page.AddExtras(extras,
		func() (bool, error) { return o.store.MessagesBefore(ctx, filter, cursor) },
		func(limit int) (int, error) { return o.store.CountMessages(ctx, filter, limit) })
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Get is one message; NOT_FOUND when there is none.
func (o *Outbox) Get(ctx context.Context, id uuid.UUID) (*model.CourierMessage, error) {
	return o.store.GetMessage(ctx, id)
}
