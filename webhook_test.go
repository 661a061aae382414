package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/webhook"
	"github.com/identityd/identityd/model"
)

// testWebhookSecret is the Standard Webhooks spec's example secret (24 bytes).
const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// arrival is one request a receiver accepted as correctly signed.
type arrival struct {
	ID        string
	Timestamp string
	Header    http.Header
	Body      map[string]any
}

// receiver is a webhook endpoint that checks every request with the
// Standard Webhooks Go library, fails the first `fail` of them with 500,
// and counts requests in flight per webhook-id.
type receiver struct {
	URL string
	wh  *standardwebhooks.Webhook
	// ignoreTimestamp: the server's clock was moved, so its timestamps are
	// not "now" for the library's tolerance check.
	ignoreTimestamp bool

	mu          sync.Mutex
	fail        int
	delay       time.Duration
	block       chan struct{} // when set, requests wait for it to close
	requests    int
	arrivals    []arrival
	badRequests []string
	inFlight    map[string]int
	maxInFlight int
	notify      chan struct{}
}

func newReceiver(t *testing.T, fail int) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{wh: wh, fail: fail, inFlight: map[string]int{}, notify: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.mu.Lock()
		if r.block != nil {
			select {
			case <-r.block:
			default:
				close(r.block)
			}
		}
		r.mu.Unlock()
		srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range r.badRequests {
			t.Errorf("receiver: %s", b)
		}
	})
	r.URL = srv.URL + "/hooks/identityd"
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.requests++
	n := r.requests
	r.inFlight[id]++
	r.maxInFlight = max(r.maxInFlight, r.inFlight[id])
	block, delay := r.block, r.delay
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[id]--
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}()
	verify := r.wh.Verify
	if r.ignoreTimestamp {
		verify = r.wh.VerifyIgnoringTimestamp
	}
	var problems []string
	if err := verify(body, req.Header); err != nil {
		problems = append(problems, "signature: "+err.Error())
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		problems = append(problems, "content-type "+ct)
	}
	if req.Method != http.MethodPost {
		problems = append(problems, "method "+req.Method)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	if block != nil {
		<-block
	}
	time.Sleep(delay)
	r.mu.Lock()
	if len(problems) > 0 {
		r.badRequests = append(r.badRequests, fmt.Sprintf("request %d (%s): %s", n, id, strings.Join(problems, "; ")))
		r.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	failing := n <= r.fail
	if !failing {
		r.arrivals = append(r.arrivals, arrival{ID: id, Timestamp: req.Header.Get("webhook-timestamp"), Header: req.Header.Clone(), Body: doc})
	}
	r.mu.Unlock()
	if failing {
		http.Error(w, strings.Repeat("no ", 10_000), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.arrivals...)
}

func (r *receiver) requestCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// wait waits until n requests were accepted.
func (r *receiver) wait(t *testing.T, n int, within time.Duration) []arrival {
	t.Helper()
	deadline := time.After(within)
	for {
		if got := r.got(); len(got) >= n {
			return got
		}
		select {
		case <-r.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver: %d deliveries after %s, want %d", len(r.got()), within, n)
		}
	}
}

// waitEvent waits until the event with this id was accepted.
func (r *receiver) waitEvent(t *testing.T, eventID string, within time.Duration) arrival {
	t.Helper()
	deadline := time.After(within)
	for {
		for _, a := range r.got() {
			if d, _ := a.Body["data"].(map[string]any); d != nil && d["id"] == eventID {
				return a
			}
		}
		select {
		case <-r.notify:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver: event %s not delivered within %s", eventID, within)
		}
	}
}

// withWebhooks configures one webhook per receiver, for events matching
// patterns.
func withWebhooks(patterns []string, rs ...*receiver) func(*Config) {
	return func(c *Config) {
		for _, r := range rs {
			c.Webhooks = append(c.Webhooks, WebhookConfig{URL: r.URL, Events: patterns, Secret: testWebhookSecret})
		}
	}
}

// record writes an event of typ about a new identity id, as a write path
// would, and returns it.
func record(t *testing.T, store *db.DB, typ string, at time.Time) *model.Event {
	t.Helper()
	e := model.NewEvent(context.Background(), typ, uuid.Must(uuid.NewV7()), false, at)
	e.ChangedPaths = []string{"/traits/email"}
	e.Data = model.JSON(`{"reason":"test"}`)
	if err := store.RecordEvents(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// deliveryJSON is a WebhookDelivery as the admin API answers it.
type deliveryJSON struct {
	ID               string  `json:"id"`
	URL              string  `json:"url"`
	Status           string  `json:"status"`
	Attempts         int     `json:"attempts"`
	LastResponseCode *int    `json:"lastResponseCode"`
	LastError        *string `json:"lastError"`
	NextAttemptAt    *string `json:"nextAttemptAt"`
	Event            *struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"event"`
}

const deliveryFields = `id url status attempts lastResponseCode lastError nextAttemptAt createdAt updatedAt`

type deliveryPage struct {
	Items     []deliveryJSON
	EndCursor string
	HasNext   bool
	HasPrev   bool
}

func (s *testServer) deliveries(t *testing.T, first int, after string, filter map[string]any) deliveryPage {
	t.Helper()
	vars := map[string]any{"first": first, "filter": filter}
	if after != "" {
		vars["after"] = after
	}
	r := s.admin(t, `query($first: Int, $after: String, $filter: WebhookDeliveryFilter) {
		webhookDeliveries(first: $first, after: $after, filter: $filter) {
			edges { cursor node { `+deliveryFields+` event { id type } } }
			pageInfo { hasNextPage hasPreviousPage endCursor } } }`, vars)
	var out struct {
		WebhookDeliveries struct {
			Edges []struct {
				Node deliveryJSON `json:"node"`
			} `json:"edges"`
			PageInfo struct {
				HasNextPage     bool    `json:"hasNextPage"`
				HasPreviousPage bool    `json:"hasPreviousPage"`
				EndCursor       *string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"webhookDeliveries"`
	}
	r.decode(t, &out)
	p := deliveryPage{HasNext: out.WebhookDeliveries.PageInfo.HasNextPage, HasPrev: out.WebhookDeliveries.PageInfo.HasPreviousPage}
	if c := out.WebhookDeliveries.PageInfo.EndCursor; c != nil {
		p.EndCursor = *c
	}
	for _, e := range out.WebhookDeliveries.Edges {
		p.Items = append(p.Items, e.Node)
	}
	return p
}

// delivery is the one delivery of event e to url.
func (s *testServer) delivery(t *testing.T, e *model.Event, url string) deliveryJSON {
	t.Helper()
	p := s.deliveries(t, 10, "", map[string]any{"eventId": e.ID.String(), "url": url})
	if len(p.Items) != 1 {
		t.Fatalf("deliveries of %s to %s: %+v, want one", e.Type, url, p.Items)
	}
	return p.Items[0]
}

// retryDelivery calls retryWebhookDelivery; it returns the delivery and the
// userErrors' codes.
func (s *testServer) retryDelivery(t *testing.T, id string) (*deliveryJSON, []string) {
	t.Helper()
	r := s.admin(t, `mutation($id: UUID!) { retryWebhookDelivery(id: $id) { delivery { `+deliveryFields+` } userErrors { code message } } }`,
		map[string]any{"id": id})
	var out struct {
		RetryWebhookDelivery struct {
			Delivery   *deliveryJSON `json:"delivery"`
			UserErrors []struct {
				Code string `json:"code"`
			} `json:"userErrors"`
		} `json:"retryWebhookDelivery"`
	}
	r.decode(t, &out)
	var codes []string
	for _, e := range out.RetryWebhookDelivery.UserErrors {
		codes = append(codes, e.Code)
	}
	return out.RetryWebhookDelivery.Delivery, codes
}

// step runs one batch of the server's webhook worker (manualWebhooks).
func (s *testServer) step(t *testing.T) int {
	t.Helper()
	n, _, err := s.app.webhooks.DeliverBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestWebhookDelivered: an event of a matching type reaches the receiver,
// signed (checked with the Standard Webhooks library), with the delivery's
// id as webhook-id and the event in the recommended envelope; an event of
// another type is not sent there; the admin listing shows it DELIVERED.
func TestWebhookDelivered(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		rcv := newReceiver(t, 0)
		all := newReceiver(t, 0)
		s := newTestServer(t, dsn, func(c *Config) {
			withWebhooks([]string{"identity.*"}, rcv)(c)
			withWebhooks([]string{"*"}, all)(c)
		})
		e := record(t, s.app.store, model.EventIdentityUpdated, time.Now())
		other := record(t, s.app.store, model.EventLoginFailed, time.Now())
		got := rcv.wait(t, 1, 10*time.Second)
		all.wait(t, 2, 10*time.Second)
		d := s.delivery(t, e, rcv.URL)
		if got[0].ID != d.ID {
			t.Errorf("webhook-id %s, want the delivery's id %s", got[0].ID, d.ID)
		}
		data, _ := got[0].Body["data"].(map[string]any)
		if got[0].Body["type"] != model.EventIdentityUpdated || got[0].Body["timestamp"] == nil || data == nil ||
			data["id"] != e.ID.String() || data["type"] != e.Type || data["identity_id"] != e.IdentityID.String() ||
			data["occurred_at"] == nil || fmt.Sprint(data["changed_paths"]) != "[/traits/email]" ||
			fmt.Sprint(data["data"]) != "map[reason:test]" || fmt.Sprint(data["actor"]) != "map[kind:SYSTEM]" {
			t.Errorf("body: %+v", got[0].Body)
		}
		if sec, err := strconv.ParseInt(got[0].Timestamp, 10, 64); err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
			t.Errorf("webhook-timestamp %q is not unix seconds of now", got[0].Timestamp)
		}
		// The admin view: delivered at the first try, with the answer.
		deadline := time.Now().Add(5 * time.Second)
		for d.Status != "DELIVERED" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			d = s.delivery(t, e, rcv.URL)
		}
		if d.Status != "DELIVERED" || d.Attempts != 1 || d.LastResponseCode == nil || *d.LastResponseCode != 204 ||
			d.LastError != nil || d.NextAttemptAt != nil || d.URL != rcv.URL || d.Event == nil || d.Event.ID != e.ID.String() {
			t.Errorf("delivery: %+v", d)
		}
		if p := s.deliveries(t, 10, "", map[string]any{"eventId": other.ID.String()}); len(p.Items) != 1 || p.Items[0].URL != all.URL {
			t.Errorf("deliveries of %s: %+v, want one, to the catch-all webhook", other.Type, p.Items)
		}
		time.Sleep(100 * time.Millisecond)
		if n := rcv.requestCount(); n != 1 {
			t.Errorf("identity.* receiver got %d requests, want 1", n)
		}
	})
}

