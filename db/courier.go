package db

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// messageRow is a courier_messages row: the outbox.
type messageRow struct {
	bun.BaseModel `bun:"table:courier_messages"`

	ID            uuid.UUID `bun:"id,pk"`
	Via           string    `bun:"via"`
	Status        string    `bun:"status"`
	Recipient     string    `bun:"recipient"`
	Subject       string    `bun:"subject"`
	Body          string    `bun:"body"`
	HTMLBody      string    `bun:"html_body"`
	TemplateType  string    `bun:"template_type"`
	SendCount     int       `bun:"send_count"`
	LastError     string    `bun:"last_error"`
	NextAttemptAt time.Time `bun:"next_attempt_at"`
	CreatedAt     time.Time `bun:"created_at"`
	UpdatedAt     time.Time `bun:"updated_at"`
}

func newMessageRow(m *model.CourierMessage) *messageRow {
	return &messageRow{
		ID: m.ID, Via: m.Via, Status: m.Status, Recipient: m.Recipient, Subject: m.Subject,
		Body: m.Body, HTMLBody: m.HTMLBody, TemplateType: m.TemplateType, SendCount: m.SendCount,
		LastError: m.LastError, NextAttemptAt: m.CreatedAt.UTC(), CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC(),
	}
}

func (r *messageRow) model() *model.CourierMessage {
	return &model.CourierMessage{
		ID: r.ID, Via: r.Via, Status: r.Status, Recipient: r.Recipient, Subject: r.Subject,
		Body: r.Body, HTMLBody: r.HTMLBody, TemplateType: r.TemplateType, SendCount: r.SendCount,
		LastError: r.LastError, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// insertMessages queues msgs inside the caller's transaction: the outbox
// write goes with the change that caused it, or not at all. Each message
// needs its ID, Via, Recipient, bodies, TemplateType and CreatedAt; it is
// queued, due at once.
func insertMessages(ctx context.Context, idb bun.IDB, msgs []*model.CourierMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	rows := make([]*messageRow, len(msgs))
	for i, m := range msgs {
		m.Status = model.MessageQueued
		if m.UpdatedAt.IsZero() {
			m.UpdatedAt = m.CreatedAt
		}
		rows[i] = newMessageRow(m)
	}
	_, err := idb.NewInsert().Model(&rows).Exec(ctx)
	return err
}

// EnqueueMessages queues msgs on their own, for messages no other write
// causes.
func (db *DB) EnqueueMessages(ctx context.Context, msgs []*model.CourierMessage) error {
	return wrap(insertMessages(ctx, db.bun, msgs))
}
