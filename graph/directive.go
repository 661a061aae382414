package graph

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"

	"github.com/identityd/identityd/model"
)

// finishesSignIn are the session fields a session may use before it has
// used its identity's second factor: the one that finishes signing in, and
// the one that gives up.
var finishesSignIn = map[string]bool{"loginSecondFactor": true, "logout": true}

// accessDirective is access, and, when requireAAL2, the refusal
// (SESSION_AAL2_REQUIRED) of a session that has not used its identity's
// second factor on every session field but finishesSignIn. The session
// read already knows both levels (the identity's row carries its
// available_aal), so the check costs no query.
func accessDirective(requireAAL2 bool) func(context.Context, any, graphql.Resolver, model.Access) (any, error) {
	if !requireAAL2 {
		return access
	}
	return func(ctx context.Context, obj any, next graphql.Resolver, requires model.Access) (any, error) {
		if requires == model.AccessSession {
			if sess, err := model.CallerFromContext(ctx).Session(); err == nil && sess.NeedsAAL2() {
				if fc := graphql.GetFieldContext(ctx); fc == nil || !finishesSignIn[fc.Field.Name] {
					return nil, &model.Error{Code: model.CodeSessionAAL2Required,
						Message: "this account has a second factor and this session has not used it yet: finish signing in with loginSecondFactor (or logout)"}
				}
			}
		}
		return access(ctx, obj, next, requires)
	}
}

// access enforces @access on every field that carries it. It never returns a
// silent nil: a refused field fails with UNAUTHENTICATED (no valid caller) or
// FORBIDDEN (a valid caller without the right), so gqlgen nulls that field and
// the rest of the answer still comes.
func access(ctx context.Context, _ any, next graphql.Resolver, requires model.Access) (any, error) {
	caller := model.CallerFromContext(ctx)
	switch requires {
	case model.AccessPublic:
		return next(ctx)
	case model.AccessAdmin:
		if caller.Admin {
			return next(ctx)
		}
		if !caller.Presented {
			return nil, model.Errorf(model.CodeUnauthenticated, "this field needs an admin API key (Authorization: Bearer <admin key>)")
		}
		if _, err := caller.Session(); err != nil {
			return nil, err
		}
		return nil, model.Errorf(model.CodeForbidden, "this field is for admins only")
	case model.AccessSession:
		if _, err := caller.Session(); err != nil {
			var e *model.Error
			if errors.As(err, &e) {
				return nil, e
			}
			return nil, err
		}
		return next(ctx)
	default:
		return nil, model.Errorf(model.CodeForbidden, "unknown access requirement %q", requires)
	}
}
