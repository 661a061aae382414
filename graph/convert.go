package graph

import (
	"github.com/identityd/identityd/internal/identity"
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

// identityConnection is a page as a Relay connection.
func identityConnection(p *identity.Page) *model.IdentityConnection {
	conn := &model.IdentityConnection{
		Edges:    make([]*model.IdentityEdge, len(p.Identities)),
		PageInfo: &model.PageInfo{HasNextPage: p.HasNext, HasPreviousPage: p.HasPrevious},
	}
	for i, ident := range p.Identities {
		conn.Edges[i] = &model.IdentityEdge{Cursor: identity.Cursor(ident), Node: ident}
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor = &conn.Edges[0].Cursor
		conn.PageInfo.EndCursor = &conn.Edges[n-1].Cursor
	}
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
	out.Session = issued.Session
	if x.wantsCookie(cookie) {
		csrf := x.setSessionCookies(issued.Token, issued.Session.ExpiresAt)
		out.CsrfToken = &csrf
	} else {
		out.SessionToken = &issued.Token
	}
	return out, nil
}