// TestWebhookRetriesWithBackoff: a receiver that fails twice gets the same
// delivery (same webhook-id, fresh timestamp and signature) again after
// 30s, then 60s, and it is DELIVERED at the third try; not before it is due.
func TestWebhookRetriesWithBackoff(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		clock := &vfClock{}
		rcv := newReceiver(t, 2)
		rcv.ignoreTimestamp = true
		s := newTestServer(t, dsn, func(c *Config) {
			withWebhooks([]string{"*"}, rcv)(c)
			c.now = clock.now
			c.manualWebhooks = true
		})
		e := record(t, s.app.store, model.EventPasswordChanged, clock.now())
		if n := s.step(t); n != 1 {
			t.Fatalf("first batch: %d claimed, want 1", n)
		}
		d := s.delivery(t, e, rcv.URL)
		if d.Status != "QUEUED" || d.Attempts != 1 || d.LastResponseCode == nil || *d.LastResponseCode != 500 ||
			d.LastError == nil || *d.LastError != "HTTP 500" || d.NextAttemptAt == nil {
			t.Fatalf("after a 500: %+v", d)
		}
		next, _ := time.Parse(time.RFC3339Nano, *d.NextAttemptAt)
		if wait := next.Sub(clock.now()); wait < 29*time.Second || wait > 31*time.Second {
			t.Errorf("next try in %s, want 30s", wait)
		}
		if n := s.step(t); n != 0 {
			t.Fatalf("retried %d before it was due", n)
		}
		clock.advance(31 * time.Second)
		s.step(t)
		d = s.delivery(t, e, rcv.URL)
		next, _ = time.Parse(time.RFC3339Nano, *d.NextAttemptAt)
		if wait := next.Sub(clock.now()); d.Attempts != 2 || wait < 59*time.Second || wait > 61*time.Second {
			t.Errorf("after the second failure: %+v, next in %s, want 60s", d, wait)
		}
		clock.advance(61 * time.Second)
		s.step(t)
		d = s.delivery(t, e, rcv.URL)
		if d.Status != "DELIVERED" || d.Attempts != 3 || *d.LastResponseCode != 204 || d.LastError != nil {
			t.Errorf("after the third try: %+v", d)
		}
		got := rcv.got()
		if len(got) != 1 || rcv.requestCount() != 3 || got[0].ID != d.ID {
			t.Errorf("receiver: %d requests, accepted %+v", rcv.requestCount(), got)
		}
	})
}

