package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
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

// shareIdentity gives every session of ss (all of them identityID's) the
// identity, read once with the relations the query selects, when the query
// asks for it: the Session.identity resolver would otherwise read the same
// identity again for each session. An identity that cannot be read now (gone
// since the sessions were listed) is left to that resolver, which reports it
// where it belongs.
func (r *queryResolver) shareIdentity(ctx context.Context, ss []*model.Session, identityID uuid.UUID, err error) ([]*model.Session, error) {
	if err != nil || len(ss) == 0 || !selectsField(ctx, "Session", "identity") {
		return ss, err
	}
	ident, err := r.IdentityService.GetWith(ctx, identityID, selectedRelations(ctx))
	if err != nil {
		return ss, nil
	}
	for _, s := range ss {
		s.Identity = ident
	}
	return ss, nil
}

// selectsField tells whether the current field's selection, through any
// fragment, asks for field of objects of type typ.
func selectsField(ctx context.Context, typ, field string) bool {
	if !graphql.HasOperationContext(ctx) || graphql.GetFieldContext(ctx) == nil {
		return true
	}
	for _, f := range graphql.CollectFieldsCtx(ctx, []string{typ}) {
		if f.Name == field {
			return true
		}
	}
	return false
}
