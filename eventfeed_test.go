package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/browsertest"
	"github.com/identityd/identityd/model"
)

// The live feed (identityEvents) over WebSocket (graphql-transport-ws,
// spoken by hand) and SSE (GraphQL over SSE, read with a plain client).

const qFeed = `subscription($f: EventFilter) { identityEvents(filter: $f) { id type identityId occurredAt actor { kind adminKeyId } changedPaths } }`

type feedEvent struct {
	ID         string                `json:"id"`
	Type       string                `json:"type"`
	IdentityID *string               `json:"identityId"`
	OccurredAt string                `json:"occurredAt"`
	Actor      struct{ Kind string } `json:"actor"`
}

// wsMsg is a graphql-transport-ws message.
type wsMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type wsClient struct {
	t    *testing.T
	c    *websocket.Conn
	ctx  context.Context
	stop context.CancelFunc
	// pending holds messages read for other subscriptions than the one
	// waited for.
	pending map[string][]wsMsg
}

// dialFeed opens a graphql-transport-ws connection with header on the
// handshake and init as connection_init's payload, and waits for the ack.
func dialFeed(t *testing.T, s *testServer, header http.Header, init map[string]any) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header,
	})
	if err != nil {
		cancel()
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	if c.Subprotocol() != "graphql-transport-ws" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	w := &wsClient{t: t, c: c, ctx: ctx, stop: cancel, pending: map[string][]wsMsg{}}
	t.Cleanup(func() { _ = c.CloseNow(); cancel() })
	payload, _ := json.Marshal(init)
	w.send(wsMsg{Type: "connection_init", Payload: payload})
	if m := w.read(); m.Type != "connection_ack" {
		t.Fatalf("after connection_init: %s %s", m.Type, m.Payload)
	}
	return w
}

