package courier

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Config is how messages are delivered (the courier section of the
// configuration, less the templates).
type Config struct {
	// SMTP sends email when its ConnectionURI is set (and no channel has
	// id email).
	SMTP SMTPConfig
	// Channels are Kratos's courier.channels: id sms (and email) of type
	// http.
	Channels []Channel
	// MessageRetries is Kratos's courier.message_retries: how many times a
	// failed message is tried again before it is abandoned (so at most
	// MessageRetries+1 attempts).
	MessageRetries int
	Worker         WorkerConfig
}

// WorkerConfig tunes the delivery loop.
type WorkerConfig struct {
	// PullCount is the most messages claimed at once (Kratos's
	// courier.worker.pull_count); one SMTP connection sends them all.
	PullCount int
	// PullWait is how often the queue is read when nothing wakes the
	// worker (Kratos's courier.worker.pull_wait): messages queued by other
	// processes, and retries that come due.
	PullWait time.Duration
	// RetryBackoff is the wait after the first failed attempt, doubled
	// after each further one, up to MaxBackoff.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// ClaimTimeout is how long a claimed batch belongs to its worker: a
	// worker that dies mid-batch has its messages taken over after it.
	// Sending stops at half of it, so a live worker's claim never runs out.
	ClaimTimeout time.Duration
	// Clock is the time; time.Now when nil.
	Clock func() time.Time
}

// Worker claims due messages from the outbox and delivers them. Several
// workers (in several processes) may share one database: a message is
// claimed by one of them at a time.
type Worker struct {
	store *db.DB
	smtp  *SMTP
	// http are the HTTP channels by the via they carry.
	http    map[string]*httpChannel
	vias    []string
	retries int
	cfg     WorkerConfig
	log     *slog.Logger
}

// NewWorker checks cfg, reads the channels' templates and returns a worker
// for the channels configured; messages of a channel that is not configured
// stay queued (not tried, so not abandoned) until one is.
func NewWorker(store *db.DB, cfg Config, log *slog.Logger) (*Worker, error) {
	w := &Worker{store: store, http: map[string]*httpChannel{}, retries: cfg.MessageRetries, cfg: cfg.Worker, log: log}
	if w.cfg.Clock == nil {
		w.cfg.Clock = time.Now
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&w.cfg.PullWait, time.Second}, {&w.cfg.RetryBackoff, 30 * time.Second}, {&w.cfg.MaxBackoff, time.Hour}, {&w.cfg.ClaimTimeout, 5 * time.Minute}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if w.cfg.PullCount < 1 {
		w.cfg.PullCount = 100
	}
	if w.retries < 0 {
		return nil, fmt.Errorf("courier.message_retries: must not be negative")
	}
	for i, c := range cfg.Channels {
		key := fmt.Sprintf("courier.channels[%d]", i)
		if c.ID != model.ViaSMS && c.ID != model.ViaEmail {
			return nil, fmt.Errorf("%s.id: %q is not sms or email", key, c.ID)
		}
		if c.Type != "http" {
			return nil, fmt.Errorf("%s.type: %q is not http (email over SMTP is configured under courier.smtp)", key, c.Type)
		}
		if _, dup := w.http[c.ID]; dup {
			return nil, fmt.Errorf("%s.id: %q is configured twice", key, c.ID)
		}
		h, err := newHTTPChannel(key, c)
		if err != nil {
			return nil, err
		}
		w.http[c.ID] = h
	}
	if _, ok := w.http[model.ViaEmail]; !ok && cfg.SMTP.ConnectionURI != "" {
		s, err := NewSMTP(cfg.SMTP)
		if err != nil {
			return nil, err
		}
		w.smtp = s
	}
	if w.smtp != nil || w.http[model.ViaEmail] != nil {
		w.vias = append(w.vias, model.ViaEmail)
	}
	if w.http[model.ViaSMS] != nil {
		w.vias = append(w.vias, model.ViaSMS)
	}
	return w, nil
}

// Delivers tells whether the worker sends messages of via (email, sms).
func (w *Worker) Delivers(via string) bool {
	for _, v := range w.vias {
		if v == via {
			return true
		}
	}
	return false
}

// EmailRoute says where emails go, without credentials: the SMTP server's
// URI or the HTTP channel's request; empty when nowhere.
func (w *Worker) EmailRoute() string {
	if h := w.http[model.ViaEmail]; h != nil {
		return h.where
	}
	if w.smtp != nil {
		return w.smtp.String()
	}
	return ""
}

// SMSRoute says where SMS go; empty when nowhere.
func (w *Worker) SMSRoute() string {
	if h := w.http[model.ViaSMS]; h != nil {
		return h.where
	}
	return ""
}

// quickPolls are the extra looks after a wake-up that found nothing: the
// message was queued inside a transaction that had not committed yet.
var quickPolls = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond}

