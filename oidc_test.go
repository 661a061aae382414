package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/identityd/identityd/db/dbtest"
)

// oidcMapper is a Kratos mapper as Kratos's docs write them (email_verified
// defaults to false: Kratos leaves a false claim out): the email only when
// the provider verified it, vouched for as verified, and the subject in the
// public metadata.
const oidcMapper = `local claims = { email_verified: false } + std.extVar('claims');
{
  identity: {
    traits: {
      [if 'email' in claims && claims.email_verified then 'email' else null]: claims.email,
    },
    metadata_public: { subject: claims.sub, issuer: claims.iss },
    verified_addresses: std.prune([
      if 'email' in claims && claims.email_verified then { via: 'email', value: claims.email },
    ]),
  },
}
`

const (
	oidcReturnTo      = "https://app.example.test/welcome"
	oidcDefaultReturn = "https://app.example.test/home"
)

// oidcEnv is a server with social sign-in against a mock OpenID provider
// running on loopback.
type oidcEnv struct {
	*testServer
	mock *mockoidc.MockOIDC
}

// newOIDCServer starts a mock OpenID provider and the service with it as
// the generic provider "mock". The service's listener is made before its
// config, so serve.base_url (where the provider sends the browser back) is
// the address it really listens on.
func newOIDCServer(t *testing.T, dsn string, change func(c *Config, e *oidcEnv)) *oidcEnv {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	e := &oidcEnv{mock: m}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := defaultConfig()
	cfg.DSN = dsn
	cfg.Admin.APIKeys = []string{testAdminKey}
	cfg.Secrets.Default = []string{testSecret}
	cfg.Hashers.Argon2 = Argon2Config{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	cfg.Serve.BaseURL = base
	cfg.Selfservice.AllowedReturnURLs = []string{"https://app.example.test/"}
	cfg.Selfservice.DefaultBrowserReturnURL = oidcDefaultReturn
	cfg.Selfservice.Methods.OIDC.Enabled = true
	cfg.Selfservice.Methods.OIDC.Config.Providers = []OIDCProviderConfig{{
		ID: "mock", Provider: "generic", Label: "Mock", ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		IssuerURL: m.Issuer(), Scope: []string{"openid", "email", "profile"},
		MapperURL: "base64://" + base64.StdEncoding.EncodeToString([]byte(oidcMapper)),
	}}
	if change != nil {
		change(&cfg, e)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dsn, "sqlite") {
		dbtest.Open(t, dsn)
	}
	a, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.handler
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close()
	})
	e.testServer = &testServer{URL: base, app: a}
	return e
}

// eachOIDC runs fn on a fresh OIDC server on every database.
func eachOIDC(t *testing.T, change func(c *Config, e *oidcEnv), fn func(t *testing.T, e *oidcEnv)) {
	t.Helper()
	dbtest.Each(t, func(t *testing.T, dsn string) { fn(t, newOIDCServer(t, dsn, change)) })
}

// oidcBrowser is a browser: it keeps cookies and does not follow
// redirects, so each step's answer can be looked at.
type oidcBrowser struct {
	t      *testing.T
	jar    *cookiejar.Jar
	client *http.Client
	base   string
}