func (w *wsClient) send(m wsMsg) {
	w.t.Helper()
	b, _ := json.Marshal(m)
	if err := w.c.Write(w.ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// read returns the next message other than a ping (answered) or a pong.
func (w *wsClient) read() wsMsg {
	w.t.Helper()
	for {
		_, b, err := w.c.Read(w.ctx)
		if err != nil {
			w.t.Fatalf("read: %v", err)
		}
		var m wsMsg
		if err := json.Unmarshal(b, &m); err != nil {
			w.t.Fatalf("%s: %v", b, err)
		}
		switch m.Type {
		case "ping":
			w.send(wsMsg{Type: "pong"})
		case "pong", "ka":
		default:
			return m
		}
	}
}

// readFor returns the next message of subscription id.
func (w *wsClient) readFor(id string) wsMsg {
	w.t.Helper()
	if q := w.pending[id]; len(q) > 0 {
		w.pending[id] = q[1:]
		return q[0]
	}
	for {
		m := w.read()
		if m.ID == id {
			return m
		}
		if m.ID == "" {
			w.t.Fatalf("want a message for %s, got %s %s", id, m.Type, m.Payload)
		}
		w.pending[m.ID] = append(w.pending[m.ID], m)
	}
}

func (w *wsClient) subscribe(id string, filter map[string]any) {
	w.t.Helper()
	p, _ := json.Marshal(map[string]any{"query": qFeed, "variables": map[string]any{"f": filter}})
	w.send(wsMsg{Type: "subscribe", ID: id, Payload: p})
}

// next reads the next event of subscription id.
func (w *wsClient) next(id string) feedEvent {
	w.t.Helper()
	m := w.readFor(id)
	if m.Type != "next" {
		w.t.Fatalf("want next for %s, got %s %s %s", id, m.Type, m.ID, m.Payload)
	}
	var r struct {
		Data   struct{ IdentityEvents feedEvent } `json:"data"`
		Errors []gqlError                         `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &r); err != nil || len(r.Errors) > 0 {
		w.t.Fatalf("%s: %v %v", m.Payload, err, r.Errors)
	}
	return r.Data.IdentityEvents
}

// refusal reads the messages that end subscription id and returns the
// code of the error they carry.
func (w *wsClient) refusal(id string) string {
	w.t.Helper()
	var code string
	for {
		m := w.readFor(id)
		switch m.Type {
		case "next":
			var r struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			_ = json.Unmarshal(m.Payload, &r)
			if len(r.Errors) == 0 {
				w.t.Fatalf("an event for a refused subscription: %s", m.Payload)
			}
			code, _ = r.Errors[0].Extensions["code"].(string)
		case "error":
			var errs []gqlError
			_ = json.Unmarshal(m.Payload, &errs)
			if len(errs) > 0 {
				code, _ = errs[0].Extensions["code"].(string)
			}
			return code
		case "complete":
			return code
		}
	}
}

// sseStream is a subscription over SSE.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

func openSSE(t *testing.T, s *testServer, token string, filter map[string]any) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	body, _ := json.Marshal(map[string]any{"query": qFeed, "variables": map[string]any{"f": filter}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, ct)
	}
	return &sseStream{t: t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
}

// event reads the next SSE event (comments skipped).
func (s *sseStream) event() (name string, data []byte) {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if name != "" || data != nil {
				return name, data
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimSpace(strings.TrimPrefix(line, "data:"))...)
		}
	}
}

func (s *sseStream) next() (feedEvent, []gqlError) {
	s.t.Helper()
	name, data := s.event()
	if name != "next" {
		s.t.Fatalf("event %q %s, want next", name, data)
	}
	var r struct {
		Data   *struct{ IdentityEvents feedEvent } `json:"data"`
		Errors []gqlError                          `json:"errors"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		s.t.Fatalf("%s: %v", data, err)
	}
	if r.Data == nil {
		return feedEvent{}, r.Errors
	}
	return r.Data.IdentityEvents, r.Errors
}

// recordEvent writes an event as a change would, without depending on
// which changes emit events.
func recordEvent(t *testing.T, s *testServer, typ string, identity uuid.UUID) *model.Event {
	t.Helper()
	e := model.NewEvent(context.Background(), typ, identity, false, time.Now())
	if err := s.app.store.RecordEvents(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitSubscribers waits until the server's feed has n subscriptions.
func waitSubscribers(t *testing.T, s *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.app.feed.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the feed has %d subscribers, want %d", s.app.feed.Subscribers(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLiveFeedOverWebSocketAndSSE(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		alice := uuid.New()
		// The admin key in connection_init's payload, as browsers send it.
		ws := dialFeed(t, s, nil, map[string]any{"Authorization": "Bearer " + testAdminKey})
		ws.subscribe("all", nil)
		ws.subscribe("alice", map[string]any{"identityId": alice.String(), "types": []string{"identity.*"}})
		// The key in the handshake's header works too.
		ws2 := dialFeed(t, s, http.Header{"Authorization": {"Bearer " + testAdminKey}}, nil)
		ws2.subscribe("sessions", map[string]any{"types": []string{"session.*"}})
		sse := openSSE(t, s, testAdminKey, nil)
		waitSubscribers(t, s, 4)

		e1 := recordEvent(t, s, "session.created", alice)
		e2 := recordEvent(t, s, "identity.updated", alice)
		e3 := recordEvent(t, s, "identity.updated", uuid.New())

		for _, want := range []*model.Event{e1, e2, e3} {
			got := ws.next("all")
			if got.ID != want.ID.String() || got.Type != want.Type || got.Actor.Kind != "SYSTEM" {
				t.Errorf("ws: %+v, want %s %s", got, want.ID, want.Type)
			}
			ev, errs := sse.next()
			if ev.ID != want.ID.String() || len(errs) > 0 {
				t.Errorf("sse: %+v %v, want %s", ev, errs, want.ID)
			}
		}
		// The filters: identity and type pattern; type pattern alone.
		if got := ws.next("alice"); got.ID != e2.ID.String() || got.IdentityID == nil || *got.IdentityID != alice.String() {
			t.Errorf("alice: %+v, want %s", got, e2.ID)
		}
		if got := ws2.next("sessions"); got.ID != e1.ID.String() {
			t.Errorf("sessions: %+v, want %s", got, e1.ID)
		}

		// complete frees the subscription; so does closing the socket or
		// the SSE request.
		ws.send(wsMsg{Type: "complete", ID: "alice"})
		waitSubscribers(t, s, 3)
		_ = ws2.c.Close(websocket.StatusNormalClosure, "")
		waitSubscribers(t, s, 2)
		sse.cancel()
		waitSubscribers(t, s, 1)
		// The one left still works.
		e4 := recordEvent(t, s, "identity.deleted", alice)
		if got := ws.next("all"); got.ID != e4.ID.String() {
			t.Errorf("after the others left: %+v, want %s", got, e4.ID)
		}
		ws.send(wsMsg{Type: "complete", ID: "all"})
		waitSubscribers(t, s, 0)
	})
}

func TestLiveFeedIsForAdmins(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		token, _ := s.mustRegister(t, "feed@example.com", "correct horse battery staple")
		for _, c := range []struct {
			name   string
			header http.Header
			init   map[string]any
			want   string
		}{
			{"nothing", nil, nil, "UNAUTHENTICATED"},
			{"a wrong key", nil, map[string]any{"Authorization": "Bearer not-the-key"}, "UNAUTHENTICATED"},
			{"an empty bearer", nil, map[string]any{"Authorization": "Bearer "}, "UNAUTHENTICATED"},
			{"a session in the payload", nil, map[string]any{"Authorization": "Bearer " + token}, "FORBIDDEN"},
			{"a session token header in the payload", nil, map[string]any{"X-Session-Token": token}, "FORBIDDEN"},
			{"a session on the handshake", http.Header{"Authorization": {"Bearer " + token}}, nil, "FORBIDDEN"},
			// The payload's credentials replace the handshake's.
			{"a session over an admin handshake", http.Header{"Authorization": {"Bearer " + testAdminKey}}, map[string]any{"Authorization": "Bearer " + token}, "FORBIDDEN"},
		} {
			t.Run("ws "+c.name, func(t *testing.T) {
				ws := dialFeed(t, s, c.header, c.init)
				ws.subscribe("1", nil)
				if got := ws.refusal("1"); got != c.want {
					t.Errorf("code %q, want %q", got, c.want)
				}
			})
		}
		for _, c := range []struct{ name, token, want string }{
			{"nothing", "", "UNAUTHENTICATED"},
			{"a session", token, "FORBIDDEN"},
		} {
			t.Run("sse "+c.name, func(t *testing.T) {
				sse := openSSE(t, s, c.token, nil)
				ev, errs := sse.next()
				if len(errs) == 0 || errs[0].Extensions["code"] != c.want || ev.ID != "" {
					t.Errorf("%+v %v, want %s", ev, errs, c.want)
				}
				if name, _ := sse.event(); name != "complete" {
					t.Errorf("then %q, want complete", name)
				}
			})
		}
		waitSubscribers(t, s, 0)

		// A page of another origin cannot open a socket (the session
		// cookie would go with it); the server's own origin can.
		for _, c := range []struct {
			origin string
			want   int
		}{{"https://evil.example", http.StatusForbidden}, {s.URL, http.StatusSwitchingProtocols}} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
				Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{"Origin": {c.origin}},
			})
			cancel()
			if resp == nil || resp.StatusCode != c.want {
				t.Errorf("origin %s: %v %v, want %d", c.origin, resp, err, c.want)
			}
			if conn != nil {
				_ = conn.CloseNow()
			}
		}
	})
}

