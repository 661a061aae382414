package graph

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
)

// CookieConfig is the browser session cookie.
type CookieConfig struct {
	Name string
	// Secure marks cookies Secure; "auto" does so unless the request came
	// over plain HTTP to a loopback address (local development).
	Secure   string
	SameSite http.SameSite
	// Domain is the cookies' Domain attribute; empty for host-only.
	Domain string
	// AllowedOrigins are the browser origins that get the cookie without
	// asking (and CORS with credentials).
	AllowedOrigins []string
}

// csrfHeader carries the anti-CSRF token of a cookie session.
const csrfHeader = "X-CSRF-Token"

type httpKey struct{}

// httpExchange is what resolvers may need of the HTTP exchange: the
// response (to set cookies) and facts about the client.
type httpExchange struct {
	w         http.ResponseWriter
	r         *http.Request
	cookies   CookieConfig
	clientIP  string
	userAgent string
	// https: the request came over TLS, here or (said by a trusted
	// proxy's X-Forwarded-Proto) at the proxy.
	https bool
}

func exchangeFrom(ctx context.Context) *httpExchange {
	x, _ := ctx.Value(httpKey{}).(*httpExchange)
	return x
}

func (x *httpExchange) client() session.Client {
	if x == nil {
		return session.Client{}
	}
	return session.Client{IP: x.clientIP, UserAgent: x.userAgent}
}

// wantsCookie: the client asked for a cookie, or is a browser page from an
// allowed origin.
func (x *httpExchange) wantsCookie(asked *bool) bool {
	if asked != nil {
		return *asked
	}
	if x == nil {
		return false
	}
	o := x.r.Header.Get("Origin")
	return o != "" && originAllowed(x.cookies.AllowedOrigins, o)
}

// originAllowed matches origin against the allowed list as rs/cors does: an
// exact origin, or one "*" standing for any subdomain
// (https://*.example.com matches https://app.example.com, not
// https://example.com or https://evil-example.com).
func originAllowed(allowed []string, origin string) bool {
	for _, a := range allowed {
		prefix, suffix, wild := strings.Cut(a, "*")
		if !wild {
			if strings.EqualFold(a, origin) {
				return true
			}
			continue
		}
		lower := strings.ToLower(origin)
		if len(lower) > len(prefix)+len(suffix) && strings.HasPrefix(lower, strings.ToLower(prefix)) && strings.HasSuffix(lower, strings.ToLower(suffix)) {
			return true
		}
	}
	return false
}

func (x *httpExchange) secure() bool {
	switch {
	case x.cookies.Secure == "true", x.cookies.SameSite == http.SameSiteNoneMode:
		// Browsers drop SameSite=None cookies that are not Secure (on
		// loopback too): none means secure, whatever auto would pick.
		return true
	}
	switch x.cookies.Secure {
	case "false":
		return false
	}
	if x.https {
		return true
	}
	host, _, _ := net.SplitHostPort(x.r.Host)
	ip := net.ParseIP(host)
	return !(host == "localhost" || (ip != nil && ip.IsLoopback()))
}

// setSessionCookies sets the HttpOnly session cookie and the readable
// anti-CSRF cookie a frontend echoes in the X-CSRF-Token header.
func (x *httpExchange) setSessionCookies(token string, expires time.Time) string {
	csrf := session.CSRFToken(token)
	if x == nil {
		return csrf
	}
	base := http.Cookie{Path: "/", Domain: x.cookies.Domain, Expires: expires, Secure: x.secure(), SameSite: x.cookies.SameSite}
	sc := base
	sc.Name, sc.Value, sc.HttpOnly = x.cookies.Name, token, true
	cc := base
	cc.Name, cc.Value = x.cookies.Name+"_csrf", csrf
	http.SetCookie(x.w, &sc)
	http.SetCookie(x.w, &cc)
	return csrf
}

// clearSessionCookies removes both cookies (logout).
func (x *httpExchange) clearSessionCookies() {
	if x == nil {
		return
	}
	for _, name := range []string{x.cookies.Name, x.cookies.Name + "_csrf"} {
		http.SetCookie(x.w, &http.Cookie{Name: name, Path: "/", Domain: x.cookies.Domain, MaxAge: -1, Secure: x.secure(), SameSite: x.cookies.SameSite, HttpOnly: name == x.cookies.Name})
	}
}

// callerFromCookie builds the caller of a cookie-authenticated request.
func (a *Auth) callerFromCookie(r *http.Request, token string) *model.Caller {
	ctx := r.Context()
	caller := model.NewCaller(false, true, func() (*model.Session, error) { return a.sessions(ctx, token) })
	caller.ViaCookie = true
	got := r.Header.Get(csrfHeader)
	caller.CSRFValid = got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(session.CSRFToken(token))) == 1
	return caller
}

// OIDCBindingCookieSuffix names the cookie that binds an OpenID Connect
// browser flow to the browser that began it: the session cookie's name plus
// this suffix.
const OIDCBindingCookieSuffix = "_oidc"

// oidcBindingMaxAge is how long a browser has to come back from the
// provider.
const oidcBindingMaxAge = 10 * time.Minute

// setOIDCBinding sets the flow-binding cookie: HttpOnly, SameSite=Lax (the
// provider's redirect back is a top-level GET from another site, which Lax
// lets through and Strict would not), only sent to the callback path.
func (x *httpExchange) setOIDCBinding(value string) {
	if x == nil {
		return
	}
	http.SetCookie(x.w, &http.Cookie{Name: x.cookies.Name + OIDCBindingCookieSuffix, Value: value, Path: "/self-service/oidc/",
		Domain: x.cookies.Domain, MaxAge: int(oidcBindingMaxAge / time.Second), Secure: x.secure(), HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// exchangeFor is the exchange of a plain HTTP handler outside the GraphQL
// middleware (the OpenID Connect callback), with the client and the scheme
// worked out as the middleware does (a trusted proxy's headers count).
func exchangeFor(c AuthConfig, w http.ResponseWriter, r *http.Request) *httpExchange {
	ip, viaProxy := ClientAddr(r, c.TrustedProxies)
	return &httpExchange{w: w, r: r, cookies: c.Cookies, clientIP: ip, userAgent: r.UserAgent(),
		https: r.TLS != nil || (viaProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))}
}

// SessionCookieWriter sets the session cookies from a plain HTTP handler
// (the OpenID Connect callback) exactly as login sets them: the same names
// and attributes, Secure decided the same way.
func SessionCookieWriter(c AuthConfig) func(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	return func(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
		exchangeFor(c, w, r).setSessionCookies(token, expires)
	}
}

// OIDCBindingClearer removes the cookie setOIDCBinding set: the callback
// uses it once.
func OIDCBindingClearer(c AuthConfig) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		x := exchangeFor(c, w, r)
		http.SetCookie(w, &http.Cookie{Name: c.Cookies.Name + OIDCBindingCookieSuffix, Path: "/self-service/oidc/",
			Domain: c.Cookies.Domain, MaxAge: -1, Secure: x.secure(), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}

// RequestClient tells who sent a request to a plain HTTP handler, as the
// GraphQL middleware tells it for sessions.
func RequestClient(c AuthConfig) func(r *http.Request) session.Client {
	return func(r *http.Request) session.Client { return exchangeFor(c, nil, r).client() }
}
