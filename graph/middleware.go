package graph

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"

	"github.com/identityd/identityd/model"
)

type requestIDKey struct{}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so a log line cannot be forged through it.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// WithRequestID gives every request an id (the client's X-Request-Id when it
// is sane, a random one otherwise), echoes it in the response and puts it in
// the context, so a client's report of an internal error can be found in logs.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// RequestID returns the request's id, or "" outside a request.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// SessionFinder finds the active session a token proves, or fails with an
// UNAUTHENTICATED model.Error.
type SessionFinder func(ctx context.Context, token string) (*model.Session, error)

// Auth works out who the caller of a request is and puts it in the context.
type Auth struct {
	adminKeys [][sha256.Size]byte
	sessions  SessionFinder
	cookies   CookieConfig
	proxies   []netip.Prefix
}

// AuthConfig is what Auth needs beyond the sessions.
type AuthConfig struct {
	// AdminKeys are accepted as admin credentials. Leave them out of the
	// public listener's Auth when admin traffic has a listener of its own:
	// an admin key is then refused there like any unknown token.
	AdminKeys []string
	Cookies   CookieConfig
	// TrustedProxies are the proxies whose X-Forwarded-For, Forwarded and
	// X-Forwarded-Proto headers are believed.
	TrustedProxies []netip.Prefix
}

// NewAuth accepts cfg's admin API keys, and session tokens (bearer,
// X-Session-Token or cookie) through sessions. Only the keys' SHA-256
// digests are kept, so comparing takes the same time whatever a guess's
// length.
func NewAuth(sessions SessionFinder, cfg AuthConfig) *Auth {
	a := &Auth{sessions: sessions, cookies: cfg.Cookies, proxies: cfg.TrustedProxies}
	for _, k := range cfg.AdminKeys {
		a.adminKeys = append(a.adminKeys, sha256.Sum256([]byte(k)))
	}
	return a
}

// isAdminKey compares token with every admin key in constant time, without
// stopping at the first match.
func (a *Auth) isAdminKey(token string) bool {
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range a.adminKeys {
		match |= subtle.ConstantTimeCompare(sum[:], a.adminKeys[i][:])
	}
	return match == 1
}

// Middleware sets the request's model.Caller from its Authorization header,
// its X-Session-Token header (what Kratos's native apps send) or, failing
// those, its session cookie, and keeps what resolvers need of the exchange
// (cookies to set, the client's address and user agent).
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, presented := bearerToken(r)
		if !presented {
			if t := r.Header.Get("X-Session-Token"); t != "" {
				token, presented = strings.TrimSpace(t), true
			}
		}
		var caller *model.Caller
		switch {
		case presented && token == "":
			// Say what is expected, without repeating what was sent.
			caller = model.NewCaller(false, true, func() (*model.Session, error) {
				return nil, model.Errorf(model.CodeUnauthenticated,
					`send "Authorization: Bearer <admin API key or session token>" (or the session token in X-Session-Token); %s`, authorizationShape(r.Header.Get("Authorization")))
			})
		case presented && a.isAdminKey(token):
			caller = model.NewCaller(true, true, nil)
			caller.AdminKeyID = AdminKeyID(token)
		case presented:
			ctx := r.Context()
			caller = model.NewCaller(false, true, func() (*model.Session, error) { return a.sessions(ctx, token) })
		default:
			if c, err := r.Cookie(a.cookies.Name); err == nil && c.Value != "" {
				caller = a.callerFromCookie(r, c.Value)
			} else {
				caller = model.NewCaller(false, false, nil)
			}
		}
		ip, viaProxy := ClientAddr(r, a.proxies)
		x := &httpExchange{w: w, r: r, cookies: a.cookies, clientIP: ip, userAgent: r.UserAgent(),
			https: r.TLS != nil || (viaProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))}
		ctx := context.WithValue(model.NewContextWithCaller(r.Context(), caller), httpKey{}, x)
		ctx = model.WithClient(ctx, ip, r.UserAgent())
		ctx = context.WithValue(ctx, authKey{}, a) // for websocketInit
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// AdminKeyID names an admin key without revealing it, for the audit trail:
// the first 12 hex digits of its SHA-256.
func AdminKeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:6])
}

