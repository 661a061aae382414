package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// DefaultMaxAttempts is how many times a delivery is tried before it is
// abandoned, when its webhook does not say (max_attempts).
const DefaultMaxAttempts = 8

// maxResponseBytes is the most of an answer's body read (so the connection
// can be reused); it is never stored or logged.
const maxResponseBytes = 4 << 10

// Endpoint is one configured webhook.
type Endpoint struct {
	URL string
	// Events are the event types it receives ("identity.*", "*").
	Events []string
	// Secret is "whsec_" and base64 of its key (ParseSecret).
	Secret string
	// MaxAttempts is how many tries a delivery gets before it is
	// abandoned; DefaultMaxAttempts when 0.
	MaxAttempts int
}

// Targets is what storage needs of the endpoints to queue deliveries
// (db.SetWebhooks).
func Targets(eps []Endpoint) []db.WebhookTarget {
	out := make([]db.WebhookTarget, len(eps))
	for i, e := range eps {
		out[i] = db.WebhookTarget{URL: e.URL, Patterns: append([]string(nil), e.Events...)}
	}
	return out
}

// WorkerConfig tunes the delivery loop; zero fields take the defaults.
type WorkerConfig struct {
	// PullCount is the most deliveries to one webhook claimed at once
	// (10). Each webhook has a loop of its own: a slow one delays only its
	// own deliveries.
	PullCount int
	// Concurrency is the most requests in flight to one webhook at once
	// (PullCount).
	Concurrency int
	// PullWait is how often the outbox is read when nothing wakes the
	// worker (1s): deliveries queued by other processes, and retries that
	// come due.
	PullWait time.Duration
	// RetryBackoff is the wait after the first failed try (30s), doubled
	// after each further one, up to MaxBackoff (1h).
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// ClaimTimeout is how long a claimed batch belongs to its worker (2m):
	// a worker that dies mid-batch has its deliveries taken over after it.
	// Sending stops at half of it, so a live worker's claim never runs out.
	ClaimTimeout time.Duration
	// Timeout bounds one request, answer included (10s).
	Timeout time.Duration
	// Clock is the time; time.Now when nil.
	Clock func() time.Time
	// Transport sends the requests; http.DefaultTransport's clone when nil.
	Transport http.RoundTripper
}

// endpoint is an Endpoint ready to sign.
type endpoint struct {
	url         string
	key         []byte
	maxAttempts int
}

// Worker claims due deliveries from the outbox and sends them. Several
// workers (in several processes) may share one database: a delivery is
// claimed by one of them at a time. Deliveries to a URL no longer
// configured stay queued, untried, until one is configured again.
type Worker struct {
	store     *db.DB
	endpoints []*endpoint
	client    *http.Client
	cfg       WorkerConfig
	log       *slog.Logger
}