// TestWebhookAbandonedThenRetried: after max_attempts failed tries (here
// no answer at all) a delivery is ABANDONED; retryWebhookDelivery queues it
// again with its tries counted afresh and it is delivered. Unknown ids are
// NOT_FOUND, one being sent right now CONFLICT.
func TestWebhookAbandonedThenRetried(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		clock := &vfClock{}
		rcv := newReceiver(t, 0)
		rcv.ignoreTimestamp = true
		// Nothing listens at first: the port of a closed server.
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL + "/hook"
		dead.Close()
		s := newTestServer(t, dsn, func(c *Config) {
			c.Webhooks = []WebhookConfig{{URL: deadURL, Events: []string{"*"}, Secret: testWebhookSecret, MaxAttempts: 2},
				{URL: rcv.URL, Events: []string{"nothing.*"}, Secret: testWebhookSecret}}
			c.now = clock.now
			c.manualWebhooks = true
		})
		e := record(t, s.app.store, model.EventIdentityDeleted, clock.now())
		s.step(t)
		clock.advance(31 * time.Second)
		s.step(t)
		d := s.delivery(t, e, deadURL)
		if d.Status != "ABANDONED" || d.Attempts != 2 || d.LastResponseCode != nil || d.LastError == nil || d.NextAttemptAt != nil {
			t.Fatalf("after two failed tries of two: %+v", d)
		}
		if strings.Contains(*d.LastError, deadURL) {
			t.Errorf("lastError repeats the URL: %q", *d.LastError)
		}
		clock.advance(time.Hour)
		if n := s.step(t); n != 0 {
			t.Errorf("an abandoned delivery was tried again (%d)", n)
		}

		got, codes := s.retryDelivery(t, d.ID)
		if len(codes) != 0 || got == nil || got.Status != "QUEUED" || got.Attempts != 0 || got.NextAttemptAt == nil {
			t.Fatalf("retry: %+v %v", got, codes)
		}
		// Still failing: counted from one again, so queued, not abandoned.
		s.step(t)
		if d = s.delivery(t, e, deadURL); d.Status != "QUEUED" || d.Attempts != 1 {
			t.Errorf("retried, failed once: %+v", d)
		}

		// A delivery to the working receiver, claimed by a worker: CONFLICT.
		if _, codes := s.retryDelivery(t, uuid.NewString()); fmt.Sprint(codes) != "[NOT_FOUND]" {
			t.Errorf("unknown id: %v", codes)
		}
		e2 := record(t, s.app.store, "nothing.here", clock.now())
		claim, err := s.app.store.ClaimDeliveries(context.Background(), rcv.URL, clock.now(), 10, time.Minute)
		if err != nil || len(claim.Deliveries) != 1 {
			t.Fatalf("claim: %v %+v", err, claim)
		}
		d2 := s.delivery(t, e2, rcv.URL)
		if d2.Status != "PROCESSING" {
			t.Errorf("claimed: %+v", d2)
		}
		if _, codes := s.retryDelivery(t, d2.ID); fmt.Sprint(codes) != "[CONFLICT]" {
			t.Errorf("retry while processing: %v", codes)
		}
		// The claim runs out (the worker died): another batch takes it over
		// and delivers it; the dead worker's late result changes nothing.
		clock.advance(2 * time.Minute)
		s.step(t)
		if d2 = s.delivery(t, e2, rcv.URL); d2.Status != "DELIVERED" || d2.Attempts != 1 {
			t.Errorf("after the claim ran out: %+v", d2)
		}
		ok, err := s.app.store.FinishDelivery(context.Background(), claim,
			db.DeliveryResult{ID: claim.Deliveries[0].ID, Status: db.DeliveryAbandoned, Attempted: true, Error: "late"}, clock.now())
		if err != nil || ok {
			t.Errorf("a stale claim's result was recorded: %v %v", ok, err)
		}
		// A delivered one can be sent again.
		got, codes = s.retryDelivery(t, d2.ID)
		if len(codes) != 0 || got.Status != "QUEUED" || got.Attempts != 0 {
			t.Errorf("retry of a delivered one: %+v %v", got, codes)
		}
		s.step(t)
		if n := len(rcv.got()); n != 2 {
			t.Errorf("receiver accepted %d, want 2 (the delivery and its retry)", n)
		}
		if a := rcv.got(); len(a) == 2 && a[0].ID != a[1].ID {
			t.Errorf("a retry changed the webhook-id: %s, %s", a[0].ID, a[1].ID)
		}
	})
}

