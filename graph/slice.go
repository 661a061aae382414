package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
)

// marshalSlice marshals a list of objects in order on the calling
// goroutine. gqlgen's generated code calls graphql.MarshalSliceConcurrently,
// which starts a goroutine per element; go generate rewrites those calls to
// this one (see resolver.go). Our lists do not need the concurrency: the
// relations a list of identities shows are loaded with it
// (selectedRelations), and a list of sessions shares its one identity
// (shareIdentity), so marshalling an element reads nothing; a goroutine per
// element only added the cost of starting it and growing its stack (a third
// of a 250-identity page's marshalling, measured). Panics are recovered per
// element as gqlgen's version does, nulling the list.
func marshalSlice(ctx context.Context, length int, _ int64, omitPanicHandler bool, marshalElement func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, length)
	failed := false
	for i := range length {
		fc := &graphql.FieldContext{Index: &i}
		childCtx := graphql.WithFieldContext(ctx, fc)
		if omitPanicHandler {
			ret[i] = marshalElement(childCtx, i)
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					graphql.AddError(childCtx, graphql.Recover(childCtx, r))
					failed = true
				}
			}()
			ret[i] = marshalElement(childCtx, i)
		}()
	}
	if failed {
		return nil
	}
	return ret
}