// TestLiveFeedLimits: the document limits apply to subscriptions, and an
// allowed origin may open a socket.
func TestLiveFeedLimits(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.GraphQL.Limits.MaxDepth = 2
		c.Serve.CORS.Enabled = true
		c.Serve.CORS.AllowedOrigins = []string{"https://console.example"}
	})
	ws := dialFeed(t, s, http.Header{"Origin": {"https://console.example"}}, map[string]any{"Authorization": "Bearer " + testAdminKey})
	ws.subscribe("deep", nil) // actor { kind } is three levels deep
	if got := ws.refusal("deep"); got != "QUERY_TOO_DEEP" {
		t.Errorf("code %q, want QUERY_TOO_DEEP", got)
	}
	waitSubscribers(t, s, 0)
}

// TestLiveFeedAcrossProcesses: on PostgreSQL an event made by another
// server process reaches a subscriber of this one, over WebSocket and SSE.
func TestLiveFeedAcrossProcesses(t *testing.T) {
	dsn := dbtest.NewPostgres(t)
	s1 := newTestServer(t, dsn, nil)
	s2 := newTestServer(t, dsn, nil)
	ws := dialFeed(t, s1, nil, map[string]any{"Authorization": "Bearer " + testAdminKey})
	ws.subscribe("1", nil)
	sse := openSSE(t, s1, testAdminKey, nil)
	waitSubscribers(t, s1, 2)
	// Once s1 listens, what s2 commits is announced to it.
	deadline := time.Now().Add(10 * time.Second)
	for !s1.app.feed.Listening() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e := recordEvent(t, s2, "identity.created", uuid.New())
	if got := ws.next("1"); got.ID != e.ID.String() {
		t.Errorf("ws: %+v, want %s", got, e.ID)
	}
	if got, errs := sse.next(); got.ID != e.ID.String() || len(errs) > 0 {
		t.Errorf("sse: %+v %v, want %s", got, errs, e.ID)
	}
}