// TestWebhookAdminListing: newest first, keyset pages, filters by status,
// event and URL; errors for a bad cursor.
func TestWebhookAdminListing(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		a, b := newReceiver(t, 0), newReceiver(t, 0)
		s := newTestServer(t, dsn, func(c *Config) {
			withWebhooks([]string{"identity.*"}, a)(c)
			withWebhooks([]string{"identity.created"}, b)(c)
			c.manualWebhooks = true
		})
		var events []*model.Event
		for i := 0; i < 3; i++ {
			events = append(events, record(t, s.app.store, model.EventIdentityCreated, time.Now()))
		}
		events = append(events, record(t, s.app.store, model.EventIdentityUpdated, time.Now()))
		// 3×2 + 1 deliveries, one of them claimed by a worker.
		claim, err := s.app.store.ClaimDeliveries(context.Background(), a.URL, time.Now(), 1, time.Minute)
		if err != nil || len(claim.Deliveries) != 1 {
			t.Fatal(err)
		}
		all := s.deliveries(t, 100, "", nil)
		if len(all.Items) != 7 || all.HasNext || all.HasPrev {
			t.Fatalf("all: %d %+v", len(all.Items), all)
		}
		for i := 1; i < len(all.Items); i++ {
			if all.Items[i-1].ID <= all.Items[i].ID {
				t.Errorf("not newest first: %s before %s", all.Items[i-1].ID, all.Items[i].ID)
			}
		}
		var paged []string
		after := ""
		for {
			p := s.deliveries(t, 3, after, nil)
			for _, d := range p.Items {
				paged = append(paged, d.ID)
			}
			if after != "" && !p.HasPrev {
				t.Errorf("page after %s: hasPreviousPage false", after)
			}
			if !p.HasNext {
				break
			}
			after = p.EndCursor
		}
		if len(paged) != 7 {
			t.Errorf("paged through %d, want 7", len(paged))
		}
		for i := range paged {
			if i < len(all.Items) && paged[i] != all.Items[i].ID {
				t.Errorf("page order differs at %d", i)
			}
		}
		for _, tc := range []struct {
			name   string
			filter map[string]any
			want   int
		}{
			{"url a", map[string]any{"url": a.URL}, 4},
			{"url b", map[string]any{"url": b.URL}, 3},
			{"event", map[string]any{"eventId": events[0].ID.String()}, 2},
			{"processing", map[string]any{"status": "PROCESSING"}, 1},
			{"queued to b", map[string]any{"status": "QUEUED", "url": b.URL}, 3},
			{"delivered", map[string]any{"status": "DELIVERED"}, 0},
			{"unknown url", map[string]any{"url": a.URL + "/x"}, 0},
		} {
			if got := s.deliveries(t, 100, "", tc.filter); len(got.Items) != tc.want {
				t.Errorf("%s: %d deliveries, want %d", tc.name, len(got.Items), tc.want)
			}
		}
		r := s.gql(t, testAdminKey, `{ webhookDeliveries(after: "nope") { edges { cursor } } }`, nil)
		if r.code(0) != "BAD_USER_INPUT" {
			t.Errorf("bad cursor: %v", r.codes())
		}
		r = s.gql(t, "", `{ webhookDeliveries { edges { cursor } } }`, nil)
		if r.code(0) != "UNAUTHENTICATED" {
			t.Errorf("no key: %v", r.codes())
		}
	})
}

