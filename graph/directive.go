package graph

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"

	"github.com/identityd/identityd/model"
)

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