func (e *oidcEnv) browser(t *testing.T) *oidcBrowser {
	jar, _ := cookiejar.New(nil)
	return &oidcBrowser{t: t, jar: jar, base: e.URL, client: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// gql posts a GraphQL request with the browser's cookies (and token, when
// given) and decodes the answer.
func (b *oidcBrowser) gql(token, query string, vars map[string]any) *gqlResponse {
	b.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, b.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c := b.cookie(b.base+"/", "identityd_session_csrf"); c != "" {
		req.Header.Set("X-CSRF-Token", c)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &gqlResponse{Status: resp.StatusCode, Header: resp.Header}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		b.t.Fatalf("HTTP %d, body is not JSON: %q", resp.StatusCode, raw)
	}
	return out
}

// get fetches u and returns the answer's status and Location.
func (b *oidcBrowser) get(u string) (int, string) {
	b.t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location")
}

func (b *oidcBrowser) cookie(u, name string) string {
	pu, _ := url.Parse(u)
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *oidcBrowser) session() string { return b.cookie(b.base+"/", "identityd_session") }

type oidcRedirectOut struct {
	URL        *string
	UserErrors []userError
}

const (
	beginOIDCQuery  = `mutation($in: BeginOidcSignInInput!) { beginOidcSignIn(input: $in) { url userErrors { code message path } } }`
	linkOIDCQuery   = `mutation($in: LinkOidcProviderInput!) { linkOidcProvider(input: $in) { url userErrors { code message path } } }`
	unlinkOIDCQuery = `mutation($p: String!) { unlinkOidcProvider(provider: $p) { identity { id } userErrors { code message path } } }`
	idTokenQuery    = `mutation($in: LoginWithIdTokenInput!) { loginWithIdToken(input: $in) { sessionToken session { identity { id } } userErrors { code message path } } }`
	oidcWhoamiQuery = `{ whoami { aal authenticationMethods { method aal } identity { id traits metadataPublic linkedOidcProviders verifiableAddresses { value verified } } } }`
)

// begin starts a flow (linking with token when given) and returns the
// provider's authorization URL.
func (b *oidcBrowser) begin(token, query, name string, in map[string]any) string {
	b.t.Helper()
	r := b.gql(token, query, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		b.t.Fatalf("%s: %+v", name, r.Errors)
	}
	out := field[oidcRedirectOut](b.t, r, name)
	if len(out.UserErrors) > 0 || out.URL == nil {
		b.t.Fatalf("%s: %+v", name, out.UserErrors)
	}
	return *out.URL
}

// authorize visits the provider (which signs the queued user in at once)
// and returns the callback URL it sends the browser back to.
func (b *oidcBrowser) authorize(authURL string) string {
	b.t.Helper()
	status, loc := b.get(authURL)
	if status != http.StatusFound || !strings.Contains(loc, "/self-service/oidc/callback/") {
		b.t.Fatalf("provider answered %d to %s, Location %q", status, authURL, loc)
	}
	return loc
}

// callback follows the provider's redirect back and returns where the
// service sends the browser, and that URL's error parameter.
func (b *oidcBrowser) callback(u string) (string, string) {
	b.t.Helper()
	status, loc := b.get(u)
	if status != http.StatusSeeOther {
		b.t.Fatalf("callback answered %d, want 303", status)
	}
	pu, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return loc, pu.Query().Get("error")
}

// signIn runs the whole browser flow for the queued user and returns the
// callback's redirect and its error.
func (e *oidcEnv) signIn(b *oidcBrowser, user *mockoidc.MockUser) (string, string) {
	b.t.Helper()
	e.mock.QueueUser(user)
	authURL := b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
	return b.callback(b.authorize(authURL))
}

type oidcWhoami struct {
	AAL                   string
	AuthenticationMethods []authMethodOut
	Identity              struct {
		ID                  string
		Traits              map[string]any
		MetadataPublic      map[string]any
		LinkedOidcProviders []string
		VerifiableAddresses []struct {
			Value    string
			Verified bool
		}
	}
}

func (b *oidcBrowser) whoami(token string) *oidcWhoami {
	b.t.Helper()
	r := b.gql(token, oidcWhoamiQuery, nil)
	if len(r.Errors) > 0 {
		b.t.Fatalf("whoami: %+v", r.Errors)
	}
	return field[*oidcWhoami](b.t, r, "whoami")
}

func ada() *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: "ada-1815", Email: "Ada@Example.com", EmailVerified: true, PreferredUsername: "ada"}
}