// TestWebhookNoConcurrentDoubleSendPostgres: two workers, each on its own
// connection pool to one PostgreSQL database (as two processes), share the
// outbox: no delivery is ever in flight twice at once, and each arrives
// once.
func TestWebhookNoConcurrentDoubleSendPostgres(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	rcv := newReceiver(t, 0)
	rcv.delay = 20 * time.Millisecond
	eps := []webhook.Endpoint{{URL: rcv.URL, Events: []string{"*"}, Secret: testWebhookSecret}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var stores []*db.DB
	for i := 0; i < 2; i++ {
		store := dbtest.Open(t, dsn)
		store.SetWebhooks(webhook.Targets(eps))
		stores = append(stores, store)
		w, err := webhook.NewWorker(store, eps, webhook.WorkerConfig{PullCount: 3, PullWait: 5 * time.Millisecond},
			slog.New(slog.NewTextHandler(testLogOut(), nil)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { w.Run(ctx) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	const n = 40
	for i := 0; i < n; i++ {
		record(t, stores[i%2], model.EventSessionCreated, time.Now())
	}
	got := rcv.wait(t, n, 30*time.Second)
	time.Sleep(200 * time.Millisecond)
	got = rcv.got()
	seen := map[string]int{}
	for _, a := range got {
		seen[a.ID]++
	}
	if len(got) != n || len(seen) != n {
		t.Errorf("%d arrivals of %d deliveries, want %d of %d", len(got), len(seen), n, n)
	}
	rcv.mu.Lock()
	maxIn := rcv.maxInFlight
	rcv.mu.Unlock()
	if maxIn != 1 {
		t.Errorf("a delivery was in flight %d times at once", maxIn)
	}
}

// TestWebhookSurvivesRestart: deliveries queued while nothing sends, and
// one claimed by a worker that died, are delivered by a new server on the
// same database.
func TestWebhookSurvivesRestart(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		rcv := newReceiver(t, 0)
		before := newTestServer(t, dsn, func(c *Config) {
			withWebhooks([]string{"*"}, rcv)(c)
			c.manualWebhooks = true
		})
		record(t, before.app.store, model.EventIdentityCreated, time.Now())
		record(t, before.app.store, model.EventIdentityUpdated, time.Now())
		// A worker claims one for a second and dies.
		claim, err := before.app.store.ClaimDeliveries(context.Background(), rcv.URL, time.Now(), 1, time.Second)
		if err != nil || len(claim.Deliveries) != 1 {
			t.Fatal(err)
		}
		_ = before.app.Close()

		after := newTestServer(t, dsn, withWebhooks([]string{"*"}, rcv))
		got := rcv.wait(t, 2, 15*time.Second)
		if got[0].ID == got[1].ID {
			t.Errorf("one delivery twice: %+v", got)
		}
		// Recorded just after the answer: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for {
			p := after.deliveries(t, 10, "", map[string]any{"status": "DELIVERED"})
			if len(p.Items) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivered: %+v", p.Items)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestWebhookSlowReceiver: a receiver that does not answer holds up neither
// a mutation nor another webhook's delivery.
func TestWebhookSlowReceiver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		slow, fast := newReceiver(t, 0), newReceiver(t, 0)
		slow.block = make(chan struct{})
		s := newTestServer(t, dsn, withWebhooks([]string{"*"}, slow, fast))
		record(t, s.app.store, model.EventIdentityCreated, time.Now())
		fast.wait(t, 1, 5*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for slow.requestCount() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if slow.requestCount() == 0 {
			t.Fatal("the slow receiver was never called")
		}
		// The slow receiver holds its request; a mutation (which may queue
		// deliveries of its own) answers at once.
		start := time.Now()
		createIdentity(t, s, map[string]any{"traits": map[string]any{"email": "slow@example.com"}})
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("createIdentity took %s while a receiver hung", took)
		}
		// Another event while the slow receiver still hangs reaches the
		// fast one at once: each webhook is delivered by a loop of its own.
		start = time.Now()
		e := record(t, s.app.store, model.EventIdentityUpdated, time.Now())
		fast.waitEvent(t, e.ID.String(), 5*time.Second)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the fast receiver waited %s behind the slow one", took)
		}
		close(slow.block)
		slow.wait(t, 1, 5*time.Second)
	})
}

// TestWebhookWakesWithoutPolling: a delivery queued by this process is sent
// at once, not at the next poll.
func TestWebhookWakesWithoutPolling(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		rcv := newReceiver(t, 0)
		s := newTestServer(t, dsn, func(c *Config) {
			withWebhooks([]string{"*"}, rcv)(c)
			c.webhookWorker = func(w *webhook.WorkerConfig) { w.PullWait = time.Hour }
		})
		time.Sleep(100 * time.Millisecond) // past the first look at start
		start := time.Now()
		record(t, s.app.store, model.EventSessionRevoked, time.Now())
		rcv.wait(t, 1, 5*time.Second)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("delivered after %s", took)
		}
	})
}

