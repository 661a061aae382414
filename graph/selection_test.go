package graph

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/identityd/identityd/model"
)

// TestSelectedRelations: the relations loaded with identities are exactly
// the relation fields the operation selects on Identity, however it selects
// them; @skip and @include may over-load, never under-load.
func TestSelectedRelations(t *testing.T) {
	const (
		cred = model.RelationCredentials
		va   = model.RelationVerifiableAddresses
		ra   = model.RelationRecoveryAddresses
	)
	s := schema(t)
	for _, tc := range []struct {
		name  string
		query string
		want  model.Relations
	}{
		{"none", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { id traits } }`, 0},
		{"one", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { id verifiableAddresses { id } } }`, va},
		{"all", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { credentials { type } verifiableAddresses { id } recoveryAddresses { id } } }`, cred | va | ra},
		{"alias", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { mine: recoveryAddresses { id } } }`, ra},
		{"fragment", `query { identity(id: "0190c3b0-0000-7000-8000-000000000000") { ...A } }
			fragment A on Identity { id ...B }
			fragment B on Identity { credentials { type } }`, cred},
		{"inline fragment", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { ... on Identity { verifiableAddresses { id } } } }`, va},
		{"fragment used twice", `query { identity(id: "0190c3b0-0000-7000-8000-000000000000") { ...A ...A } }
			fragment A on Identity { recoveryAddresses { id } }`, ra},
		{"skip over-loads", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { id verifiableAddresses @skip(if: true) { id } } }`, va},
		{"page nodes", `{ identities(first: 250) { edges { cursor node { id credentials { type } } } pageInfo { hasNextPage } } }`, cred},
		{"page without relations", `{ identities { edges { node { id schemaId state traits createdAt updatedAt } } } }`, 0},
		{"page through a fragment on the connection", `query { identities { ...C } }
			fragment C on IdentityConnection { edges { node { ... on Identity { recoveryAddresses { value } } } } }`, ra},
		{"mutation payload", `mutation { createIdentity(input: {traits: {}}) { identity { verifiableAddresses { id } } userErrors { code } } }`, va},
		{"import results", `mutation { importIdentities(input: []) { results { identity { id credentials { type } } } } }`, cred},
		{"a sub-field named like a relation is not one", `{ identity(id: "0190c3b0-0000-7000-8000-000000000000") { credentials { identifiers } } }`, cred},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, errs := gqlparser.LoadQuery(s, tc.query)
			if errs != nil {
				t.Fatalf("query does not validate: %v", errs)
			}
			f := doc.Operations[0].SelectionSet[0].(*ast.Field)
			ctx := graphql.WithOperationContext(context.Background(), &graphql.OperationContext{Doc: doc})
			ctx = graphql.WithFieldContext(ctx, &graphql.FieldContext{Field: graphql.CollectedField{Field: f, Selections: f.SelectionSet}})
			if got := selectedRelations(ctx); got != tc.want {
				t.Errorf("got %03b, want %03b", got, tc.want)
			}
		})
	}
	if got := selectedRelations(context.Background()); got != model.AllRelations {
		t.Errorf("outside a field: got %03b, want every relation", got)
	}
}