// TestOIDCBrowserSignIn: begin → the provider's authorization endpoint →
// the callback (code exchange with PKCE, ID token signature, issuer,
// audience, expiry and nonce) → a session cookie and a redirect to
// returnTo. The identity is registered from the mapped claims (its email
// verified, as the provider vouched), whoami says OIDC at AAL1, and a
// second sign-in finds the same identity.
func TestOIDCBrowserSignIn(t *testing.T) {
	eachOIDC(t, nil, func(t *testing.T, e *oidcEnv) {
		providers := field[[]map[string]string](t, e.gql(t, "", `{ oidcProviders { id provider label } }`, nil), "oidcProviders")
		if len(providers) != 1 || providers[0]["id"] != "mock" || providers[0]["provider"] != "generic" || providers[0]["label"] != "Mock" {
			t.Fatalf("oidcProviders = %v", providers)
		}

		b := e.browser(t)
		authURL := b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
		au, _ := url.Parse(authURL)
		q := au.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
			q.Get("redirect_uri") != e.URL+"/self-service/oidc/callback/mock" {
			t.Fatalf("authorization URL lacks PKCE, nonce, state or the callback: %s", authURL)
		}
		binding := b.cookie(e.URL+"/self-service/oidc/callback/mock", "identityd_session_oidc")
		if binding == "" || strings.Contains(authURL, binding) {
			t.Fatalf("binding cookie %q missing or in the URL", binding)
		}
		e.mock.QueueUser(ada())
		loc, errCode := b.callback(b.authorize(authURL))
		if loc != oidcReturnTo || errCode != "" {
			t.Fatalf("callback sent the browser to %q (error %q), want %s", loc, errCode, oidcReturnTo)
		}
		if b.session() == "" {
			t.Fatal("no session cookie after the callback")
		}
		if b.cookie(e.URL+"/self-service/oidc/callback/mock", "identityd_session_oidc") != "" {
			t.Error("the binding cookie outlived its flow")
		}
		me := b.whoami("")
		if me.AAL != "AAL1" || len(me.AuthenticationMethods) != 1 || me.AuthenticationMethods[0].Method != "OIDC" {
			t.Fatalf("whoami: aal %s, methods %v; want AAL1 by OIDC", me.AAL, methodNames(me.AuthenticationMethods))
		}
		if me.Identity.Traits["email"] != "Ada@Example.com" || me.Identity.MetadataPublic["subject"] != "ada-1815" ||
			me.Identity.MetadataPublic["issuer"] != e.mock.Issuer() {
			t.Fatalf("mapped identity: traits %v, metadataPublic %v", me.Identity.Traits, me.Identity.MetadataPublic)
		}
		if len(me.Identity.VerifiableAddresses) != 1 || !me.Identity.VerifiableAddresses[0].Verified {
			t.Fatalf("verifiable addresses %+v: want the email verified (the mapper's verified_addresses)", me.Identity.VerifiableAddresses)
		}
		if got := me.Identity.LinkedOidcProviders; len(got) != 1 || got[0] != "mock" {
			t.Fatalf("linkedOidcProviders = %v, want [mock]", got)
		}
		creds := e.admin(t, `query($id: UUID!) { identity(id: $id) { credentials { type identifiers } } }`, map[string]any{"id": me.Identity.ID})
		if !strings.Contains(string(creds.Data), `"identifiers":["mock:ada-1815"]`) {
			t.Fatalf("credentials %s: want OIDC mock:ada-1815", creds.Data)
		}

		// Another browser, the same account: the same identity.
		b2 := e.browser(t)
		if loc, errCode := e.signIn(b2, ada()); loc != oidcReturnTo || errCode != "" {
			t.Fatalf("second sign-in: %q (error %q)", loc, errCode)
		}
		if again := b2.whoami(""); again.Identity.ID != me.Identity.ID {
			t.Fatalf("second sign-in made identity %s, want %s", again.Identity.ID, me.Identity.ID)
		}
		n := e.admin(t, `{ identities(first: 10) { edges { node { id } } } }`, nil)
		if c := strings.Count(string(n.Data), `"id"`); c != 1 {
			t.Fatalf("%d identities after two sign-ins, want 1", c)
		}

		// Without returnTo the default return URL is used.
		e.mock.QueueUser(ada())
		authURL = b2.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock"})
		if loc, _ := b2.callback(b2.authorize(authURL)); loc != oidcDefaultReturn {
			t.Fatalf("without returnTo: %q, want %s", loc, oidcDefaultReturn)
		}
	})
}