// TestWebhookConfig: bad webhooks stop the start, naming the key.
func TestWebhookConfig(t *testing.T) {
	good := WebhookConfig{URL: "https://crm.example.com/hooks", Events: []string{"identity.*"}, Secret: testWebhookSecret}
	for _, tc := range []struct {
		name    string
		change  func(*WebhookConfig)
		wantErr string
	}{
		{"good", func(*WebhookConfig) {}, ""},
		{"max attempts", func(w *WebhookConfig) { w.MaxAttempts = 3 }, ""},
		{"relative url", func(w *WebhookConfig) { w.URL = "/hooks" }, "config: webhooks[1].url: "},
		{"ftp url", func(w *WebhookConfig) { w.URL = "ftp://example.com/x" }, "config: webhooks[1].url: "},
		{"same url twice", func(w *WebhookConfig) { w.URL = good.URL }, "config: webhooks[1].url: the same as webhooks[0].url"},
		{"no events", func(w *WebhookConfig) { w.Events = nil }, "config: webhooks[1].events: "},
		{"empty pattern", func(w *WebhookConfig) { w.Events = []string{"identity.*", " "} }, "config: webhooks[1].events[1]: "},
		{"no secret", func(w *WebhookConfig) { w.Secret = "" }, "config: webhooks[1].secret: "},
		{"no prefix", func(w *WebhookConfig) { w.Secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, `config: webhooks[1].secret: must start with "whsec_"`},
		{"short key", func(w *WebhookConfig) { w.Secret = "whsec_c2hvcnQ=" }, "config: webhooks[1].secret: the key is 5 bytes"},
		{"negative tries", func(w *WebhookConfig) { w.MaxAttempts = -1 }, "config: webhooks[1].max_attempts: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			second := good
			second.URL = "http://127.0.0.1:9/other"
			tc.change(&second)
			cfg.Webhooks = []WebhookConfig{good, second}
			err := cfg.validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want %q…", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

// TestWebhookConfigLoad: webhooks from YAML and from the WEBHOOKS variable
// (JSON), max_attempts included.
func TestWebhookConfigLoad(t *testing.T) {
	path := t.TempDir() + "/config.yaml"
	yaml := "webhooks:\n  - url: https://crm.example.com/hooks\n    events: [\"identity.*\", session.created]\n    secret: " +
		testWebhookSecret + "\n    max_attempts: 3\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := WebhookConfig{URL: "https://crm.example.com/hooks", Events: []string{"identity.*", "session.created"}, Secret: testWebhookSecret, MaxAttempts: 3}
	if len(cfg.Webhooks) != 1 || fmt.Sprint(cfg.Webhooks[0]) != fmt.Sprint(want) {
		t.Errorf("from YAML: %+v", cfg.Webhooks)
	}
	env := map[string]string{"WEBHOOKS": `[{"url":"http://127.0.0.1:8080/h","events":["*"],"secret":"` + testWebhookSecret + `","max_attempts":2}]`}
	cfg, err = loadConfig("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Webhooks) != 1 || cfg.Webhooks[0].URL != "http://127.0.0.1:8080/h" || cfg.Webhooks[0].MaxAttempts != 2 {
		t.Errorf("from the environment: %+v", cfg.Webhooks)
	}
	env["WEBHOOKS"] = `[{"url":"http://127.0.0.1:8080/h","events":["*"],"secret":"whsec_short"}]`
	if _, err := loadConfig("", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "webhooks[0].secret") {
		t.Errorf("a bad secret from the environment: %v", err)
	}
}

// TestWebhookRedirectNotFollowed: a redirect is a failed try, and the
// signed event never reaches where it points.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		target := newReceiver(t, 0)
		redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
		t.Cleanup(redirect.Close)
		s := newTestServer(t, dsn, func(c *Config) {
			c.Webhooks = []WebhookConfig{{URL: redirect.URL, Events: []string{"*"}, Secret: testWebhookSecret}}
			c.manualWebhooks = true
		})
		e := record(t, s.app.store, model.EventIdentityCreated, time.Now())
		s.step(t)
		d := s.delivery(t, e, redirect.URL)
		if d.Status != "QUEUED" || d.Attempts != 1 || d.LastResponseCode == nil || *d.LastResponseCode != 307 ||
			d.LastError == nil || !strings.Contains(*d.LastError, "redirects are not followed") {
			t.Errorf("after a redirect: %+v", d)
		}
		if n := target.requestCount(); n != 0 {
			t.Errorf("the redirect was followed (%d requests)", n)
		}
	})
}

// TestWebhookFromMutation: a change made through the API reaches a webhook
// with its actor (the admin key by its id).
func TestWebhookFromMutation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		rcv := newReceiver(t, 0)
		s := newTestServer(t, dsn, withWebhooks([]string{"identity.created"}, rcv))
		created := createIdentity(t, s, map[string]any{"traits": map[string]any{"email": "hooked@example.com"}})
		got := rcv.wait(t, 1, 5*time.Second)
		data, _ := got[0].Body["data"].(map[string]any)
		actor, _ := data["actor"].(map[string]any)
		if got[0].Body["type"] != "identity.created" || created.Identity == nil || data["identity_id"] != created.Identity.ID ||
			actor["kind"] != "ADMIN" || actor["admin_key_id"] == nil {
			t.Errorf("body: %+v", got[0].Body)
		}
	})
}
