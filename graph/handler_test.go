package graph

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// testUserToken is the session token the test handler's Auth accepts;
// testAdminKey its admin key.
const (
	testUserToken = "user-token-0123456789"
	testAdminKey  = "admin-key-0123456789"
)

// testLimits are the config's defaults (config.go defaultConfig).
var testLimits = Limits{
	MaxBodyBytes: 64 << 10, AdminMaxBodyBytes: 8 << 20,
	MaxTokens: 5000, AdminMaxTokens: 50000,
	MaxDepth: 12, MaxComplexity: 5000, MaxFields: 1000,
	MaxAliases: 15, AdminMaxAliases: 100,
	MaxRootFields: 20, MaxDirectives: 5, MaxVariables: 50, MaxFragments: 100,
	CPUBudget: 100 * time.Millisecond,
}

// newTestHandler is /graphql as server.go wires it (Auth in front of the
// GraphQL handler) with no services behind it: testUserToken has a session
// held in memory, testAdminKey is an admin, and resolvers that need a
// service are not reached by these tests (one that is fails as an internal
// error, which the tests would see).
func newTestHandler(t testing.TB, limits Limits) http.Handler {
	t.Helper()
	return newTestHandlerWith(t, HandlerConfig{Introspection: true, Limits: limits, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// newTestHandlerWith is newTestHandler with the whole HandlerConfig given.
func newTestHandlerWith(t testing.TB, cfg HandlerConfig) http.Handler {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sess := &model.Session{
		ID: uuid.MustParse("0190c3b0-0000-7000-8000-000000000001"), IdentityID: uuid.MustParse("0190c3b0-0000-7000-8000-000000000002"),
		Active: true, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AuthenticatedAt: now,
		AAL:                   model.AuthenticatorAssuranceLevelAal1,
		AuthenticationMethods: []*model.AuthenticationMethod{{Method: model.CredentialTypePassword, AAL: model.AuthenticatorAssuranceLevelAal1, CompletedAt: now}},
		Identity: &model.Identity{
			ID: uuid.MustParse("0190c3b0-0000-7000-8000-000000000002"), SchemaID: "default", State: model.IdentityStateActive,
			Traits: model.JSON(`{"email":"a@example.com"}`), CreatedAt: now, UpdatedAt: now,
		},
	}
	sessions := func(_ context.Context, token string) (*model.Session, error) {
		if token == testUserToken {
			return sess, nil
		}
		return nil, model.Errorf(model.CodeUnauthenticated, "no such session")
	}
	h := NewHandler(&Resolver{}, cfg)
	return NewAuth(sessions, AuthConfig{AdminKeys: []string{testAdminKey}, Cookies: CookieConfig{Name: "identityd_session"}}).Middleware(h)
}

// BenchmarkHandlerWhoami is the hot path through the GraphQL handler alone
// (Auth, transport, cached document, checks, execution, writing), without
// a database: what the request limits cost the smallest, commonest request.
//
//	go test -run '^$' -bench HandlerWhoami -benchmem -count 10 ./graph/
func BenchmarkHandlerWhoami(b *testing.B) {
	h := newTestHandler(b, testLimits)
	body := `{"query":"{ whoami { id identity { id traits } } }"}`
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testUserToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := do(); !strings.Contains(w.Body.String(), `"whoami":{"id"`) {
		b.Fatalf("whoami: %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
}

// recordedLogs keeps every record logged through it, for tests that want
// to know what reached the log and at which level.
type recordedLogs struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *recordedLogs) logger() *slog.Logger { return slog.New(l) }

func (l *recordedLogs) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordedLogs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *recordedLogs) WithGroup(string) slog.Handler            { return l }
func (l *recordedLogs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// at returns the messages logged at level or above.
func (l *recordedLogs) at(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Level >= level {
			out = append(out, r.Message)
		}
	}
	return out
}

// TestIntrospectionOff: with serve.introspection off, asking for __schema
// or __type, however it is spelled (through fragments, under an alias, with
// GET), is the client's error: INTROSPECTION_DISABLED with a 4xx, naming the
// config key, with nothing run and nothing logged at error level. It used
// to run, fail in gqlgen's introspection resolver and come out as an
// internal error, logged as one. __typename still answers.
func TestIntrospectionOff(t *testing.T) {
	logs := &recordedLogs{}
	off := newTestHandlerWith(t, HandlerConfig{Introspection: false, Limits: testLimits, Logger: logs.logger()})
	for _, q := range []string{
		`{ __schema { queryType { name } } }`,
		`{ __type(name: "Query") { name } }`,
		`{ t: __typename s: __schema { types { name } } }`,
		`{ ...F } fragment F on Query { ... on Query { __type(name: "Identity") { fields { name } } } }`,
		`query A { __typename } query B { __schema { description } }`,
	} {
		body := map[string]any{"query": q}
		if strings.Contains(q, "query B") {
			body["operationName"] = "B"
		}
		a := postJSON(t, off, body)
		if a.code() != codeIntrospectionDisabled || !strings.Contains(a.message(), "introspection is disabled on this server") ||
			!strings.Contains(a.message(), "serve.introspection") {
			t.Errorf("%s: status %d, errors %+v; want %s naming serve.introspection", q, a.status, a.Errors, codeIntrospectionDisabled)
		}
		if a.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422 (a request error, under application/json)", q, a.status)
		}
		if len(a.Data) > 0 && string(a.Data) != "null" {
			t.Errorf("%s: data %s, want none", q, a.Data)
		}
	}

	req := httptest.NewRequest(http.MethodGet, "/graphql?"+url.Values{"query": {`{ __schema { queryType { name } } }`}}.Encode(), nil)
	w := httptest.NewRecorder()
	off.ServeHTTP(w, req)
	if w.Code < 400 || w.Code >= 500 || !strings.Contains(w.Body.String(), codeIntrospectionDisabled) {
		t.Errorf("GET: %d %s, want a 4xx with %s", w.Code, w.Body, codeIntrospectionDisabled)
	}

	if a := post(t, off, "", `{ __typename a: __typename }`, nil); len(a.Errors) > 0 || a.status != http.StatusOK {
		t.Errorf("__typename with introspection off: %d %+v", a.status, a.Errors)
	}
	if errs := logs.at(slog.LevelError); len(errs) > 0 {
		t.Errorf("logged at error level: %q", errs)
	}

	on := newTestHandler(t, testLimits)
	if a := post(t, on, "", `{ __schema { queryType { name } } }`, nil); len(a.Errors) > 0 || !strings.Contains(string(a.Data), `"Query"`) {
		t.Errorf("introspection on: %d %s %+v", a.status, a.Data, a.Errors)
	}
}

// postJSON posts body, marshalled, to h.
func postJSON(t testing.TB, h http.Handler, body map[string]any) answer {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, h, "", b)
}