// NewWorker checks the endpoints' secrets and returns a worker for them.
func NewWorker(store *db.DB, eps []Endpoint, cfg WorkerConfig, log *slog.Logger) (*Worker, error) {
	w := &Worker{store: store, cfg: cfg, log: log}
	if w.cfg.Clock == nil {
		w.cfg.Clock = time.Now
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&w.cfg.PullWait, time.Second}, {&w.cfg.RetryBackoff, 30 * time.Second}, {&w.cfg.MaxBackoff, time.Hour},
		{&w.cfg.ClaimTimeout, 2 * time.Minute}, {&w.cfg.Timeout, 10 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if w.cfg.PullCount < 1 {
		w.cfg.PullCount = 10
	}
	if w.cfg.Concurrency < 1 {
		w.cfg.Concurrency = w.cfg.PullCount
	}
	seen := map[string]bool{}
	for i, e := range eps {
		key, err := ParseSecret(e.Secret)
		if err != nil {
			return nil, fmt.Errorf("webhooks[%d].secret: %w", i, err)
		}
		if seen[e.URL] {
			return nil, fmt.Errorf("webhooks[%d].url: configured twice", i)
		}
		seen[e.URL] = true
		n := e.MaxAttempts
		if n == 0 {
			n = DefaultMaxAttempts
		}
		if n < 1 {
			return nil, fmt.Errorf("webhooks[%d].max_attempts: must be at least 1", i)
		}
		w.endpoints = append(w.endpoints, &endpoint{url: e.URL, key: key, maxAttempts: n})
	}
	tr := w.cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	w.client = &http.Client{
		Transport: tr,
		Timeout:   w.cfg.Timeout,
		// A redirect is an answer like any other that is not 2xx: following
		// it would send a signed event where nobody configured it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return w, nil
}

// quickPolls are the extra looks after a wake-up that found nothing: the
// delivery was queued inside a transaction that had not committed yet.
var quickPolls = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond}

// Run delivers until ctx ends, each webhook in a loop of its own (so a
// receiver that hangs holds up only its own deliveries): at once when this
// process queues a delivery, every PullWait otherwise, and back to back
// while full batches come.
func (w *Worker) Run(ctx context.Context) {
	if len(w.endpoints) == 0 {
		<-ctx.Done()
		return
	}
	wake, stop := w.store.WebhookDeliveriesQueued()
	defer stop()
	wakes := make([]chan struct{}, len(w.endpoints))
	var wg sync.WaitGroup
	for i, ep := range w.endpoints {
		wakes[i] = make(chan struct{}, 1)
		wg.Go(func() { w.loop(ctx, ep, wakes[i]) })
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			for _, c := range wakes {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	}
}

// loop delivers to ep until ctx ends.
func (w *Worker) loop(ctx context.Context, ep *endpoint, wake <-chan struct{}) {
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
		n, full, err := w.deliverTo(ctx, ep)
		for err == nil && full && ctx.Err() == nil {
			n, full, err = w.deliverTo(ctx, ep)
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
				w.log.Warn("webhooks: reading the outbox failed", "url", redact(ep.url), "error", err)
				lastErr, lastLogged = err.Error(), time.Now()
			}
		case n == 0 && quick < len(quickPolls):
			next = quickPolls[quick]
			quick++
		default:
			quick = len(quickPolls)
			lastErr = ""
		}
		timer.Reset(next)
	}
}

