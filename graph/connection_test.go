package graph

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/identityd/identityd/model"
)

// fieldContext is the context the resolver of the operation's first root
// field runs in.
func fieldContext(t *testing.T, query string) context.Context {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(schema(t), query)
	if errs != nil {
		t.Fatalf("query does not validate: %v", errs)
	}
	f := doc.Operations[0].SelectionSet[0].(*ast.Field)
	ctx := graphql.WithOperationContext(context.Background(), &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0]})
	return graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: f, Selections: f.SelectionSet}})
}

// TestSelectedPageExtras: the count and the probe before the cursor run
// exactly when the operation shows their fields, however it selects them.
func TestSelectedPageExtras(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		want        model.PageExtras
	}{
		{"none", `{ identities { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }`, model.PageExtras{}},
		{"totalCount", `{ identities { totalCount } }`, model.PageExtras{TotalCount: true}},
		{"isTotalCountExact alone", `{ identities { exact: isTotalCountExact } }`, model.PageExtras{TotalCount: true}},
		{"hasPreviousPage", `{ identities { pageInfo { hasPreviousPage } } }`, model.PageExtras{HasPrevious: true}},
		{"through fragments", `{ identities { ...C } } fragment C on IdentityConnection { n: totalCount pageInfo { ...P } } fragment P on PageInfo { hasPreviousPage }`,
			model.PageExtras{TotalCount: true, HasPrevious: true}},
		{"skipped", `{ identities { totalCount @skip(if: true) pageInfo { hasPreviousPage @include(if: false) } } }`, model.PageExtras{}},
		{"a node field named alike is not one", `{ sessions { edges { node { identity { id } } } } }`, model.PageExtras{}},
		{"sessions", `{ sessions(first: 5) { totalCount pageInfo { hasPreviousPage } } }`, model.PageExtras{TotalCount: true, HasPrevious: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := "IdentityConnection"
			if f := graphql.GetFieldContext(fieldContext(t, tc.query)); f.Field.Name == "sessions" {
				conn = "SessionConnection"
			}
			if got := selectedPageExtras(fieldContext(t, tc.query), conn); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSelectsPath: the identities of a page of sessions are read in bulk
// only when some node's identity is selected.
func TestSelectsPath(t *testing.T) {
	path := []string{"SessionConnection", "edges", "SessionEdge", "node", "Session", "identity"}
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{`{ sessions { edges { node { id } } } }`, false},
		{`{ sessions { totalCount } }`, false},
		{`{ sessions { edges { node { identity { id } } } } }`, true},
		{`{ sessions { e: edges { n: node { ... on Session { i: identity { id } } } } } }`, true},
		{`{ sessions { ...E } } fragment E on SessionConnection { edges { node { ...S } } } fragment S on Session { identity { traits } }`, true},
	} {
		if got := selectsPath(fieldContext(t, tc.query), path...); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.query, got, tc.want)
		}
	}
	if !selectsPath(context.Background(), path...) {
		t.Error("outside an operation: want true (load rather than miss)")
	}
}
