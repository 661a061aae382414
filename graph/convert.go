package graph

import (
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
	conn := &model.IdentityConnection{Edges: make([]*model.IdentityEdge, len(p.Items))}
	for i, ident := range p.Items {
		conn.Edges[i] = &model.IdentityEdge{Cursor: model.EncodeCursor(ident.ID), Node: ident}
	}
	var first, last string
	if n := len(conn.Edges); n > 0 {
		first, last = conn.Edges[0].Cursor, conn.Edges[n-1].Cursor
	}
	conn.PageInfo = pageInfo(p, first, last)
	conn.TotalCount, conn.IsTotalCountExact = totalCount(p)
	return conn
}

// sessionConnection is a page of sessions as a Relay connection.
func sessionConnection(p *model.Page[*model.Session]) *model.SessionConnection {
	conn := &model.SessionConnection{Edges: make([]*model.SessionEdge, len(p.Items))}
	for i, s := range p.Items {
		conn.Edges[i] = &model.SessionEdge{Cursor: model.EncodeCursor(s.ID), Node: s}
	}
	var first, last string
	if n := len(conn.Edges); n > 0 {
		first, last = conn.Edges[0].Cursor, conn.Edges[n-1].Cursor
	}
	conn.PageInfo = pageInfo(p, first, last)
	conn.TotalCount, conn.IsTotalCountExact = totalCount(p)
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