// Run delivers until ctx ends: at once when this process queues a message,
// every PullWait otherwise, and back to back while full batches come.
func (w *Worker) Run(ctx context.Context) {
	if len(w.vias) == 0 {
		// No channel: nothing could be sent, and nothing is tried (so
		// nothing is abandoned); messages wait for a configured worker.
		<-ctx.Done()
		return
	}
	wake, stop := w.store.MessagesQueued()
	defer stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	quick := len(quickPolls)
	var lastErr string
	var lastLogged time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			quick = 0
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
		n, err := w.DeliverBatch(ctx)
		for err == nil && n == w.cfg.PullCount && ctx.Err() == nil {
			n, err = w.DeliverBatch(ctx)
		}
		next := w.cfg.PullWait
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			// Said once a minute at most while the same thing keeps
			// failing (the database is down).
			if err.Error() != lastErr || time.Since(lastLogged) > time.Minute {
				w.log.Warn("courier: reading the outbox failed", "error", err)
				lastErr, lastLogged = err.Error(), time.Now()
			}
		case n == 0 && quick < len(quickPolls):
			next = quickPolls[quick]
			quick++
		default:
			// Found what woke it (or nothing was waiting for a commit):
			// no quick looks until the next wake-up.
			quick = len(quickPolls)
			lastErr = ""
		}
		timer.Reset(next)
	}
}

// DeliverBatch claims one batch of due messages, sends them and records the
// outcome; it returns how many it claimed. A message that fails is queued
// again after a backoff, or abandoned after the last retry; one the batch
// had no time for (shutdown) goes back to the queue untried.
func (w *Worker) DeliverBatch(ctx context.Context) (int, error) {
	if len(w.vias) == 0 {
		return 0, nil
	}
	claim, err := w.store.ClaimMessages(ctx, w.vias, w.cfg.Clock(), w.cfg.PullCount, w.cfg.ClaimTimeout)
	if err != nil || len(claim.Messages) == 0 {
		return 0, err
	}
	sendCtx, cancel := context.WithTimeout(ctx, w.cfg.ClaimTimeout/2)
	defer cancel()
	var emails, sms []int
	for i, m := range claim.Messages {
		if m.Via == model.ViaEmail {
			emails = append(emails, i)
		} else {
			sms = append(sms, i)
		}
	}
	results := make([]sendResult, len(claim.Messages))
	if len(emails) > 0 {
		batch := make([]*model.CourierMessage, len(emails))
		for j, i := range emails {
			batch[j] = claim.Messages[i]
		}
		var out []sendResult
		if h := w.http[model.ViaEmail]; h != nil {
			out = make([]sendResult, len(batch))
			for j, m := range batch {
				out[j] = h.send(sendCtx, m)
			}
		} else {
			out = w.smtp.send(sendCtx, batch)
		}
		for j, i := range emails {
			results[i] = out[j]
		}
	}
	for _, i := range sms {
		results[i] = w.http[model.ViaSMS].send(sendCtx, claim.Messages[i])
	}
	now := w.cfg.Clock()
	outcomes := make([]db.MessageResult, len(claim.Messages))
	for i, m := range claim.Messages {
		outcomes[i] = w.outcome(m, results[i], now)
	}
	// The outcome is recorded even when ctx ended meanwhile (shutdown):
	// what was sent must not be sent again.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	changed, err := w.store.FinishMessages(fctx, claim, outcomes, now)
	if err != nil {
		return len(claim.Messages), err
	}
	if changed < len(outcomes) {
		w.log.Warn("courier: a batch outlived its claim; another worker took some of its messages over",
			"claimed", len(outcomes), "recorded", changed)
	}
	return len(claim.Messages), nil
}

// outcome is what becomes of m after r. The log says which message and why,
// never its body or recipient: a body holds a code.
func (w *Worker) outcome(m *model.CourierMessage, r sendResult, now time.Time) db.MessageResult {
	res := db.MessageResult{ID: m.ID}
	switch {
	case r.untried:
		res.Status, res.NextAttemptAt = model.MessageQueued, now
		return res
	case r.err == nil:
		res.Status, res.Attempted = model.MessageSent, true
		w.log.Debug("courier: message sent", "message_id", m.ID, "via", m.Via, "template_type", m.TemplateType)
		return res
	}
	res.Attempted = true
	var secrets []string
	if w.smtp != nil {
		secrets = append(secrets, w.smtp.secrets...)
	}
	for _, h := range w.http {
		secrets = append(secrets, h.secrets...)
	}
	res.LastError = scrub(r.err.Error(), secrets)
	attempts := m.SendCount + 1
	if r.permanent || attempts > w.retries {
		res.Status, res.NextAttemptAt = model.MessageAbandoned, now
		w.log.Warn("courier: message abandoned", "message_id", m.ID, "via", m.Via, "template_type", m.TemplateType,
			"attempts", attempts, "permanent", r.permanent, "error", res.LastError)
		return res
	}
	res.Status, res.NextAttemptAt = model.MessageQueued, now.Add(w.backoff(attempts))
	w.log.Warn("courier: delivery failed, will retry", "message_id", m.ID, "via", m.Via, "template_type", m.TemplateType,
		"attempts", attempts, "retry_at", res.NextAttemptAt, "error", res.LastError)
	return res
}

// backoff is the wait after the attempts-th failure: RetryBackoff doubled
// for each earlier failure, at most MaxBackoff.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.cfg.RetryBackoff
	for i := 1; i < attempts && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}
