package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/identityd/identityd/model"
)

// identityRelationFields are the Identity fields backed by a relation that
// costs a read of its own.
var identityRelationFields = map[string]model.Relations{
	"credentials":         model.RelationCredentials,
	"verifiableAddresses": model.RelationVerifiableAddresses,
	"recoveryAddresses":   model.RelationRecoveryAddresses,
}

// selectedRelations tells which relations of the identities the current
// field returns its answer shows: every Identity field among credentials,
// verifiableAddresses and recoveryAddresses anywhere under the field (behind
// any alias, fragment or inline fragment, at any depth, so `identities {
// edges { node { … } } }` counts too). Loading them with the identities
// costs one query per relation for a whole page; leaving them to the field
// resolvers would cost one per identity. @skip and @include are not
// evaluated: a relation they leave out is read for nothing, never missed.
func selectedRelations(ctx context.Context) model.Relations {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return model.AllRelations
	}
	var doc *ast.QueryDocument
	if graphql.HasOperationContext(ctx) {
		doc = graphql.GetOperationContext(ctx).Doc
	}
	w := relationWalker{doc: doc, seen: map[string]bool{}}
	w.walk(fc.Field.Selections)
	return w.rels
}

type relationWalker struct {
	doc  *ast.QueryDocument
	seen map[string]bool // fragments walked already
	rels model.Relations
}

func (w *relationWalker) walk(set ast.SelectionSet) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.ObjectDefinition != nil && s.ObjectDefinition.Name == "Identity" {
				w.rels |= identityRelationFields[s.Name]
			}
			w.walk(s.SelectionSet)
		case *ast.InlineFragment:
			w.walk(s.SelectionSet)
		case *ast.FragmentSpread:
			if w.seen[s.Name] {
				continue
			}
			w.seen[s.Name] = true
			def := s.Definition
			if def == nil && w.doc != nil {
				def = w.doc.Fragments.ForName(s.Name)
			}
			if def != nil {
				w.walk(def.SelectionSet)
			}
		}
	}
}
