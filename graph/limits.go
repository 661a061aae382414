package graph

import (
	"context"
	"math/big"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/model"
)

// queryGuard runs before anything reads the operation's arguments. It refuses
// operations nested deeper than maxDepth, and number literals written inline
// that cannot be kept exactly (gqlparser reads them into int64 or float64 and
// panics on overflow): JSON numbers must survive as written, so such a number
// has to come in a variable, where it is kept exactly.
type queryGuard struct{ maxDepth int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = queryGuard{}

func (queryGuard) ExtensionName() string                   { return "QueryGuard" }
func (queryGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g queryGuard) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	op := rc.Doc.Operations.ForName(rc.OperationName)
	if op == nil {
		return nil
	}
	if op.Operation == ast.Mutation {
		if c := model.CallerFromContext(ctx); c.ViaCookie && !c.CSRFValid {
			e := gqlerror.Errorf("a mutation authenticated by the session cookie needs the %s header (the csrfToken that login returned)", csrfHeader)
			e.Extensions = map[string]any{"code": string(model.CodeForbidden)}
			return e
		}
		if n := countCredentialChecks(rc.Doc, op.SelectionSet); n > 1 {
			e := gqlerror.Errorf("one request may check credentials at most once (login, register, changeMyPassword); this one does %d times", n)
			e.Extensions = map[string]any{"code": string(model.CodeBadUserInput)}
			return e
		}
	}
	for _, v := range op.VariableDefinitions {
		if err := checkLiteral(v.DefaultValue); err != nil {
			return err
		}
	}
	w := walker{doc: rc.Doc, seen: map[string]int{}}
	depth, err := w.selections(op.SelectionSet, 0)
	if err != nil {
		return err
	}
	if depth > g.maxDepth {
		e := gqlerror.Errorf("operation is nested %d levels deep, more than the limit of %d", depth, g.maxDepth)
		e.Extensions = map[string]any{"code": "QUERY_TOO_DEEP"}
		return e
	}
	return nil
}

type walker struct {
	doc  *ast.QueryDocument
	seen map[string]int // fragment name → depth of its deepest field, memoised
}

// selections returns the depth of the deepest field under set and checks
// every argument literal on the way.
func (w *walker) selections(set ast.SelectionSet, depth int) (int, *gqlerror.Error) {
	deepest := depth
	for _, sel := range set {
		var d int
		var err *gqlerror.Error
		switch s := sel.(type) {
		case *ast.Field:
			for _, a := range s.Arguments {
				if err := checkLiteral(a.Value); err != nil {
					return 0, err
				}
			}
			d, err = w.selections(s.SelectionSet, depth+1)
		case *ast.InlineFragment:
			d, err = w.selections(s.SelectionSet, depth)
		case *ast.FragmentSpread:
			frag := w.doc.Fragments.ForName(s.Name)
			if frag == nil {
				continue
			}
			// The validator has ruled out fragment cycles already.
			sub, ok := w.seen[s.Name]
			if !ok {
				sub, err = w.selections(frag.SelectionSet, 0)
				w.seen[s.Name] = sub
			}
			d = depth + sub
		}
		if err != nil {
			return 0, err
		}
		deepest = max(deepest, d)
	}
	return deepest, nil
}

// checkLiteral refuses inline numbers that would not survive gqlparser's
// conversion exactly.
func checkLiteral(v *ast.Value) *gqlerror.Error {
	if v == nil {
		return nil
	}
	switch v.Kind {
	case ast.IntValue:
		if _, err := strconv.ParseInt(v.Raw, 10, 64); err != nil {
			return literalError(v)
		}
	case ast.FloatValue:
		// float64 keeps a literal exactly enough when it prints back to the
		// same decimal value (0.1 does; 3.14159265358979323846 does not).
		f, err := strconv.ParseFloat(v.Raw, 64)
		if err != nil {
			return literalError(v)
		}
		want, ok1 := new(big.Rat).SetString(v.Raw)
		got, ok2 := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
		if !ok1 || !ok2 || got.Cmp(want) != 0 {
			return literalError(v)
		}
	case ast.ListValue, ast.ObjectValue:
		for _, c := range v.Children {
			if err := checkLiteral(c.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

func literalError(v *ast.Value) *gqlerror.Error {
	e := gqlerror.ErrorPosf(v.Position, "the number %s cannot be kept exactly when written inline; pass it in a variable", v.Raw)
	e.Extensions = map[string]any{"code": string(model.CodeBadUserInput)}
	return e
}

// credentialChecks are the mutation fields that verify or set a password:
// aliases cannot multiply them within one request.
var credentialChecks = map[string]bool{"login": true, "register": true, "changeMyPassword": true}

func countCredentialChecks(doc *ast.QueryDocument, set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if credentialChecks[s.Name] {
				n++
			}
		case *ast.InlineFragment:
			n += countCredentialChecks(doc, s.SelectionSet)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil {
				n += countCredentialChecks(doc, f.SelectionSet)
			}
		}
	}
	return n
}
