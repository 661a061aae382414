package db

import (
	"context"
	"encoding/json"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// EventsChannel is the PostgreSQL notification channel that announces new
// events (the payload is the event's id), sent when their transaction
// commits, so every process's live feed hears of events made by any.
const EventsChannel = "identityd_events"

// Event actor kinds as stored.
const (
	actorAdmin    = "admin"
	actorIdentity = "identity"
	actorSystem   = "system"
)

// Webhook delivery statuses as stored.
const (
	DeliveryQueued     = "queued"
	DeliveryProcessing = "processing"
	DeliveryDelivered  = "delivered"
	DeliveryAbandoned  = "abandoned"
)

// WebhookTarget is a configured webhook as storage needs it: where, and
// which event types (path.Match patterns over the type, "*" matching any
// run of characters, dots included).
type WebhookTarget struct {
	URL      string
	Patterns []string
}

// Matches tells whether the target receives events of type typ.
func (t WebhookTarget) Matches(typ string) bool {
	for _, p := range t.Patterns {
		if MatchEventType(p, typ) {
			return true
		}
	}
	return false
}

// MatchEventType tells whether pattern matches an event type: "*" matches
// any run of characters (dots included), everything else itself.
func MatchEventType(pattern, typ string) bool {
	if !strings.ContainsAny(pattern, "*?[\\") {
		return pattern == typ
	}
	// path.Match's "*" stops at "/": event types have none, so it matches
	// any run. Other metacharacters are taken literally.
	quoted := strings.NewReplacer("?", "\\?", "[", "\\[", "\\", "\\\\").Replace(pattern)
	ok, err := path.Match(quoted, typ)
	return err == nil && ok
}

// webhookTargets holds the configured webhooks (SetWebhooks).
type webhookTargets struct {
	v atomic.Pointer[[]WebhookTarget]
}

// SetWebhooks sets the webhooks every event written from now on is queued
// for, in the event's own transaction.
func (db *DB) SetWebhooks(ts []WebhookTarget) {
	cp := append([]WebhookTarget(nil), ts...)
	db.webhooks.v.Store(&cp)
}

type eventRow struct {
	bun.BaseModel `bun:"table:events"`

	ID           uuid.UUID  `bun:"id,pk"`
	Type         string     `bun:"type"`
	OccurredAt   time.Time  `bun:"occurred_at"`
	IdentityID   *uuid.UUID `bun:"identity_id"`
	ActorKind    string     `bun:"actor_kind"`
	ActorID      string     `bun:"actor_id"`
	ClientIP     string     `bun:"client_ip"`
	UserAgent    string     `bun:"user_agent"`
	ChangedPaths rawJSON    `bun:"changed_paths"`
	Data         rawJSON    `bun:"data"`
}

type deliveryRow struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	ID               uuid.UUID `bun:"id,pk"`
	EventID          uuid.UUID `bun:"event_id"`
	URL              string    `bun:"url"`
	Status           string    `bun:"status"`
	Attempts         int       `bun:"attempts"`
	LastResponseCode *int      `bun:"last_response_code"`
	LastError        string    `bun:"last_error"`
	NextAttemptAt    time.Time `bun:"next_attempt_at"`
	CreatedAt        time.Time `bun:"created_at"`
	UpdatedAt        time.Time `bun:"updated_at"`
}

func newEventRow(e *model.Event) *eventRow {
	paths := e.ChangedPaths
	if paths == nil {
		paths = []string{}
	}
	cp, _ := json.Marshal(paths)
	r := &eventRow{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt.UTC(), IdentityID: e.IdentityID,
		ActorKind: actorSystem, ChangedPaths: cp, Data: nullJSON(e.Data)}
	if a := e.Actor; a != nil {
		switch a.Kind {
		case model.EventActorKindAdmin:
			r.ActorKind = actorAdmin
			if a.AdminKeyID != nil {
				r.ActorID = *a.AdminKeyID
			}
		case model.EventActorKindIdentity:
			r.ActorKind = actorIdentity
			if a.IdentityID != nil {
				r.ActorID = a.IdentityID.String()
			}
		}
	}
	if e.ClientIP != nil {
		r.ClientIP = *e.ClientIP
	}
	if e.UserAgent != nil {
		r.UserAgent = *e.UserAgent
	}
	return r
}

func (r *eventRow) model() *model.Event {
	e := &model.Event{ID: r.ID, Type: r.Type, OccurredAt: r.OccurredAt.UTC(), IdentityID: r.IdentityID,
		ChangedPaths: []string{}, Data: model.JSON(r.Data)}
	_ = json.Unmarshal(r.ChangedPaths, &e.ChangedPaths)
	switch r.ActorKind {
	case actorAdmin:
		id := r.ActorID
		e.Actor = &model.EventActor{Kind: model.EventActorKindAdmin, AdminKeyID: &id}
	case actorIdentity:
		a := &model.EventActor{Kind: model.EventActorKindIdentity}
		if id, err := uuid.Parse(r.ActorID); err == nil {
			a.IdentityID = &id
		}
		e.Actor = a
	default:
		e.Actor = &model.EventActor{Kind: model.EventActorKindSystem}
	}
	if r.ClientIP != "" {
		ip := r.ClientIP
		e.ClientIP = &ip
	}
	if r.UserAgent != "" {
		ua := r.UserAgent
		e.UserAgent = &ua
	}
	return e
}

// insertEvents writes events, and a queued delivery of each to every
// webhook whose patterns match its type, inside the caller's transaction:
// a change and its events (and their deliveries) commit together or not at
// all. On PostgreSQL each event is announced on EventsChannel, which the
// database delivers at commit.
func (db *DB) insertEvents(ctx context.Context, idb bun.IDB, events []*model.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([]*eventRow, len(events))
	var deliveries []*deliveryRow
	var targets []WebhookTarget
	if p := db.webhooks.v.Load(); p != nil {
		targets = *p
	}
	for i, e := range events {
		rows[i] = newEventRow(e)
		for _, t := range targets {
			if t.Matches(e.Type) {
				now := e.OccurredAt.UTC()
				deliveries = append(deliveries, &deliveryRow{ID: newID(), EventID: e.ID, URL: t.URL, Status: DeliveryQueued,
					NextAttemptAt: now, CreatedAt: now, UpdatedAt: now})
			}
		}
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return err
	}
	if len(deliveries) > 0 {
		if _, err := idb.NewInsert().Model(&deliveries).Exec(ctx); err != nil {
			return err
		}
		wakeWebhookWorkers(db)
	}
	if db.kind == Postgres {
		ids := make([]uuid.UUID, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if deferNotify(ctx, ids) {
			return nil // announced after the commit (runInTx)
		}
		for _, e := range events {
			if _, err := idb.ExecContext(ctx, "SELECT pg_notify(?, ?)", EventsChannel, e.ID.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecordEvents writes events that go with no other write (a failed login),
// in a transaction of their own.
func (db *DB) RecordEvents(ctx context.Context, events ...*model.Event) error {
	if len(events) == 0 {
		return nil
	}
	return wrap(db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return db.insertEvents(ctx, tx, events)
	}))
}
