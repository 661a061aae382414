// Package graph is the GraphQL transport: the schema (*.graphqls), thin
// resolvers that call the services, the @access directive, scalars, the error
// presenter and the HTTP handler. It holds no business rules and never talks
// to the database directly.
package graph

//go:generate go tool gqlgen generate
//go:generate go run seqslice.go -file generated.go

import (
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/internal/eventfeed"
	"github.com/identityd/identityd/internal/events"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/oidc"
	"github.com/identityd/identityd/internal/passkey"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/internal/webhook"
	"github.com/identityd/identityd/schemas"
)

// Resolver holds the services the resolvers call. It is built once in
// server.go and shared by every request.
type Resolver struct {
	Schemas         *schemas.Registry
	IdentityService *identity.Service
	Sessions        *session.Service
	// Outbox is the courier's messages, which admins read.
	Outbox *courier.Outbox
	// Passkeys is passkey registration and sign-in.
	Passkeys *passkey.Service
	// OIDC is social sign-in.
	OIDC *oidc.Service
	// Audit is the events of every change.
	Audit *events.Service
	// Webhooks is the deliveries of events to webhooks.
	Webhooks *webhook.Service
	// Feed is the live feed of events.
	Feed *eventfeed.Broker
}
