package model

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Event types: one per kind of change (see the Event type in the schema).
const (
	EventIdentityCreated      = "identity.created"
	EventIdentityUpdated      = "identity.updated"
	EventIdentityDeleted      = "identity.deleted"
	EventIdentityStateChanged = "identity.state_changed"
	EventIdentityImported     = "identity.imported"
	EventCredentialAdded      = "credential.added"
	EventCredentialRemoved    = "credential.removed"
	EventPasswordChanged      = "password.changed"
	EventAddressVerified      = "address.verified"
	EventSessionCreated       = "session.created"
	EventSessionRevoked       = "session.revoked"
	EventSessionExtended      = "session.extended"
	EventLoginFailed          = "login.failed"
	EventRecoveryCompleted    = "recovery.completed"
	EventSecondFactorUsed     = "second_factor.used"
)

// Event is one change, as the audit trail, webhooks and the live feed see
// it. It never holds a secret: changed values are named by JSON pointers,
// and Data holds only non-secret details.
type Event struct {
	ID         uuid.UUID
	Type       string
	OccurredAt time.Time
	IdentityID *uuid.UUID
	Actor      *EventActor
	// ClientIP and UserAgent are the request's, when a request caused it.
	ClientIP     *string
	UserAgent    *string
	ChangedPaths []string
	// Data is a JSON object of details (a session's id, method and aal; a
	// credential's type; a failed login's identifier and reason), or nil.
	Data JSON
}

// EventActor is who made a change.
type EventActor struct {
	Kind EventActorKind
	// AdminKeyID names the admin key (a non-secret id) for ADMIN.
	AdminKeyID *string
	// IdentityID is the identity for IDENTITY.
	IdentityID *uuid.UUID
}

// WebhookDelivery is one event's delivery to one webhook.
type WebhookDelivery struct {
	ID               uuid.UUID
	EventID          uuid.UUID
	Event            *Event
	URL              string
	Status           WebhookDeliveryStatus
	Attempts         int
	LastResponseCode *int
	LastError        *string
	NextAttemptAt    *time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// client is where a request comes from, kept in the context by the
// transport so that events written deep in storage name it.
type client struct{ ip, userAgent string }

type clientKey struct{}

// WithClient returns ctx carrying the request's client IP address and
// User-Agent.
func WithClient(ctx context.Context, ip, userAgent string) context.Context {
	return context.WithValue(ctx, clientKey{}, client{ip: ip, userAgent: userAgent})
}

// NewEvent is an event of type typ about identityID (uuid.Nil: none), made
// now, whose actor and client come from ctx (the request's Caller and
// WithClient): ADMIN for an admin key; IDENTITY for the identity itself when
// self (a self-service flow by the identity it concerns, signed in or not: a
// login, a registration, a recovery) or for the signed-in caller; else
// SYSTEM.
func NewEvent(ctx context.Context, typ string, identityID uuid.UUID, self bool, now time.Time) *Event {
	c := CallerFromContext(ctx)
	e := &Event{ID: uuid.Must(uuid.NewV7()), Type: typ, OccurredAt: now.UTC(), ChangedPaths: []string{}}
	if identityID != uuid.Nil {
		id := identityID
		e.IdentityID = &id
	}
	switch {
	case c.Admin:
		k := c.AdminKeyID
		e.Actor = &EventActor{Kind: EventActorKindAdmin, AdminKeyID: &k}
	case self && identityID != uuid.Nil:
		id := identityID
		e.Actor = &EventActor{Kind: EventActorKindIdentity, IdentityID: &id}
	default:
		e.Actor = &EventActor{Kind: EventActorKindSystem}
		if c.Presented {
			if sess, err := c.Session(); err == nil {
				id := sess.IdentityID
				e.Actor = &EventActor{Kind: EventActorKindIdentity, IdentityID: &id}
			}
		}
	}
	if cl, ok := ctx.Value(clientKey{}).(client); ok {
		if cl.ip != "" {
			ip := cl.ip
			e.ClientIP = &ip
		}
		if ua := cl.userAgent; ua != "" {
			if len(ua) > 512 {
				ua = ua[:512]
			}
			e.UserAgent = &ua
		}
	}
	return e
}
