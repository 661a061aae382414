package graph

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
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
}

// NewAuth accepts the given admin API keys, and session tokens (bearer or
// cookie) through sessions. Only the keys' SHA-256 digests are kept, so
// comparing takes the same time whatever a guess's length.
func NewAuth(adminKeys []string, sessions SessionFinder, cookies CookieConfig) *Auth {
	a := &Auth{sessions: sessions, cookies: cookies}
	for _, k := range adminKeys {
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

// Middleware sets the request's model.Caller from its Authorization header
// or, failing that, its session cookie, and keeps what resolvers need of the
// exchange (cookies to set, the client's address and user agent).
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, presented := bearerToken(r)
		var caller *model.Caller
		switch {
		case presented && a.isAdminKey(token):
			caller = model.NewCaller(true, true, nil)
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
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		x := &httpExchange{w: w, r: r, cookies: a.cookies, clientIP: host, userAgent: r.UserAgent()}
		ctx := context.WithValue(model.NewContextWithCaller(r.Context(), caller), httpKey{}, x)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
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
