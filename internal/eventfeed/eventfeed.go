// Package eventfeed is the live feed of events for the identityEvents
// subscription: every event written by any server process, fanned out to
// this process's subscribers.
package eventfeed

import (
	"context"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Broker fans events out to subscribers. It is safe for concurrent use.
type Broker struct {
	store *db.DB
}

// New returns a Broker.
func New(store *db.DB) *Broker { return &Broker{store: store} }

// Subscribe returns the events that match f from now on, until ctx ends.
func (b *Broker) Subscribe(ctx context.Context, f *model.EventFilter) (<-chan *model.Event, error) {
	return nil, model.Errorf(model.CodeUnavailable, "the live feed is not served yet")
}
