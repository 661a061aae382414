package model

import (
	"time"

	"github.com/google/uuid"
)

// Channels a message goes out by, as the schema extension's `via` names them.
const (
	ViaEmail = "email"
	ViaSMS   = "sms"
)

// States of a courier message, as stored (the GraphQL enum is upper case).
const (
	MessageQueued     = "queued"
	MessageProcessing = "processing"
	MessageSent       = "sent"
	MessageAbandoned  = "abandoned"
)

// CourierMessage is one email or SMS in the outbox. It is written in the same
// transaction as the change that caused it and delivered afterwards by the
// courier's worker, so a message is never lost nor sent for a change that
// did not happen. Its body may hold a one-time code: only admins read it.
type CourierMessage struct {
	ID uuid.UUID
	// Via is ViaEmail or ViaSMS.
	Via       string
	Status    string
	Recipient string
	// Subject is empty for SMS.
	Subject string
	// Body is the plain-text body (the SMS text); HTMLBody the email's HTML
	// alternative, empty when the template has none.
	Body     string
	HTMLBody string
	// TemplateType names the template the message was made from, in
	// Kratos's names (verification_code, recovery_code, invitation, …).
	TemplateType string
	// TemplateData is what the template saw, as a JSON object with Kratos's
	// snake_case keys (to, verification_code, …): an HTTP channel passes it
	// to its Jsonnet body as ctx.template_data. It holds the code too.
	TemplateData []byte
	// SendCount is how many delivery attempts were made.
	SendCount int
	// LastError is why the last attempt failed, without credentials.
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}