// TestLiveFeedDropsASlowSubscriber: a subscriber that does not read is
// ended once its buffer is full, and the others get every event, on time.
func TestLiveFeedDropsASlowSubscriber(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, dsn string) {
		ws := dialFeed(t, s, nil, map[string]any{"Authorization": "Bearer " + testAdminKey})
		ws.subscribe("1", nil)
		slow, err := s.app.feed.Subscribe(context.Background(), nil) // never read
		if err != nil {
			t.Fatal(err)
		}
		waitSubscribers(t, s, 2)
		const n = 400 // more than a subscriber's buffer
		events := make([]*model.Event, n)
		for i := range events {
			events[i] = model.NewEvent(context.Background(), "identity.imported", uuid.New(), false, time.Now())
		}
		if err := s.app.store.RecordEvents(context.Background(), events...); err != nil {
			t.Fatal(err)
		}
		for i, want := range events {
			if got := ws.next("1"); got.ID != want.ID.String() {
				t.Fatalf("event %d: %s, want %s", i, got.ID, want.ID)
			}
		}
		waitSubscribers(t, s, 1)
		got := 0
		for range slow {
			got++
		}
		if got == 0 || got >= n {
			t.Errorf("the slow subscriber got %d events before its end, want its buffer's worth", got)
		}
	})
}

// TestLiveFeedInThePlayground: GraphiQL at / runs the subscription (over
// SSE, with the admin key from its headers editor) and shows an event as it
// is made.
func TestLiveFeedInThePlayground(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) { c.Serve.Introspection = true })
	ctx := browsertest.New(t)
	const sub = "subscription { identityEvents { id type } }"
	err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`.graphiql-execute-button`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('.graphiql-query-editor').innerText.includes('identitySchemas')`,
			chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(`+strconv.Quote(sub)+`)`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')
			.CodeMirror.setValue(JSON.stringify({Authorization: `+strconv.Quote("Bearer "+testAdminKey)+`}))`),
		chromedp.Sleep(500*time.Millisecond),
		chromedp.Click(chromedp.CSS(`.graphiql-execute-button`)),
	)
	if err != nil {
		t.Fatalf("driving the playground: %v", err)
	}
	waitSubscribers(t, s, 1)
	e := recordEvent(t, s, "identity.created", uuid.New())
	err = chromedp.Do(ctx, chromedp.Poll[chromedp.Void](`document.querySelector('.graphiql-response').innerText.includes(`+strconv.Quote(e.ID.String())+`)`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`.graphiql-response`)))
		t.Fatalf("the event %s did not show: %v; the response pane shows %q", e.ID, err, text)
	}
	// Stopping it in GraphiQL ends the subscription on the server.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.graphiql-execute-button`))); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, s, 0)
}

