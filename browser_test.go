package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/browsertest"
)

// frontend serves an empty page: a browser app on an origin of its own.
func frontend(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>app</title>")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserCrossOriginSession: a page on another loopback origin, allowed
// by serve.cors, registers with cookie: true and then calls whoami with
// credentials: "include" and gets its session from the cookie alone; a page
// on an origin that is not allowed gets nothing (the browser blocks the
// answer). This is what a real browser does with the CORS headers and the
// cookie's attributes, which no handler test can show.
func TestBrowserCrossOriginSession(t *testing.T) {
	app, other := frontend(t), frontend(t)
	api := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.Serve.CORS.Enabled = true
		c.Serve.CORS.AllowedOrigins = []string{app.URL}
	})
	ctx := browsertest.New(t)

	// fetchJS posts a GraphQL request to the API with the browser's
	// cookies and resolves to the answer's text, or to "blocked: …" when
	// the browser refuses it.
	fetchJS := func(query string, vars string) string {
		return fmt.Sprintf(`fetch(%q, {method: "POST", credentials: "include",
			headers: {"Content-Type": "application/json"},
			body: JSON.stringify({query: %q, variables: %s})})
			.then(r => r.text()).catch(e => "blocked: " + e)`, api.URL+"/graphql", query, vars)
	}
	run := func(page, js string) string {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", page, err)
		}
		return out
	}

	reg := run(app.URL, fetchJS(`mutation($in: RegisterInput!) { register(input: $in) { sessionToken userErrors { code } } }`,
		`{"in": {"traits": {"email": "browser@example.com"}, "password": "`+pw1+`", "cookie": true}}`))
	if !strings.Contains(reg, `"userErrors":[]`) || !strings.Contains(reg, `"sessionToken":null`) {
		t.Fatalf("register from the allowed origin: %s", reg)
	}
	who := run(app.URL, fetchJS(`{ whoami { identity { traits } } }`, `{}`))
	if !strings.Contains(who, "browser@example.com") {
		t.Fatalf("whoami from the allowed origin with the cookie: %s", who)
	}
	blocked := run(other.URL, fetchJS(`{ whoami { identity { traits } } }`, `{}`))
	if !strings.HasPrefix(blocked, "blocked:") {
		t.Fatalf("whoami from an origin that is not allowed: %s", blocked)
	}
}
