package graph

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// complexityLimitCode is gqlgen's code for a refused complexity, kept so
// that clients see what they saw from extension.FixedComplexityLimit.
const complexityLimitCode = "COMPLEXITY_LIMIT_EXCEEDED"

// complexityLimit is gqlgen's extension.FixedComplexityLimit with the same
// arithmetic as complexity.Calculate (same numbers, same code), but each
// fragment's complexity is worked out once per request instead of once per
// spread. gqlgen's walk re-walks a fragment at every spread, so a document
// of thirty fragments each spreading the one before twice costs it 2^30
// steps. docLimits bounds the expanded fields before this runs, which bounds
// gqlgen's walk as well, but not the spreads between them (a chain of
// single spreads under each field multiplies the walk without adding
// fields), so the walk itself is memoised here. A fragment's complexity
// depends only on its own selections and the request's variables, so the
// memo gives the same number. The walk watches the cpu_budget and the
// request's context like every other walk of ours.
type complexityLimit struct {
	limit     int
	cpuBudget time.Duration
	es        graphql.ExecutableSchema
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*complexityLimit)(nil)

func (*complexityLimit) ExtensionName() string { return "ComplexityLimit" }

func (c *complexityLimit) Validate(es graphql.ExecutableSchema) error {
	if es == nil {
		return errors.New("complexity limit: no schema")
	}
	c.es = es
	return nil
}

func (c *complexityLimit) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	w := complexityWalker{es: c.es, schema: c.es.Schema(), vars: rc.Variables, budget: newBudget(ctx, c.cpuBudget)}
	n, err := w.selections(ctx, rc.Operation.SelectionSet)
	if err != nil {
		return err
	}
	if n > c.limit {
		return limitError(complexityLimitCode, "the operation has complexity %s, more than graphql.limits.max_complexity (%d)", num(n), c.limit)
	}
	return nil
}

type complexityWalker struct {
	es     graphql.ExecutableSchema
	schema *ast.Schema
	vars   map[string]any
	budget *budget
	memo   map[*ast.FragmentDefinition]int // made on the first spread
}

// selections is complexity.Calculate's selectionSetComplexity, memoised.
func (w *complexityWalker) selections(ctx context.Context, set ast.SelectionSet) (int, *gqlerror.Error) {
	var total int
	for _, sel := range set {
		if err := w.budget.spend(); err != nil {
			return 0, err
		}
		switch s := sel.(type) {
		case *ast.Field:
			def := w.schema.Types[s.Definition.Type.Name()]
			if def.Name == "__Schema" {
				continue
			}
			var child int
			switch def.Kind {
			case ast.Object, ast.Interface, ast.Union:
				var err *gqlerror.Error
				if child, err = w.selections(ctx, s.SelectionSet); err != nil {
					return 0, err
				}
			}
			args := s.ArgumentMap(w.vars)
			var fc int
			if s.ObjectDefinition.Kind == ast.Interface {
				// An interface's field costs what its dearest implementation
				// does.
				for _, t := range w.schema.GetPossibleTypes(s.ObjectDefinition) {
					fc = max(fc, w.field(ctx, t, s.Name, child, args))
				}
			} else {
				fc = w.field(ctx, s.ObjectDefinition, s.Name, child, args)
			}
			total = safeAdd(total, fc)
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			n, ok := w.memo[s.Definition]
			if !ok {
				var err *gqlerror.Error
				if n, err = w.selections(ctx, s.Definition.SelectionSet); err != nil {
					return 0, err
				}
				if w.memo == nil {
					w.memo = map[*ast.FragmentDefinition]int{}
				}
				w.memo[s.Definition] = n
			}
			total = safeAdd(total, n)
		case *ast.InlineFragment:
			n, err := w.selections(ctx, s.SelectionSet)
			if err != nil {
				return 0, err
			}
			total = safeAdd(total, n)
		}
	}
	return total, nil
}

// field is complexity.Calculate's fieldComplexity with its default options:
// the schema's own complexity function when it has one, else one for the
// field plus its children.
func (w *complexityWalker) field(ctx context.Context, def *ast.Definition, field string, child int, args map[string]any) int {
	if n, ok := w.es.Complexity(ctx, def.Name, field, child, args); ok && n >= 1 {
		return n
	}
	// gqlgen's default options give scalars and enums 1, like any field.
	return safeAdd(1, child)
}

// safeAdd adds without overflowing and ignores negative operands, as
// gqlgen's complexity package does, so that no sum can wrap below a limit.
func safeAdd(a, b int) int {
	switch {
	case a < 0 && b < 0:
		return 1
	case a < 0:
		return b
	case b < 0:
		return a
	}
	if c := a + b; c >= a {
		return c
	}
	return int(^uint(0) >> 1)
}