// DeliverBatch runs one batch for every webhook at once (see deliverTo):
// it returns how many deliveries it claimed, and whether a webhook had more
// due than it took.
func (w *Worker) DeliverBatch(ctx context.Context) (int, bool, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	total, full := 0, false
	var errs []error
	for _, ep := range w.endpoints {
		wg.Go(func() {
			n, f, err := w.deliverTo(ctx, ep)
			mu.Lock()
			defer mu.Unlock()
			total, full = total+n, full || f
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return total, full, errors.Join(errs...)
}

// deliverTo claims up to PullCount due deliveries to ep, sends them (at most
// Concurrency at once) and records each outcome as soon as it is known. It
// returns how many it claimed and whether all it could take were due.
func (w *Worker) deliverTo(ctx context.Context, ep *endpoint) (int, bool, error) {
	c, err := w.store.ClaimDeliveries(ctx, ep.url, w.cfg.Clock(), w.cfg.PullCount, w.cfg.ClaimTimeout)
	if err != nil || len(c.Deliveries) == 0 {
		return 0, false, err
	}
	sendCtx, cancel := context.WithTimeout(ctx, w.cfg.ClaimTimeout/2)
	defer cancel()
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, d := range c.Deliveries {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			w.finish(ctx, ep, c, d, w.send(sendCtx, ep, d))
		})
	}
	wg.Wait()
	return len(c.Deliveries), len(c.Deliveries) == w.cfg.PullCount, nil
}

// result is how one try went.
type result struct {
	// untried: not sent (the worker is stopping); it goes back untouched.
	untried bool
	code    *int
	err     error
}

// send POSTs d to ep, signed.
func (w *Worker) send(ctx context.Context, ep *endpoint, d *model.WebhookDelivery) result {
	if ctx.Err() != nil {
		return result{untried: true}
	}
	body, err := Body(d.Event)
	if err != nil {
		return result{err: fmt.Errorf("encode the event: %w", err)}
	}
	id := d.ID.String()
	ts := w.cfg.Clock().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("build the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "identityd-webhooks")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(ep.key, id, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Stopping: whether it arrived is unknown, so it is sent again
			// later (at least once), without counting a try.
			return result{untried: true}
		}
		return result{err: describe(err, w.cfg.Timeout)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return result{code: &code}
	case code >= 300 && code < 400:
		return result{code: &code, err: fmt.Errorf("HTTP %d: redirects are not followed", code)}
	default:
		return result{code: &code, err: fmt.Errorf("HTTP %d", code)}
	}
}

// describe says why a request got no answer, without the URL (it is on the
// delivery already, and may hold a token).
func describe(err error, timeout time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// finish records r for d. The outcome is recorded even when ctx ended
// meanwhile (shutdown): what was sent must not be sent again needlessly.
func (w *Worker) finish(ctx context.Context, ep *endpoint, claim *db.DeliveryClaim, d *model.WebhookDelivery, r result) {
	now := w.cfg.Clock()
	res := db.DeliveryResult{ID: d.ID, ResponseCode: r.code}
	attempts := d.Attempts + 1
	switch {
	case r.untried:
		res.Status, res.NextAttemptAt = db.DeliveryQueued, now
	case r.err == nil:
		res.Status, res.Attempted = db.DeliveryDelivered, true
		w.log.Debug("webhooks: delivered", "delivery_id", d.ID, "event_id", d.EventID, "url", redact(ep.url), "attempts", attempts)
	case attempts >= ep.maxAttempts:
		res.Status, res.Attempted, res.Error, res.NextAttemptAt = db.DeliveryAbandoned, true, r.err.Error(), now
		w.log.Warn("webhooks: delivery abandoned", "delivery_id", d.ID, "event_id", d.EventID, "url", redact(ep.url),
			"attempts", attempts, "error", res.Error)
	default:
		res.Status, res.Attempted, res.Error = db.DeliveryQueued, true, r.err.Error()
		res.NextAttemptAt = now.Add(w.backoff(attempts))
		w.log.Info("webhooks: delivery failed, will retry", "delivery_id", d.ID, "event_id", d.EventID, "url", redact(ep.url),
			"attempts", attempts, "retry_at", res.NextAttemptAt, "error", res.Error)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ok, err := w.store.FinishDelivery(fctx, claim, res, now)
	switch {
	case err != nil:
		w.log.Warn("webhooks: recording a delivery failed; it will be sent again when its claim runs out",
			"delivery_id", d.ID, "error", err)
	case !ok:
		w.log.Warn("webhooks: a delivery outlived its claim; another worker took it over", "delivery_id", d.ID)
	}
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

// redact is a URL for logs: no user info, query or fragment.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// envelope is the body of a delivery: the Standard Webhooks recommended
// shape, with the event as data.
type envelope struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      eventJSON `json:"data"`
}

type eventJSON struct {
	ID           uuid.UUID       `json:"id"`
	Type         string          `json:"type"`
	OccurredAt   time.Time       `json:"occurred_at"`
	IdentityID   *uuid.UUID      `json:"identity_id"`
	Actor        actorJSON       `json:"actor"`
	ClientIP     *string         `json:"client_ip"`
	UserAgent    *string         `json:"user_agent"`
	ChangedPaths []string        `json:"changed_paths"`
	Data         json.RawMessage `json:"data"`
}

type actorJSON struct {
	// Kind is ADMIN, IDENTITY or SYSTEM, as in the GraphQL API.
	Kind       string     `json:"kind"`
	AdminKeyID *string    `json:"admin_key_id,omitempty"`
	IdentityID *uuid.UUID `json:"identity_id,omitempty"`
}

// Body is the JSON a delivery of e carries: {"type", "timestamp" (when it
// happened), "data": the event}.
func Body(e *model.Event) ([]byte, error) {
	if e == nil {
		return nil, errors.New("no event")
	}
	ev := eventJSON{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt.UTC(), IdentityID: e.IdentityID,
		ClientIP: e.ClientIP, UserAgent: e.UserAgent, ChangedPaths: e.ChangedPaths, Actor: actorJSON{Kind: string(model.EventActorKindSystem)}}
	if ev.ChangedPaths == nil {
		ev.ChangedPaths = []string{}
	}
	if len(e.Data) > 0 && json.Valid(e.Data) {
		ev.Data = json.RawMessage(e.Data)
	}
	if a := e.Actor; a != nil {
		ev.Actor = actorJSON{Kind: string(a.Kind), AdminKeyID: a.AdminKeyID, IdentityID: a.IdentityID}
	}
	return json.Marshal(envelope{Type: e.Type, Timestamp: ev.OccurredAt, Data: ev})
}
