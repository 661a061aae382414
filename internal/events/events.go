// Package events is the audit trail: every change's event, written by
// storage in the change's own transaction, read back by admins, and kept
// for events.retention.
package events

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// DefaultRetention is how long events are kept when events.retention is
// not set.
const DefaultRetention = 90 * 24 * time.Hour

// MinRetention is the shortest retention accepted.
const MinRetention = time.Hour

// Service reads and prunes the audit trail. It is safe for concurrent use.
type Service struct {
	store     *db.DB
	retention time.Duration
	now       func() time.Time
}

// New returns a Service keeping events for retention (DefaultRetention
// when not positive).
func New(store *db.DB, retention time.Duration, now func() time.Time) *Service {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &Service{store: store, retention: retention, now: now}
}

// List returns a page of events, newest first, after the cursor.
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.EventFilter) (*model.Page[*model.Event], error) {
	limit, cursor, err := model.PageArgs(first, after)
	if err != nil {
		return nil, err
	}
	var filter db.EventFilter
	if f != nil {
		filter.IdentityID, filter.Since, filter.Until = f.IdentityID, f.Since, f.Until
		for _, t := range f.Types {
			if t = strings.TrimSpace(t); t != "" {
				filter.Types = append(filter.Types, t)
			}
		}
		if f.Types != nil && len(filter.Types) == 0 {
			// An empty list of types matches no type.
			return &model.Page[*model.Event]{Items: []*model.Event{}}, nil
		}
	}
	items, more, err := s.store.ListEvents(ctx, filter, cursor, limit)
	if err != nil {
		return nil, err
	}
	page := &model.Page[*model.Event]{Items: items, HasNext: more}
	if cursor != uuid.Nil {
		if page.HasPrevious, err = s.store.EventsAfter(ctx, filter, cursor); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Get returns one event; NOT_FOUND when there is none.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*model.Event, error) {
	return s.store.GetEvent(ctx, id)
}

// Prune deletes the events older than the retention, in small batches, and
// returns how many went.
func (s *Service) Prune(ctx context.Context) (int, error) {
	return s.store.PruneEvents(ctx, s.now().Add(-s.retention), 0)
}