// ClientAddr is the client's IP address. The peer's address, unless the
// peer is a trusted proxy: then the forwarding headers are read from the
// right (the hop the proxy itself added) leftwards, skipping further trusted
// proxies, and the first address that is not one is the client. Whatever a
// client writes into those headers itself stands to the left of that and is
// never read. viaProxy says the peer was a trusted proxy.
func ClientAddr(r *http.Request, proxies []netip.Prefix) (ip string, viaProxy bool) {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr, false
		}
		return host, false
	}
	addr := peer.Addr().Unmap()
	if !trusted(addr, proxies) {
		return addr.String(), false
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // a hop we cannot read: stop at the last one we could
		}
		addr = hop.Unmap()
		if !trusted(addr, proxies) {
			break
		}
	}
	return addr.String(), true
}

func trusted(a netip.Addr, proxies []netip.Prefix) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor lists the hops of the Forwarded header's for= parameters
// (RFC 7239) or, without one, of X-Forwarded-For, leftmost first.
func forwardedFor(h http.Header) []string {
	var hops []string
	if fwd := h.Values("Forwarded"); len(fwd) > 0 {
		for _, line := range fwd {
			for elem := range strings.SplitSeq(line, ",") {
				for pair := range strings.SplitSeq(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok || !strings.EqualFold(k, "for") {
						continue
					}
					v = strings.Trim(v, `"`)
					if strings.HasPrefix(v, "[") { // "[2001:db8::1]:4711"
						v, _, _ = strings.Cut(v[1:], "]")
					} else if host, _, err := net.SplitHostPort(v); err == nil {
						v = host
					}
					hops = append(hops, v)
				}
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	return hops
}

// authorizationShape names what an Authorization header that is not
// "Bearer <token>" looks like, never its secret part.
func authorizationShape(h string) string {
	scheme, _, ok := strings.Cut(strings.TrimSpace(h), " ")
	switch {
	case strings.TrimSpace(h) == "":
		return "the Authorization header is empty"
	case strings.EqualFold(strings.TrimSpace(h), "Bearer"):
		return "the Bearer token is empty"
	case !ok:
		return "the Authorization header has no scheme (the word Bearer and a space before the token)"
	case strings.EqualFold(scheme, "Bearer"):
		return "the Bearer token is empty"
	}
	// Name only well-known schemes: anything else may be part of a secret.
	for _, known := range []string{"Basic", "Digest", "Token", "ApiKey", "Negotiate", "Key"} {
		if strings.EqualFold(scheme, known) {
			return fmt.Sprintf("the Authorization header uses the %s scheme, which is not accepted", known)
		}
	}
	return "the Authorization header uses a scheme other than Bearer"
}

// bearerToken reads "Authorization: Bearer <token>" (scheme case-insensitive).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(token), true
}

type authKey struct{}

// authFrom is the Auth that let the request in; nil without one.
func authFrom(ctx context.Context) *Auth {
	a, _ := ctx.Value(authKey{}).(*Auth)
	return a
}

// withInitPayload returns ctx with the caller that a WebSocket's
// connection_init payload authenticates, as Middleware does from headers
// (see websocketInit for the payload's shape); ctx as it is when the
// payload carries no credentials. It honours this Auth's admin keys only,
// so a public listener that knows none refuses them here too.
func (a *Auth) withInitPayload(ctx context.Context, p map[string]any) context.Context {
	get := func(m map[string]any, names ...string) (string, bool) {
		for _, n := range names {
			for k, v := range m {
				if strings.EqualFold(k, n) {
					s, _ := v.(string)
					return s, true
				}
			}
		}
		return "", false
	}
	fields := p
	if h, ok := p["headers"].(map[string]any); ok {
		if _, has := get(p, "Authorization", "X-Session-Token"); !has {
			fields = h
		}
	}
	var token, shape string
	if h, ok := get(fields, "Authorization"); ok {
		scheme, t, found := strings.Cut(strings.TrimSpace(h), " ")
		if found && strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(t)
		}
		shape = authorizationShape(h)
	} else if t, ok := get(fields, "X-Session-Token"); ok {
		token, shape = strings.TrimSpace(t), "the X-Session-Token is empty"
	} else {
		return ctx
	}
	var caller *model.Caller
	switch {
	case token == "":
		caller = model.NewCaller(false, true, func() (*model.Session, error) {
			return nil, model.Errorf(model.CodeUnauthenticated,
				`send {"Authorization": "Bearer <admin API key or session token>"} in connection_init's payload; %s`, shape)
		})
	case a.isAdminKey(token):
		caller = model.NewCaller(true, true, nil)
		caller.AdminKeyID = AdminKeyID(token)
	default:
		caller = model.NewCaller(false, true, func() (*model.Session, error) { return a.sessions(ctx, token) })
	}
	return model.NewContextWithCaller(ctx, caller)
}