// TestOIDCRefusals: the ways a flow must not end in a session.
func TestOIDCRefusals(t *testing.T) {
	clock := &vfClock{}
	eachOIDC(t, func(c *Config, _ *oidcEnv) { c.now = clock.now }, func(t *testing.T, e *oidcEnv) {
		t.Run("begin", func(t *testing.T) {
			b := e.browser(t)
			for _, tc := range []struct {
				name string
				in   map[string]any
				want string
			}{
				{"unknown provider", map[string]any{"provider": "nope", "returnTo": oidcReturnTo}, "NOT_FOUND@/provider"},
				{"return URL elsewhere", map[string]any{"provider": "mock", "returnTo": "https://evil.example/"}, "VALIDATION_FAILED@/returnTo"},
				{"return URL on a look-alike host", map[string]any{"provider": "mock", "returnTo": "https://app.example.test.evil.example/"}, "VALIDATION_FAILED@/returnTo"},
				{"return URL escaping with ..", map[string]any{"provider": "mock", "returnTo": "https://app.example.test/a/../../x"}, "VALIDATION_FAILED@/returnTo"},
				{"return URL over http", map[string]any{"provider": "mock", "returnTo": "http://app.example.test/welcome"}, "VALIDATION_FAILED@/returnTo"},
			} {
				r := b.gql("", beginOIDCQuery, map[string]any{"in": tc.in})
				out := field[oidcRedirectOut](t, r, "beginOidcSignIn")
				if got := codePaths(out.UserErrors); len(got) != 1 || got[0] != tc.want || out.URL != nil {
					t.Errorf("%s: %v (url %v), want [%s]", tc.name, got, out.URL, tc.want)
				}
			}
			if b.cookie(e.URL+"/self-service/oidc/callback/mock", "identityd_session_oidc") != "" {
				t.Error("a refused begin set the binding cookie")
			}
		})

		t.Run("state mismatch", func(t *testing.T) {
			b := e.browser(t)
			e.mock.QueueUser(ada())
			cb := b.authorize(b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo}))
			u, _ := url.Parse(cb)
			q := u.Query()
			q.Set("state", q.Get("state")+"x")
			u.RawQuery = q.Encode()
			loc, errCode := b.callback(u.String())
			if errCode != "INVALID_STATE" || !strings.HasPrefix(loc, oidcDefaultReturn+"?") || b.session() != "" {
				t.Fatalf("forged state: %q (error %q), session %q", loc, errCode, b.session())
			}
		})

		t.Run("missing binding cookie", func(t *testing.T) {
			b := e.browser(t)
			e.mock.QueueUser(ada())
			cb := b.authorize(b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo}))
			other := e.browser(t) // the victim of a login CSRF: no binding cookie
			loc, errCode := other.callback(cb)
			if errCode != "INVALID_STATE" || !strings.HasPrefix(loc, oidcReturnTo+"?") || other.session() != "" {
				t.Fatalf("another browser: %q (error %q), session %q", loc, errCode, other.session())
			}
			// The flow is used up: the right browser cannot finish it now.
			if _, errCode := b.callback(cb); errCode != "INVALID_STATE" || b.session() != "" {
				t.Fatalf("replayed callback: error %q, session %q", errCode, b.session())
			}
		})

		t.Run("replayed callback", func(t *testing.T) {
			b := e.browser(t)
			e.mock.QueueUser(ada())
			authURL := b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
			binding := b.cookie(e.URL+"/self-service/oidc/callback/mock", "identityd_session_oidc")
			cb := b.authorize(authURL)
			if _, errCode := b.callback(cb); errCode != "" {
				t.Fatalf("first callback: %s", errCode)
			}
			replay := e.browser(t)
			u, _ := url.Parse(e.URL)
			replay.jar.SetCookies(u, []*http.Cookie{{Name: "identityd_session_oidc", Value: binding, Path: "/self-service/oidc/"}})
			if _, errCode := replay.callback(cb); errCode != "INVALID_STATE" || replay.session() != "" {
				t.Fatalf("replay with the binding cookie: error %q, session %q", errCode, replay.session())
			}
		})

		t.Run("expired flow", func(t *testing.T) {
			b := e.browser(t)
			e.mock.QueueUser(ada())
			cb := b.authorize(b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo}))
			clock.advance(11 * time.Minute)
			defer clock.advance(-11 * time.Minute)
			if _, errCode := b.callback(cb); errCode != "FLOW_EXPIRED" || b.session() != "" {
				t.Fatalf("expired flow: error %q, session %q", errCode, b.session())
			}
		})

		t.Run("provider error", func(t *testing.T) {
			b := e.browser(t)
			authURL := b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
			au, _ := url.Parse(authURL)
			cb := e.URL + "/self-service/oidc/callback/mock?error=access_denied&state=" + url.QueryEscape(au.Query().Get("state"))
			if _, errCode := b.callback(cb); errCode != "PROVIDER_ERROR" || b.session() != "" {
				t.Fatalf("access denied: error %q, session %q", errCode, b.session())
			}
		})

		t.Run("no state", func(t *testing.T) {
			// Nowhere to go back to but the default return URL.
			loc, errCode := e.browser(t).callback(e.URL + "/self-service/oidc/callback/mock?code=x")
			if errCode != "INVALID_STATE" || !strings.HasPrefix(loc, oidcDefaultReturn+"?") {
				t.Fatalf("no state: %q (error %q)", loc, errCode)
			}
		})

		t.Run("account exists", func(t *testing.T) {
			// A password account holds the email: the provider's account is
			// not merged into it.
			e.mustRegister(t, "grace@example.com", pw1)
			b := e.browser(t)
			loc, errCode := e.signIn(b, &mockoidc.MockUser{Subject: "grace-1906", Email: "grace@example.com", EmailVerified: true})
			if errCode != "ACCOUNT_EXISTS" || !strings.HasPrefix(loc, oidcReturnTo+"?") || b.session() != "" {
				t.Fatalf("taken email: %q (error %q), session %q", loc, errCode, b.session())
			}
		})

		t.Run("traits the schema refuses", func(t *testing.T) {
			// An unverified email maps to no email: the default schema
			// requires one.
			b := e.browser(t)
			_, errCode := e.signIn(b, &mockoidc.MockUser{Subject: "anon-1", Email: "anon@example.com"})
			if errCode != "VALIDATION_FAILED" || b.session() != "" {
				t.Fatalf("invalid traits: error %q, session %q", errCode, b.session())
			}
		})

		t.Run("disabled account", func(t *testing.T) {
			b := e.browser(t)
			if _, errCode := e.signIn(b, &mockoidc.MockUser{Subject: "off-1", Email: "off@example.com", EmailVerified: true}); errCode != "" {
				t.Fatal(errCode)
			}
			id := b.whoami("").Identity.ID
			e.admin(t, `mutation($id: UUID!) { updateIdentity(id: $id, input: {traits: {email: "off@example.com"}, state: INACTIVE}) { userErrors { code } } }`, map[string]any{"id": id})
			b2 := e.browser(t)
			if _, errCode := e.signIn(b2, &mockoidc.MockUser{Subject: "off-1", Email: "off@example.com", EmailVerified: true}); errCode != "ACCOUNT_DISABLED" || b2.session() != "" {
				t.Fatalf("disabled account: error %q, session %q", errCode, b2.session())
			}
		})
	})
}