// TestLiveFeedTellsADroppedSubscriberWhy: a client that stops reading is
// dropped once the server's buffers are full, and finds out why at the end
// of its stream; the server's read and write timeouts, made for requests,
// do not cut streams that are read.
func TestLiveFeedTellsADroppedSubscriberWhy(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	// The server as serve runs it, with short timeouts.
	srv := httptest.NewUnstartedServer(s.app.handler)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	timed := &testServer{URL: srv.URL, app: s.app}

	reader := openSSE(t, timed, testAdminKey, nil)
	ws := dialFeed(t, timed, nil, map[string]any{"Authorization": "Bearer " + testAdminKey})
	ws.subscribe("1", nil)
	stalled := openSSE(t, timed, testAdminKey, nil)
	waitSubscribers(t, s, 3)
	time.Sleep(time.Second) // past both timeouts
	e := recordEvent(t, s, "identity.created", uuid.New())
	if got, _ := reader.next(); got.ID != e.ID.String() {
		t.Fatalf("sse after the timeouts: %+v, want %s", got, e.ID)
	}
	if got := ws.next("1"); got.ID != e.ID.String() {
		t.Fatalf("ws after the timeouts: %+v, want %s", got, e.ID)
	}
	reader.cancel()
	_ = ws.c.CloseNow()
	waitSubscribers(t, s, 1)

	// stalled reads nothing while many events are made: the socket's
	// buffers fill, then the feed's, and it is dropped.
	for batch := 0; s.app.feed.Subscribers() > 0; batch++ {
		if batch == 100 {
			t.Fatal("the stalled subscriber was never dropped")
		}
		events := make([]*model.Event, 1000)
		for i := range events {
			events[i] = model.NewEvent(context.Background(), "identity.imported", uuid.New(), false, time.Now())
		}
		if err := s.app.store.RecordEvents(context.Background(), events...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var last []gqlError
	n := 0
	for {
		name, data := stalled.event()
		if name == "complete" {
			break
		}
		var r struct {
			Errors []gqlError `json:"errors"`
		}
		_ = json.Unmarshal(data, &r)
		last = r.Errors
		n++
	}
	if len(last) != 1 || last[0].Extensions["code"] != "UNAVAILABLE" || !strings.Contains(last[0].Message, "fell behind") {
		t.Errorf("after %d events the stream ended with %+v, want UNAVAILABLE saying it fell behind", n, last)
	}
}

// TestLiveFeedAdminListener: with serve.admin_address, an admin key in
// connection_init works on the admin listener only.
func TestLiveFeedAdminListener(t *testing.T) {
	pub := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) { c.Serve.AdminAddress = "127.0.0.1:0" })
	adm := httptest.NewServer(pub.app.adminHandler)
	t.Cleanup(adm.Close)
	admin := &testServer{URL: adm.URL, app: pub.app}
	init := map[string]any{"Authorization": "Bearer " + testAdminKey}

	ws := dialFeed(t, pub, nil, init)
	ws.subscribe("1", nil)
	if got := ws.refusal("1"); got != "UNAUTHENTICATED" {
		t.Errorf("admin key on the public listener: %q, want UNAUTHENTICATED", got)
	}
	ws = dialFeed(t, admin, nil, init)
	ws.subscribe("1", nil)
	waitSubscribers(t, pub, 1)
	e := recordEvent(t, pub, "identity.created", uuid.New())
	if got := ws.next("1"); got.ID != e.ID.String() {
		t.Errorf("admin listener: %+v, want %s", got, e.ID)
	}
}
