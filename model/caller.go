package model

import (
	"context"
	"sync"
)

// Caller is who sent a request: an admin (a valid admin API key), the holder
// of a session, or nobody. The session is looked up at most once and only when
// a field needs it, so public queries cost no session read.
type Caller struct {
	// Admin is true when the request carried a valid admin API key.
	Admin bool
	// Presented is true when the request carried any credential (a bearer
	// token or a session cookie), valid or not.
	Presented bool
	// ViaCookie is true when the credential is the session cookie; then
	// mutations need CSRFValid too.
	ViaCookie bool
	// CSRFValid is true when the request carried the session's anti-CSRF
	// token in its X-CSRF-Token header.
	CSRFValid bool
	// AdminKeyID names the admin key (a non-secret id) when Admin.
	AdminKeyID string

	once    sync.Once
	load    func() (*Session, error)
	session *Session
	err     error
}

// NewCaller returns a caller whose session, if any, load finds. load may be nil
// when the request carries no session credential.
func NewCaller(admin, presented bool, load func() (*Session, error)) *Caller {
	return &Caller{Admin: admin, Presented: presented, load: load}
}

// Session returns the caller's active session. Without one it returns an
// Error with CodeUnauthenticated; storage failures come back as they are.
func (c *Caller) Session() (*Session, error) {
	c.once.Do(func() {
		if c.load == nil {
			c.err = Errorf(CodeUnauthenticated, "a valid session is required")
			return
		}
		c.session, c.err = c.load()
	})
	return c.session, c.err
}

type callerKey struct{}

// NewContextWithCaller returns ctx carrying c.
func NewContextWithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFromContext returns the request's caller; an anonymous one when none
// was set, never nil.
func CallerFromContext(ctx context.Context) *Caller {
	if c, ok := ctx.Value(callerKey{}).(*Caller); ok {
		return c
	}
	return &Caller{}
}