// oidcToken signs claims with key (the mock provider's own unless forged).
func oidcToken(t *testing.T, key *mockoidc.Keypair, claims jwt.MapClaims) string {
	t.Helper()
	s, err := key.SignJWT(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOIDCLoginWithIDToken: an ID token a native app got is verified
// against the provider's keys, issuer, audience, expiry and nonce (itself
// or its SHA-256), then signs in or registers as the browser flow does.
func TestOIDCLoginWithIDToken(t *testing.T) {
	eachOIDC(t, nil, func(t *testing.T, e *oidcEnv) {
		m := e.mock
		now := time.Now()
		claims := func(change func(jwt.MapClaims)) jwt.MapClaims {
			c := jwt.MapClaims{"iss": m.Issuer(), "sub": "app-user-7", "aud": m.ClientID, "iat": now.Unix(),
				"exp": now.Add(5 * time.Minute).Unix(), "email": "app@example.com", "email_verified": "true",
				"nonce": hashHex("n-123")}
			if change != nil {
				change(c)
			}
			return c
		}
		forger, err := mockoidc.RandomKeypair(2048)
		if err != nil {
			t.Fatal(err)
		}
		forger.Kid, _ = m.Keypair.KeyID() // pretends to be the provider's key
		valid := oidcToken(t, m.Keypair, claims(nil))
		parts := strings.Split(valid, ".")
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+m.Issuer()+`","sub":"someone-else","aud":"`+m.ClientID+`","exp":9999999999}`)) + "." + parts[2]

		nonce := "n-123"
		login := func(in map[string]any) (authOut, []string) {
			r := e.gql(t, "", idTokenQuery, map[string]any{"in": in})
			if len(r.Errors) > 0 {
				t.Fatalf("loginWithIdToken: %+v", r.Errors)
			}
			out := field[authOut](t, r, "loginWithIdToken")
			return out, codePaths(out.UserErrors)
		}
		for _, tc := range []struct {
			name  string
			token string
			nonce any
			want  string
		}{
			{"expired", oidcToken(t, m.Keypair, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), nonce, "INVALID_CREDENTIALS@/idToken"},
			{"another audience", oidcToken(t, m.Keypair, claims(func(c jwt.MapClaims) { c["aud"] = "another-client" })), nonce, "INVALID_CREDENTIALS@/idToken"},
			{"another issuer", oidcToken(t, m.Keypair, claims(func(c jwt.MapClaims) { c["iss"] = "https://issuer.example" })), nonce, "INVALID_CREDENTIALS@/idToken"},
			{"forged signature", oidcToken(t, forger, claims(nil)), nonce, "INVALID_CREDENTIALS@/idToken"},
			{"tampered payload", tampered, nonce, "INVALID_CREDENTIALS@/idToken"},
			{"not a JWT", "not-a-token", nonce, "INVALID_CREDENTIALS@/idToken"},
			{"wrong nonce", valid, "n-999", "INVALID_CREDENTIALS@/nonce"},
			{"nonce left out", valid, nil, "INVALID_CREDENTIALS@/nonce"},
		} {
			in := map[string]any{"provider": "mock", "idToken": tc.token}
			if tc.nonce != nil {
				in["nonce"] = tc.nonce
			}
			if out, got := login(in); len(got) != 1 || got[0] != tc.want || out.SessionToken != nil {
				t.Errorf("%s: %v (token %v), want [%s]", tc.name, got, out.SessionToken != nil, tc.want)
			}
		}
		if _, got := login(map[string]any{"provider": "nope", "idToken": valid, "nonce": nonce}); len(got) != 1 || got[0] != "NOT_FOUND@/provider" {
			t.Errorf("unknown provider: %v", got)
		}

		out, got := login(map[string]any{"provider": "mock", "idToken": valid, "nonce": nonce})
		if len(got) > 0 || out.SessionToken == nil {
			t.Fatalf("valid token (nonce hashed): %v", got)
		}
		b := e.browser(t)
		me := b.whoami(*out.SessionToken)
		if me.AAL != "AAL1" || me.AuthenticationMethods[0].Method != "OIDC" || me.Identity.Traits["email"] != "app@example.com" {
			t.Fatalf("whoami: %+v", me)
		}
		// The nonce itself in the token, and a token without a nonce when
		// none is given, are accepted too; both find the same identity.
		for _, tc := range []struct {
			claims jwt.MapClaims
			nonce  any
		}{
			{claims(func(c jwt.MapClaims) { c["nonce"] = "plain-nonce" }), "plain-nonce"},
			{claims(func(c jwt.MapClaims) { delete(c, "nonce") }), nil},
		} {
			in := map[string]any{"provider": "mock", "idToken": oidcToken(t, m.Keypair, tc.claims)}
			if tc.nonce != nil {
				in["nonce"] = tc.nonce
			}
			again, got := login(in)
			if len(got) > 0 || again.Session.Identity.ID != me.Identity.ID {
				t.Fatalf("nonce %v: %v, identity %v", tc.nonce, got, again.Session)
			}
		}

		// A taken email: IDENTIFIER_TAKEN, nothing merged.
		e.mustRegister(t, "taken@example.com", pw1)
		_, got = login(map[string]any{"provider": "mock", "nonce": nonce,
			"idToken": oidcToken(t, m.Keypair, claims(func(c jwt.MapClaims) { c["sub"] = "other-9"; c["email"] = "taken@example.com" }))})
		if len(got) != 1 || !strings.HasPrefix(got[0], "IDENTIFIER_TAKEN") {
			t.Fatalf("taken email: %v, want IDENTIFIER_TAKEN", got)
		}
	})
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestOIDCLinkAndUnlink: a signed-in identity links a provider account in
// the browser (the callback links instead of signing in), the account then
// signs in to it; an account linked elsewhere is refused; unlinking works
// while another way to sign in is left, and never takes the last one.
func TestOIDCLinkAndUnlink(t *testing.T) {
	eachOIDC(t, nil, func(t *testing.T, e *oidcEnv) {
		token, id := e.mustRegister(t, "linker@example.com", pw1)
		b := e.browser(t)
		e.mock.QueueUser(&mockoidc.MockUser{Subject: "linked-1", Email: "whatever@example.com", EmailVerified: true})
		authURL := b.begin(token, linkOIDCQuery, "linkOidcProvider", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
		loc, errCode := b.callback(b.authorize(authURL))
		if loc != oidcReturnTo || errCode != "" || b.session() != "" {
			t.Fatalf("link: %q (error %q), session cookie %q (a link signs nobody in)", loc, errCode, b.session())
		}
		if got := b.whoami(token).Identity.LinkedOidcProviders; len(got) != 1 || got[0] != "mock" {
			t.Fatalf("linkedOidcProviders = %v", got)
		}
		// The linked account signs in to the same identity.
		b2 := e.browser(t)
		if _, errCode := e.signIn(b2, &mockoidc.MockUser{Subject: "linked-1", Email: "whatever@example.com", EmailVerified: true}); errCode != "" {
			t.Fatal(errCode)
		}
		if got := b2.whoami("").Identity.ID; got != id {
			t.Fatalf("signed in as %s, want the linking identity %s", got, id)
		}
		// Linking the same provider twice is refused at once.
		r := b.gql(token, linkOIDCQuery, map[string]any{"in": map[string]any{"provider": "mock", "returnTo": oidcReturnTo}})
		if got := codePaths(field[oidcRedirectOut](t, r, "linkOidcProvider").UserErrors); len(got) != 1 || got[0] != "VALIDATION_FAILED@/provider" {
			t.Fatalf("link a linked provider: %v", got)
		}
		// Another identity cannot link the same account.
		other, _ := e.mustRegister(t, "other@example.com", pw1)
		b3 := e.browser(t)
		e.mock.QueueUser(&mockoidc.MockUser{Subject: "linked-1", Email: "whatever@example.com", EmailVerified: true})
		authURL = b3.begin(other, linkOIDCQuery, "linkOidcProvider", map[string]any{"provider": "mock", "returnTo": oidcReturnTo})
		if _, errCode := b3.callback(b3.authorize(authURL)); errCode != "IDENTIFIER_TAKEN" {
			t.Fatalf("link an account linked elsewhere: error %q, want IDENTIFIER_TAKEN", errCode)
		}
		// Without a session: UNAUTHENTICATED.
		if r := b3.gql("", linkOIDCQuery, map[string]any{"in": map[string]any{"provider": "mock"}}); r.code(0) != "UNAUTHENTICATED" {
			t.Fatalf("link without a session: %v", r.codes())
		}

		// Unlink while the password is left.
		r = b.gql(token, unlinkOIDCQuery, map[string]any{"p": "mock"})
		if got := codePaths(field[identityPayloadOut](t, r, "unlinkOidcProvider").UserErrors); len(got) != 0 {
			t.Fatalf("unlink: %v", got)
		}
		if got := b.whoami(token).Identity.LinkedOidcProviders; len(got) != 0 {
			t.Fatalf("linkedOidcProviders after unlink = %v", got)
		}
		r = b.gql(token, unlinkOIDCQuery, map[string]any{"p": "mock"})
		if got := codePaths(field[identityPayloadOut](t, r, "unlinkOidcProvider").UserErrors); len(got) != 1 || got[0] != "NOT_FOUND@/provider" {
			t.Fatalf("unlink again: %v", got)
		}

		// An identity made by social sign-in has nothing else: its only link
		// stays (with the cookie session and its CSRF token).
		b4 := e.browser(t)
		if _, errCode := e.signIn(b4, &mockoidc.MockUser{Subject: "only-1", Email: "only@example.com", EmailVerified: true}); errCode != "" {
			t.Fatal(errCode)
		}
		r = b4.gql("", unlinkOIDCQuery, map[string]any{"p": "mock"})
		if got := codePaths(field[identityPayloadOut](t, r, "unlinkOidcProvider").UserErrors); len(got) != 1 || got[0] != "VALIDATION_FAILED@/provider" {
			t.Fatalf("unlink the last way to sign in: %v (errors %v)", got, r.codes())
		}
	})
}

// TestOIDCGitHub: GitHub is OAuth 2.0 without ID tokens: the code is
// exchanged (with PKCE) and the user and their primary email are read from
// the API, here a fake on loopback standing in for github.com and
// api.github.com (auth_url, token_url and issuer_url point at it).
func TestOIDCGitHub(t *testing.T) {
	var challenge, gotVerifier string
	fake := http.NewServeMux()
	fake.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		challenge = q.Get("code_challenge")
		u, _ := url.Parse(q.Get("redirect_uri"))
		u.RawQuery = url.Values{"code": {"gh-code"}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	})
	fake.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		gotVerifier = r.Form.Get("code_verifier")
		sum := sha256.Sum256([]byte(gotVerifier))
		if id != "gh-client" || secret != "gh-secret" || r.Form.Get("code") != "gh-code" ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			http.Error(w, `{"error":"bad_verification_code"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"gh-token","token_type":"bearer","scope":"read:user,user:email"}`)
	})
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gh-token" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h(w, r)
		}
	}
	fake.HandleFunc("GET /api/user", authed(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"id":583231,"login":"octocat","name":"The Octocat","avatar_url":"https://avatars.example/u/583231","html_url":"https://github.example/octocat"}`)
	}))
	fake.HandleFunc("GET /api/user/emails", authed(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `[{"email":"old@example.com","primary":false,"verified":true},{"email":"octo@example.com","primary":true,"verified":true}]`)
	}))
	gh := httptest.NewServer(fake)
	defer gh.Close()
	mapper := `local claims = std.extVar('claims');
{ identity: { traits: { email: claims.email }, metadata_public: { login: claims.nickname, id: claims.sub, iss: claims.iss } } }`
	eachOIDC(t, func(c *Config, _ *oidcEnv) {
		c.Selfservice.Methods.OIDC.Config.Providers = append(c.Selfservice.Methods.OIDC.Config.Providers, OIDCProviderConfig{
			ID: "github", Provider: "github", ClientID: "gh-client", ClientSecret: "gh-secret", Scope: []string{"read:user", "user:email"},
			AuthURL: gh.URL + "/login/oauth/authorize", TokenURL: gh.URL + "/login/oauth/access_token", IssuerURL: gh.URL + "/api",
			MapperURL: "base64://" + base64.StdEncoding.EncodeToString([]byte(mapper)),
		})
	}, func(t *testing.T, e *oidcEnv) {
		b := e.browser(t)
		authURL := b.begin("", beginOIDCQuery, "beginOidcSignIn", map[string]any{"provider": "github", "returnTo": oidcReturnTo})
		if strings.Contains(authURL, "nonce=") {
			t.Errorf("GitHub got a nonce: %s", authURL)
		}
		loc, errCode := b.callback(b.authorize(authURL))
		if loc != oidcReturnTo || errCode != "" || gotVerifier == "" {
			t.Fatalf("github sign-in: %q (error %q), verifier %q", loc, errCode, gotVerifier)
		}
		me := b.whoami("")
		if me.Identity.Traits["email"] != "octo@example.com" || me.Identity.MetadataPublic["login"] != "octocat" ||
			me.Identity.MetadataPublic["id"] != "583231" || me.Identity.MetadataPublic["iss"] != gh.URL+"/login/oauth/access_token" {
			t.Fatalf("github identity: traits %v, metadata %v", me.Identity.Traits, me.Identity.MetadataPublic)
		}
		// GitHub gives no ID tokens.
		r := e.gql(t, "", idTokenQuery, map[string]any{"in": map[string]any{"provider": "github", "idToken": "x"}})
		if got := codePaths(field[authOut](t, r, "loginWithIdToken").UserErrors); len(got) != 1 || got[0] != "VALIDATION_FAILED@/provider" {
			t.Fatalf("github id token: %v", got)
		}
	})
}

// TestOIDCDisabled: with the method off (the default) nothing of it works,
// and the callback says so.
func TestOIDCDisabled(t *testing.T) {
	s := newTestServer(t, dbtest.NewSQLite(t), nil)
	if got := field[[]any](t, s.gql(t, "", `{ oidcProviders { id } }`, nil), "oidcProviders"); len(got) != 0 {
		t.Fatalf("oidcProviders = %v", got)
	}
	r := s.gql(t, "", beginOIDCQuery, map[string]any{"in": map[string]any{"provider": "mock"}})
	if got := codePaths(field[oidcRedirectOut](t, r, "beginOidcSignIn").UserErrors); len(got) != 1 || !strings.HasPrefix(got[0], "METHOD_DISABLED") {
		t.Fatalf("begin: %v", got)
	}
	resp, err := http.Get(s.URL + "/self-service/oidc/callback/mock?state=x&code=y")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "error=METHOD_DISABLED") {
		t.Fatalf("callback: %d %s", resp.StatusCode, body)
	}
}

// TestOIDCConfigErrors: a broken provider config stops the server at start,
// naming the key at fault.
func TestOIDCConfigErrors(t *testing.T) {
	good := OIDCProviderConfig{ID: "g", Provider: "generic", ClientID: "c", IssuerURL: "https://issuer.example",
		MapperURL: "base64://" + base64.StdEncoding.EncodeToString([]byte(oidcMapper))}
	for _, tc := range []struct {
		name   string
		change func(ps []OIDCProviderConfig) []OIDCProviderConfig
		want   string
	}{
		{"no issuer", func(ps []OIDCProviderConfig) []OIDCProviderConfig { ps[1].IssuerURL = ""; return ps }, "providers[1].issuer_url: required"},
		{"duplicate id", func(ps []OIDCProviderConfig) []OIDCProviderConfig { ps[1].ID = "g"; return ps }, "providers[1].id"},
		{"unknown kind", func(ps []OIDCProviderConfig) []OIDCProviderConfig { ps[1].Provider = "myspace"; return ps }, "providers[1].provider"},
		{"no client id", func(ps []OIDCProviderConfig) []OIDCProviderConfig { ps[0].ClientID = ""; return ps }, "providers[0].client_id"},
		{"unreadable mapper", func(ps []OIDCProviderConfig) []OIDCProviderConfig {
			ps[1].MapperURL = "file:///nonexistent/m.jsonnet"
			return ps
		}, "providers[1].mapper_url"},
		{"bad Jsonnet", func(ps []OIDCProviderConfig) []OIDCProviderConfig {
			ps[1].MapperURL = "base64://" + base64.StdEncoding.EncodeToString([]byte("{ identity: "))
			return ps
		}, "providers[1].mapper_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := good
			second.ID = "h"
			cfg := defaultConfig()
			cfg.DSN = dbtest.NewSQLite(t)
			cfg.Admin.APIKeys = []string{testAdminKey}
			cfg.Secrets.Default = []string{testSecret}
			cfg.Selfservice.Methods.OIDC.Enabled = true
			cfg.Selfservice.Methods.OIDC.Config.Providers = tc.change([]OIDCProviderConfig{good, second})
			a, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				_ = a.Close()
				t.Fatal("the server started")
			}
			if want := "config: selfservice.methods.oidc.config." + tc.want; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		})
	}
}

// TestOIDCProviderDown: a provider that cannot be reached does not keep the
// server from starting (discovery is lazy); beginning a sign-in with it is
// UNAVAILABLE, and the other providers work on.
func TestOIDCProviderDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	e := newOIDCServer(t, dbtest.NewSQLite(t), func(c *Config, _ *oidcEnv) {
		p := c.Selfservice.Methods.OIDC.Config.Providers[0]
		p.ID, p.IssuerURL = "down", downURL
		c.Selfservice.Methods.OIDC.Config.Providers = append(c.Selfservice.Methods.OIDC.Config.Providers, p)
	})
	b := e.browser(t)
	r := b.gql("", beginOIDCQuery, map[string]any{"in": map[string]any{"provider": "down", "returnTo": oidcReturnTo}})
	if r.code(0) != "UNAVAILABLE" {
		t.Fatalf("begin with a provider that is down: %v %s", r.codes(), r.Data)
	}
	if _, errCode := e.signIn(b, ada()); errCode != "" {
		t.Fatalf("the provider that is up: %s", errCode)
	}
}
