package graph

import (
	"context"

	"github.com/google/uuid"

	"github.com/identityd/identityd/internal/passkey"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// identitySchema is what frontends see of a configured schema.
func identitySchema(s *schemas.Schema) *model.IdentitySchema {
	return &model.IdentitySchema{ID: s.ID, Schema: model.JSON(s.Document)}
}

// identityPayload answers a mutation that returns one identity.
func identityPayload(ident *model.Identity, err error) (*model.IdentityPayload, error) {
	errs, err := payloadErrors(err)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		ident = nil
	}
	return &model.IdentityPayload{Identity: ident, UserErrors: errs}, nil
}

// identityConnection is a page of identities as a Relay connection.
func identityConnection(p *model.Page[*model.Identity]) *model.IdentityConnection {
	conn := &model.IdentityConnection{}
	conn.Edges, conn.PageInfo, conn.TotalCount, conn.IsTotalCountExact = connectionParts(p,
		func(i *model.Identity) uuid.UUID { return i.ID },
		func(c string, i *model.Identity) *model.IdentityEdge { return &model.IdentityEdge{Cursor: c, Node: i} })
	return conn
}

// sessionConnection is a page of sessions as a Relay connection.
func sessionConnection(p *model.Page[*model.Session]) *model.SessionConnection {
	conn := &model.SessionConnection{}
	conn.Edges, conn.PageInfo, conn.TotalCount, conn.IsTotalCountExact = connectionParts(p,
		func(s *model.Session) uuid.UUID { return s.ID },
		func(c string, s *model.Session) *model.SessionEdge { return &model.SessionEdge{Cursor: c, Node: s} })
	return conn
}

// authPayload answers register and login: a cookie (and anti-CSRF token)
// for browsers that want one, otherwise the token itself. A cookie session's
// token is never put in the body, where a script could read it.
func authPayload(x *httpExchange, issued *session.Issued, err error, cookie *bool) (*model.AuthPayload, error) {
	errs, err := payloadErrors(err)
	if err != nil {
		return nil, err
	}
	out := &model.AuthPayload{UserErrors: errs}
	if issued == nil {
		return out, nil
	}
	if issued.CodeSent {
		out.CodeSent = true
		return out, nil
	}
	out.Session = issued.Session
	if x.wantsCookie(cookie) {
		csrf := x.setSessionCookies(issued.Token, issued.Session.ExpiresAt)
		out.CsrfToken = &csrf
	} else {
		out.SessionToken = &issued.Token
	}
	return out, nil
}

// requestCodePayload answers requestVerificationCode and
// requestRecoveryCode: nothing but problems with the input, whatever the
// address.
func requestCodePayload(err error) (*model.RequestCodePayload, error) {
	errs, err := payloadErrors(err)
	if err != nil {
		return nil, err
	}
	return &model.RequestCodePayload{UserErrors: errs}, nil
}

// challengePayload answers the passkey ceremonies' first steps.
func challengePayload(c *passkey.Challenge, err error) (*model.PasskeyChallengePayload, error) {
	errs, err := payloadErrors(err)
	if err != nil {
		return nil, err
	}
	out := &model.PasskeyChallengePayload{UserErrors: errs}
	if c != nil {
		id := c.ID
		out.ChallengeID, out.Options = &id, model.JSON(c.Options)
	}
	return out, nil
}

// oidcRedirect begins an OpenID Connect browser flow (link: linking to that
// session's identity) and sets the cookie that binds it to this browser.
func (r *Resolver) oidcRedirect(ctx context.Context, provider string, returnTo *string, link *model.Session) (*model.OidcRedirectPayload, error) {
	url, binding, err := r.OIDC.Begin(ctx, provider, returnTo, link)
	errs, err := payloadErrors(err)
	if err != nil {
		return nil, err
	}
	out := &model.OidcRedirectPayload{UserErrors: errs}
	if url != "" {
		exchangeFrom(ctx).setOIDCBinding(binding)
		out.URL = &url
	}
	return out, nil
}
