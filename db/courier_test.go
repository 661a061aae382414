package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

func newMessage(via, to string, at time.Time) *model.CourierMessage {
	return &model.CourierMessage{ID: uuid.Must(uuid.NewV7()), Via: via, Recipient: to, Subject: "s", Body: "b",
		TemplateType: "verification_code", TemplateData: []byte(`{"to":"` + to + `"}`), CreatedAt: at}
}

// TestCourierClaimAndFinish: a claim takes due messages of the listed
// channels only, marks them processing, and is the token FinishMessages
// needs; a claim that ran out is taken over and the old one changes nothing.
func TestCourierClaimAndFinish(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		mail := newMessage(model.ViaEmail, "a@example.com", now)
		sms := newMessage(model.ViaSMS, "+14155552671", now)
		if err := store.EnqueueMessages(ctx, []*model.CourierMessage{mail, sms}); err != nil {
			t.Fatal(err)
		}
		c, err := store.ClaimMessages(ctx, []string{model.ViaEmail}, now, 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Messages) != 1 || c.Messages[0].ID != mail.ID || c.Messages[0].Status != model.MessageProcessing {
			t.Fatalf("claim = %+v, want the email only, processing", c.Messages)
		}
		if got := string(c.Messages[0].TemplateData); got != `{"to":"a@example.com"}` && got != `{"to": "a@example.com"}` {
			t.Errorf("template data = %s", got)
		}
		// Claimed: nobody else gets it before the claim runs out.
		again, err := store.ClaimMessages(ctx, []string{model.ViaEmail, model.ViaSMS}, now.Add(30*time.Second), 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Messages) != 1 || again.Messages[0].ID != sms.ID {
			t.Fatalf("second claim = %+v, want the SMS only", again.Messages)
		}
		// The first claim ran out: a new worker takes the email over.
		late, err := store.ClaimMessages(ctx, []string{model.ViaEmail}, now.Add(2*time.Minute), 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(late.Messages) != 1 || late.Messages[0].ID != mail.ID {
			t.Fatalf("claim after expiry = %+v, want the email", late.Messages)
		}
		n, err := store.FinishMessages(ctx, c, []db.MessageResult{{ID: mail.ID, Status: model.MessageSent, Attempted: true}}, now)
		if err != nil || n != 0 {
			t.Fatalf("stale claim finished %d messages (%v), want 0", n, err)
		}
		n, err = store.FinishMessages(ctx, late, []db.MessageResult{{ID: mail.ID, Status: model.MessageQueued, Attempted: true,
			LastError: "451 try later", NextAttemptAt: now.Add(time.Hour)}}, now)
		if err != nil || n != 1 {
			t.Fatalf("finish = %d, %v; want 1", n, err)
		}
		got, err := store.GetMessage(ctx, mail.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != model.MessageQueued || got.SendCount != 1 || got.LastError != "451 try later" {
			t.Errorf("after a failed attempt: %+v", got)
		}
		// Not due before the backoff ends.
		if c, _ := store.ClaimMessages(ctx, []string{model.ViaEmail}, now.Add(time.Minute), 10, time.Minute); len(c.Messages) != 0 {
			t.Errorf("claimed %d messages during their backoff", len(c.Messages))
		}
		c, err = store.ClaimMessages(ctx, []string{model.ViaEmail}, now.Add(2*time.Hour), 10, time.Minute)
		if err != nil || len(c.Messages) != 1 {
			t.Fatalf("claim after the backoff = %v, %v", c, err)
		}
		if n, err := store.FinishMessages(ctx, c, []db.MessageResult{{ID: mail.ID, Status: model.MessageSent, Attempted: true}}, now); err != nil || n != 1 {
			t.Fatalf("finish sent = %d, %v", n, err)
		}
		got, _ = store.GetMessage(ctx, mail.ID)
		if got.Status != model.MessageSent || got.SendCount != 2 {
			t.Errorf("sent: %+v", got)
		}
		if _, err := store.GetMessage(ctx, uuid.Must(uuid.NewV7())); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("unknown id: %v, want NOT_FOUND", err)
		}
	})
}

// TestCourierListMessages: newest first, keyset pages, filters.
func TestCourierListMessages(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC()
		var all []*model.CourierMessage
		for i := range 5 {
			all = append(all, newMessage(model.ViaEmail, fmt.Sprintf("u%d@example.com", i%2), now))
		}
		if err := store.EnqueueMessages(ctx, all); err != nil {
			t.Fatal(err)
		}
		page, more, err := store.ListMessages(ctx, db.CourierMessageFilter{}, uuid.Nil, 2)
		if err != nil || !more || len(page) != 2 || page[0].ID != all[4].ID || page[1].ID != all[3].ID {
			t.Fatalf("first page = %v, %v, %v", page, more, err)
		}
		page, more, err = store.ListMessages(ctx, db.CourierMessageFilter{}, page[1].ID, 10)
		if err != nil || more || len(page) != 3 || page[0].ID != all[2].ID {
			t.Fatalf("second page = %v, %v, %v", page, more, err)
		}
		f := db.CourierMessageFilter{Recipient: "U1@example.com", Status: model.MessageQueued}
		page, _, err = store.ListMessages(ctx, f, uuid.Nil, 10)
		if err != nil || len(page) != 2 {
			t.Fatalf("by recipient = %v, %v", page, err)
		}
		if n, err := store.CountMessages(ctx, f, 100); err != nil || n != 2 {
			t.Errorf("count = %d, %v", n, err)
		}
		if before, err := store.MessagesBefore(ctx, db.CourierMessageFilter{}, all[3].ID); err != nil || !before {
			t.Errorf("before = %v, %v", before, err)
		}
		if page, _, _ := store.ListMessages(ctx, db.CourierMessageFilter{Status: model.MessageSent}, uuid.Nil, 10); len(page) != 0 {
			t.Errorf("sent filter = %d messages", len(page))
		}
	})
}

// TestCourierClaimsNeverOverlap: workers claiming at once on one database
// each get different messages, and together all of them.
func TestCourierClaimsNeverOverlap(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		first := dbtest.Open(t, dsn)
		now := time.Now().UTC()
		var msgs []*model.CourierMessage
		for i := range 300 {
			msgs = append(msgs, newMessage(model.ViaEmail, fmt.Sprintf("u%d@example.com", i), now))
		}
		if err := first.EnqueueMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		seen := map[uuid.UUID]int{}
		var wg sync.WaitGroup
		for w := range 4 {
			store := first
			if w > 0 {
				var err error
				if store, err = db.Open(ctx, dsn); err != nil {
					t.Fatal(err)
				}
				defer store.Close()
			}
			wg.Go(func() {
				for {
					c, err := store.ClaimMessages(ctx, []string{model.ViaEmail}, now, 7, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(c.Messages) == 0 {
						return
					}
					mu.Lock()
					for _, m := range c.Messages {
						seen[m.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != len(msgs) {
			t.Errorf("claimed %d distinct messages, want %d", len(seen), len(msgs))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("message %s claimed %d times", id, n)
			}
		}
	})
}

// TestCourierMessagesQueuedWakes: queuing a message signals the subscribers
// of that database, and only after they unsubscribe no more.
func TestCourierMessagesQueuedWakes(t *testing.T) {
	store := dbtest.Open(t, dbtest.NewSQLite(t))
	ch, stop := store.MessagesQueued()
	if err := store.EnqueueMessages(context.Background(), []*model.CourierMessage{newMessage(model.ViaEmail, "a@example.com", time.Now())}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no wake-up after a message was queued")
	}
	stop()
}
