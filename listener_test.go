package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/graph"
)

// TestAdminAddress: with serve.admin_address, admin keys work on the admin
// listener only; on the public one an admin key is refused like any unknown
// token, whatever the query's shape, while sessions work on both.
func TestAdminAddress(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, dsn string) {
		pub := newTestServer(t, dsn, func(c *Config) {
			withPersonSchema(c)
			c.Serve.AdminAddress = "127.0.0.1:0"
		})
		if pub.app.adminHandler == nil {
			t.Fatal("no admin handler with serve.admin_address set")
		}
		adm := httptest.NewServer(pub.app.adminHandler)
		t.Cleanup(adm.Close)
		admin := &testServer{URL: adm.URL, app: pub.app}

		const q = `{ identities(first: 1) { edges { node { id } } } }`
		if r := admin.gql(t, testAdminKey, q, nil); len(r.Errors) > 0 {
			t.Fatalf("admin key on the admin listener: %+v", r.Errors)
		}
		for _, query := range []string{q, `{ a: identity(id: "00000000-0000-0000-0000-000000000000") { id } }`,
			`mutation { createIdentity(input: {traits: {email: "x@example.com"}}) { identity { id } } }`} {
			r := pub.gql(t, testAdminKey, query, nil)
			if len(r.Errors) == 0 || r.code(0) != "UNAUTHENTICATED" {
				t.Errorf("admin key on the public listener, %s: %s %+v, want UNAUTHENTICATED", query, r.Data, r.Errors)
			}
		}
		if n := admin.identityCount(t, "x@example.com"); n != 0 {
			t.Errorf("the public listener created an identity with an admin key")
		}
		tok, _ := pub.mustRegister(t, "owner@example.com", pw1)
		for name, s := range map[string]*testServer{"public": pub, "admin": admin} {
			if r := s.gql(t, tok, `{ whoami { id } }`, nil); len(r.Errors) > 0 {
				t.Errorf("session on the %s listener: %+v", name, r.Errors)
			}
		}
	})
}

// TestSessionTokenHeader: X-Session-Token carries a session as Kratos's
// native apps send it.
func TestSessionTokenHeader(t *testing.T) {
	eachSelfService(t, nil, func(t *testing.T, s *testServer, _ string) {
		tok, _ := s.mustRegister(t, "native@example.com", pw1)
		r := s.post(t, reqOpts{header: map[string]string{"X-Session-Token": tok}}, `{ whoami { identity { traits } } }`, nil)
		if len(r.Errors) > 0 || !json.Valid(r.Data) || !bytes.Contains(r.Data, []byte("native@example.com")) {
			t.Fatalf("whoami with X-Session-Token: %s %+v", r.Data, r.Errors)
		}
		r = s.post(t, reqOpts{header: map[string]string{"X-Session-Token": "ids_st_not-a-token"}}, `{ whoami { id } }`, nil)
		if r.code(0) != "UNAUTHENTICATED" {
			t.Fatalf("a bad X-Session-Token: %+v", r.Errors)
		}
	})
}

// TestClientAddress: forwarding headers count only from trusted proxies,
// read from the right; a client cannot pick its own address.
func TestClientAddress(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name, remote string
		header       http.Header
		want         string
		viaProxy     bool
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7", false},
		{"untrusted peer's header ignored", "203.0.113.7:5000", http.Header{"X-Forwarded-For": {"1.2.3.4"}}, "203.0.113.7", false},
		{"trusted proxy", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "198.51.100.9", true},
		{"spoofed left hop ignored", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4, 198.51.100.9"}}, "198.51.100.9", true},
		{"chain of trusted proxies", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"198.51.100.9, 10.1.1.1"}}, "198.51.100.9", true},
		{"several header lines", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4", "198.51.100.9"}}, "198.51.100.9", true},
		{"Forwarded", "10.0.0.2:5000", http.Header{"Forwarded": {`for=1.2.3.4, for="[2001:db8::1]:4711";proto=https`}}, "2001:db8::1", true},
		{"Forwarded wins over X-Forwarded-For", "10.0.0.2:5000", http.Header{"Forwarded": {"for=198.51.100.9"}, "X-Forwarded-For": {"1.2.3.4"}}, "198.51.100.9", true},
		{"garbage hop stops the walk", "10.0.0.2:5000", http.Header{"X-Forwarded-For": {"198.51.100.9, nonsense"}}, "10.0.0.2", true},
		{"IPv6 peer", "[fd00::5]:5000", http.Header{"X-Forwarded-For": {"2001:db8::7"}}, "2001:db8::7", true},
		{"mapped IPv4 peer", "[::ffff:10.0.0.2]:5000", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "198.51.100.9", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			r.RemoteAddr = tc.remote
			for k, vs := range tc.header {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			got, via := graph.ClientAddr(r, proxies)
			if got != tc.want || via != tc.viaProxy {
				t.Errorf("got %s (via proxy %v), want %s (%v)", got, via, tc.want, tc.viaProxy)
			}
		})
	}
}

// TestCORS: CORS is off unless origins are listed; then only listed origins
// (wildcard subdomains included) are reflected, never "*", with credentials.
func TestCORS(t *testing.T) {
	preflight := func(t *testing.T, s *testServer, origin string) http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, s.URL+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, x-session-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header
	}
	t.Run("off by default", func(t *testing.T) {
		s := newTestServer(t, dbtest.NewSQLite(t), nil)
		if h := preflight(t, s, "http://localhost:3000"); h.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("CORS answered with no origins configured: %v", h)
		}
	})
	s := newTestServer(t, dbtest.NewSQLite(t), func(c *Config) {
		c.Serve.CORS.Enabled = true
		c.Serve.CORS.AllowedOrigins = []string{"http://localhost:3000", "https://*.example.com"}
	})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://localhost:3000", true},
		{"https://app.example.com", true},
		{"https://a.b.example.com", true},
		{"https://example.com", false},
		{"https://evil-example.com", false},
		{"http://app.example.com", false},
		{"http://localhost:3001", false},
	} {
		h := preflight(t, s, tc.origin)
		acao, acac := h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials")
		if acao == "*" {
			t.Errorf("%s: Access-Control-Allow-Origin *", tc.origin)
		}
		if tc.ok && (acao != tc.origin || acac != "true") {
			t.Errorf("%s: allowed origin got %q / credentials %q", tc.origin, acao, acac)
		}
		if !tc.ok && acao != "" {
			t.Errorf("%s: origin not allowed got %q", tc.origin, acao)
		}
	}
}
