package graph

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sess := &model.Session{
		ID: uuid.MustParse("0190c3b0-0000-7000-8000-000000000001"), IdentityID: uuid.MustParse("0190c3b0-0000-7000-8000-000000000002"),
		Active: true, IssuedAt: now, ExpiresAt: now.Add(time.Hour), AuthenticatedAt: now,
		AuthenticationMethods: []string{"password"},
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewHandler(&Resolver{}, HandlerConfig{Introspection: true, Limits: limits, Logger: log})
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
