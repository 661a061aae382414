package graph

import (
	"context"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/lexer"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/identityd/identityd/model"
)

// The codes of the refusals below. Each is registered with gqlgen as a
// protocol error, like a parse or validation failure, so either transport
// answers it with a 4xx (422, or 400 under application/graphql-response+json)
// and nothing of the operation runs.
const (
	codeTooLarge   = "QUERY_TOO_LARGE"
	codeTooComplex = "QUERY_TOO_COMPLEX"
	codeTooDeep    = "QUERY_TOO_DEEP"
	codeCancelled  = "REQUEST_CANCELLED"
)

// docLimits bounds the work a query document can cause, before gqlgen
// parses and validates it. gqlgen calls handler extensions'
// MutateOperationContext only after parse and validation, and gqlparser's
// validation is quadratic in places (OverlappingFieldsCanBeMerged compares
// same-named fields pairwise, and the fragments spread in a selection set
// pairwise; every fragment is walked again for each operation), while a walk
// that expands every fragment spread without memoising it (gqlgen's
// complexity.Calculate, our old credential count) is exponential in the
// number of fragments. So this is an OperationParameterMutator, the one hook
// gqlgen calls before it parses:
//
//  1. count the lexer's tokens (comments included, as gqlparser's own token
//     limit counts them), stopping at the caller's limit (max_tokens, or
//     admin_max_tokens for an admin), and refuse a document whose fragments,
//     counted once per operation, come to more;
//  2. parse, with the same limit, and refuse more than max_fragments;
//  3. walk the document once, each fragment once however often it is spread
//     (memoised), and refuse it at more than max_fields fields with fragments
//     expanded (stopping as soon as it has them), more aliased fields than
//     the caller's alias limit, more than max_root_fields root fields, fields
//     nested deeper than max_depth, more than max_directives directives at
//     one location, more than max_variables variables, a fragment cycle (the
//     validator has not ruled them out yet), more than one credential check
//     in a mutation, or an inline number that cannot be kept exactly
//     (checkLiteral: in field and directive arguments and variable
//     defaults, at any depth of a list or object literal), which must be
//     refused here, before the validator, which would refuse some of them
//     in its own words (or read them as int64 and float64);
//
// every step watching the request's context (ended when the client goes
// away) and the cpu_budget. Only then does gqlgen parse again and validate:
// what validation is quadratic in is bounded by max_fields (same-named
// fields), max_fragments and the tokens counted per operation. The pairwise
// comparison of max_fields same-named fields is the dearest document left,
// tens of milliseconds at the default of 1,000; the cost grows with the
// square of max_fields.
//
// A document's measurements are the same whoever sends it, so they are
// cached by query text beside gqlgen's parsed-document cache: a repeated
// query (whoami) costs one cache lookup and a few comparisons with the
// caller's limits. Only documents within the limits are cached.
type docLimits struct {
	limits Limits
	cache  graphql.Cache[*docStats]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = (*docLimits)(nil)

// docStats is what the limits that differ between callers need to know of
// a document that passed every other check. Exact, so it can be compared
// with either caller's limits.
type docStats struct {
	// tokens is the document's lexer tokens; walkTokens counts each
	// fragment's tokens once more for every operation after the first,
	// because gqlparser validates every fragment an operation uses once per
	// operation.
	tokens, walkTokens int
	operations         int
	// aliases counts aliased fields with fragments expanded.
	aliases int
}

func newDocLimits(l Limits) *docLimits {
	return &docLimits{limits: l, cache: newQueryCache[*docStats]()}
}

// maxCachedQuery is the longest query text the caches keep. The text is the
// key, and the parsed document holds on to it: without a bound, an admin's
// distinct 8 MiB documents would each stay in memory a thousand deep. A
// query people send again and again is far shorter; a longer one is checked
// and parsed each time, which its token limit keeps cheap.
const maxCachedQuery = 16 << 10

// queryCache is gqlgen's LRU cache of a thousand entries, keyed by query
// text, that does not keep queries longer than maxCachedQuery.
type queryCache[T any] struct{ lru *lru.LRU[T] }

func newQueryCache[T any]() queryCache[T] { return queryCache[T]{lru.New[T](1000)} }

func (c queryCache[T]) Get(ctx context.Context, query string) (T, bool) {
	return c.lru.Get(ctx, query)
}

func (c queryCache[T]) Add(ctx context.Context, query string, v T) {
	if len(query) <= maxCachedQuery {
		c.lru.Add(ctx, query, v)
	}
}

func (*docLimits) ExtensionName() string                   { return "DocumentLimits" }
func (*docLimits) Validate(graphql.ExecutableSchema) error { return nil }

// callerLimits are the limits that differ for admins.
type callerLimits struct {
	tokens, aliases       int
	tokensKey, aliasesKey string
}

func (l *docLimits) forCaller(admin bool) callerLimits {
	if admin {
		return callerLimits{l.limits.AdminMaxTokens, l.limits.AdminMaxAliases, "admin_max_tokens", "admin_max_aliases"}
	}
	return callerLimits{l.limits.MaxTokens, l.limits.MaxAliases, "max_tokens", "max_aliases"}
}

// MutateOperationParameters checks the request's document (and the number
// of variables it brings) before gqlgen parses and validates it.
func (l *docLimits) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if n := len(p.Variables); n > l.limits.MaxVariables {
		return limitError(codeTooComplex, "the request has %s variables, more than graphql.limits.max_variables (%d)", num(n), l.limits.MaxVariables)
	}
	lim := l.forCaller(model.CallerFromContext(ctx).Admin)
	st, ok := l.cache.Get(ctx, p.Query)
	if !ok {
		var err *gqlerror.Error
		if st, err = l.measure(ctx, p.Query, lim); err != nil {
			return err
		}
		l.cache.Add(ctx, p.Query, st)
	}
	return st.check(lim)
}

// check compares a document's measurements with the caller's limits.
func (st *docStats) check(lim callerLimits) *gqlerror.Error {
	if err := st.checkTokens(lim); err != nil {
		return err
	}
	if st.aliases > lim.aliases {
		return limitError(codeTooComplex, "the query has %s aliased fields with fragments expanded, more than graphql.limits.%s (%d)", num(st.aliases), lim.aliasesKey, lim.aliases)
	}
	return nil
}

func (st *docStats) checkTokens(lim callerLimits) *gqlerror.Error {
	switch {
	case st.tokens > lim.tokens:
		return limitError(codeTooLarge, "the query has %s tokens, more than graphql.limits.%s (%d)", num(st.tokens), lim.tokensKey, lim.tokens)
	case st.walkTokens > lim.tokens:
		return limitError(codeTooLarge, "the query has %s tokens counting its fragments once for each of its %d operations (validation walks them once per operation), more than graphql.limits.%s (%d)",
			num(st.walkTokens), st.operations, lim.tokensKey, lim.tokens)
	}
	return nil
}

// measure checks a document not seen before: the limits every caller
// shares are checked here, and its measurements returned for the rest.
func (l *docLimits) measure(ctx context.Context, query string, lim callerLimits) (*docStats, *gqlerror.Error) {
	b := newBudget(ctx, l.limits.CPUBudget)
	st, err := countTokens(query, lim, b)
	if err != nil {
		return nil, err
	}
	if err := st.checkTokens(lim); err != nil {
		return nil, err
	}
	doc, perr := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, lim.tokens)
	if perr != nil {
		gerr, ok := perr.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Errorf("%s", perr)
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return nil, gerr
	}
	if n := len(doc.Fragments); n > l.limits.MaxFragments {
		return nil, limitError(codeTooComplex, "the query defines %s fragments, more than graphql.limits.max_fragments (%d)", num(n), l.limits.MaxFragments)
	}
	// The lexer and the parser are linear in the tokens, which are bounded
	// already: the walk, whose cost can grow faster, gets the whole budget,
	// so that a document past a count limit is refused for that limit
	// however slowly a loaded machine parsed it.
	w := &docWalker{limits: &l.limits, budget: newBudget(ctx, l.limits.CPUBudget), frags: make(map[string]*fragState, len(doc.Fragments))}
	for _, f := range doc.Fragments {
		if w.frags[f.Name] != nil {
			// gqlparser would report it too, after validating both.
			e := gqlerror.ErrorPosf(f.Position, "There can be only one fragment named %q.", f.Name)
			errcode.Set(e, errcode.ValidationFailed)
			return nil, e
		}
		w.frags[f.Name] = &fragState{def: f}
	}
	if err := w.document(doc); err != nil {
		return nil, err
	}
	st.aliases = w.aliases
	return st, nil
}

// countTokens counts query's lexer tokens as gqlparser's parser counts them
// (comments included), stopping once there are more than lim allows, and
// the tokens of its fragment definitions: a definition starts at the top
// level with "fragment" (a fragment) or anything else (an operation) and
// ends where its outermost selection set closes. Braces inside arguments
// and variable defaults are values, not selection sets. A lexing error
// ends the count: the parse reports it.
func countTokens(query string, lim callerLimits, b *budget) (*docStats, *gqlerror.Error) {
	st := &docStats{}
	lx := lexer.New(&ast.Source{Input: query})
	var (
		fragTokens      int
		braces, parens  int
		inDef, fragment bool
	)
	for {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			break
		}
		st.tokens++
		if st.tokens > lim.tokens {
			return nil, limitError(codeTooLarge, "the query has more than graphql.limits.%s (%d) tokens", lim.tokensKey, lim.tokens)
		}
		if err := b.spend(); err != nil {
			return nil, err
		}
		switch tok.Kind {
		case lexer.ParenL:
			parens++
		case lexer.ParenR:
			parens--
		case lexer.BraceL:
			if parens == 0 {
				braces++
			}
		case lexer.BraceR:
			if parens == 0 {
				braces--
			}
		}
		if !inDef && braces <= 1 && parens == 0 && (tok.Kind == lexer.Name || tok.Kind == lexer.BraceL) {
			inDef, fragment = true, tok.Kind == lexer.Name && tok.Value == "fragment"
			if !fragment {
				st.operations++
			}
		}
		if fragment {
			fragTokens++
		}
		if inDef && braces == 0 && parens == 0 && tok.Kind == lexer.BraceR {
			inDef, fragment = false, false
		}
	}
	st.walkTokens = st.tokens
	if st.operations > 1 {
		st.walkTokens += (st.operations - 1) * fragTokens
	}
	return st, nil
}

// docWalker walks a parsed, not yet validated document: every operation
// once and every fragment definition once, whatever the number of spreads
// of it, so its work is linear in the document.
type docWalker struct {
	limits  *Limits
	budget  *budget
	frags   map[string]*fragState
	fields  int // with fragments expanded, every operation and unused fragment
	aliases int // likewise
	// inFragment counts the fragments being summarised: their levels are
	// relative to where they are spread, so only an operation's own
	// nesting can be refused as it is walked.
	inFragment int
}

// fragState is a fragment's summary, computed on its first spread.
type fragState struct {
	def      *ast.FragmentDefinition
	visiting bool // on the walk's path: a spread of it now is a cycle
	done     bool
	sum      summary
}

// summary is what a selection set contributes, with fragments expanded.
type summary struct {
	fields, aliases int
	// top is the fields at the set's own level, through inline fragments
	// and spreads (an operation's root fields); creds those of them that
	// check a credential.
	top, creds int
	// depth is the deepest field's level, counting the set's own fields as
	// level 1, and not counting under __schema and __type: introspection
	// reads the schema in memory, nests as deep as type references do (the
	// GraphiQL query is 13 levels), and gqlparser's MaxIntrospectionDepth
	// rule bounds it.
	depth int
}

func (w *docWalker) document(doc *ast.QueryDocument) *gqlerror.Error {
	for _, op := range doc.Operations {
		if err := w.directives(op.Directives); err != nil {
			return err
		}
		if n := len(op.VariableDefinitions); n > w.limits.MaxVariables {
			return limitError(codeTooComplex, "the operation declares %s variables, more than graphql.limits.max_variables (%d)", num(n), w.limits.MaxVariables)
		}
		for _, v := range op.VariableDefinitions {
			if err := w.directives(v.Directives); err != nil {
				return err
			}
			if err := checkLiteral(v.DefaultValue); err != nil {
				return err
			}
		}
		s, err := w.selections(op.SelectionSet, 1, true)
		if err != nil {
			return err
		}
		if err := w.add(s); err != nil {
			return err
		}
		if s.top > w.limits.MaxRootFields {
			return limitError(codeTooComplex, "the operation has %s root fields with fragments expanded, more than graphql.limits.max_root_fields (%d)", num(s.top), w.limits.MaxRootFields)
		}
		if op.Operation == ast.Mutation && s.creds > 1 {
			return limitError(string(model.CodeBadUserInput), "one request may check credentials at most once (login, register, changeMyPassword, verifyAddress, recoverAccount); this one does %d times", s.creds)
		}
	}
	// gqlparser validates fragments no operation uses as well.
	for _, f := range doc.Fragments {
		if st := w.frags[f.Name]; !st.done {
			s, err := w.fragment(st)
			if err != nil {
				return err
			}
			if err := w.add(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// add counts a whole operation's (or unused fragment's) fields.
func (w *docWalker) add(s summary) *gqlerror.Error {
	w.fields += s.fields
	w.aliases += s.aliases
	return w.checkFields(w.fields)
}

func (w *docWalker) checkFields(n int) *gqlerror.Error {
	if n > w.limits.MaxFields {
		return limitError(codeTooComplex, "the query has at least %s fields with fragments expanded, more than graphql.limits.max_fields (%d)", num(n), w.limits.MaxFields)
	}
	return nil
}

// selections summarises set, whose fields are at level. The walk stops as
// soon as the fields so far are too many or too deep, so no count it makes
// exceeds twice max_fields: its numbers cannot overflow.
func (w *docWalker) selections(set ast.SelectionSet, level int, countDepth bool) (summary, *gqlerror.Error) {
	var s summary
	for _, sel := range set {
		if err := w.budget.spend(); err != nil {
			return s, err
		}
		switch x := sel.(type) {
		case *ast.Field:
			if err := w.directives(x.Directives); err != nil {
				return s, err
			}
			for _, a := range x.Arguments {
				if err := checkLiteral(a.Value); err != nil {
					return s, err
				}
			}
			s.fields++
			s.top++
			if x.Alias != x.Name {
				s.aliases++
			}
			if credentialChecks[x.Name] {
				s.creds++
			}
			fieldDepth := countDepth && x.Name != "__schema" && x.Name != "__type"
			if fieldDepth {
				s.depth = max(s.depth, level)
				if level > w.limits.MaxDepth && w.inFragment == 0 {
					return s, depthError(level)
				}
			}
			if len(x.SelectionSet) > 0 {
				c, err := w.selections(x.SelectionSet, level+1, fieldDepth)
				if err != nil {
					return s, err
				}
				s.fields += c.fields
				s.aliases += c.aliases
				s.depth = max(s.depth, c.depth)
			}
		case *ast.InlineFragment:
			if err := w.directives(x.Directives); err != nil {
				return s, err
			}
			c, err := w.selections(x.SelectionSet, level, countDepth)
			if err != nil {
				return s, err
			}
			s.merge(c)
		case *ast.FragmentSpread:
			if err := w.directives(x.Directives); err != nil {
				return s, err
			}
			st := w.frags[x.Name]
			if st == nil {
				continue // unknown: validation reports it
			}
			c, err := w.fragment(st)
			if err != nil {
				return s, err
			}
			if countDepth && c.depth > 0 {
				if d := level - 1 + c.depth; d > w.limits.MaxDepth {
					return s, depthError(d)
				}
				c.depth += level - 1
			} else {
				c.depth = 0
			}
			s.merge(c)
		}
		if err := w.checkFields(s.fields); err != nil {
			return s, err
		}
	}
	return s, nil
}

// merge adds a fragment's selections, which stand at s's own level.
func (s *summary) merge(c summary) {
	s.fields += c.fields
	s.aliases += c.aliases
	s.top += c.top
	s.creds += c.creds
	s.depth = max(s.depth, c.depth)
}

// fragment summarises a fragment once, with its depth relative to the
// level it is spread at. A fragment spread within itself is refused here:
// validation, which would refuse it too, has not run yet, and an unguarded
// walk would not end.
func (w *docWalker) fragment(st *fragState) (summary, *gqlerror.Error) {
	if st.done {
		return st.sum, nil
	}
	if st.visiting {
		e := gqlerror.ErrorPosf(st.def.Position, "Cannot spread fragment %q within itself.", st.def.Name)
		errcode.Set(e, errcode.ValidationFailed)
		return summary{}, e
	}
	st.visiting = true
	if err := w.directives(st.def.Directives); err != nil {
		return summary{}, err
	}
	w.inFragment++
	s, err := w.selections(st.def.SelectionSet, 1, true)
	w.inFragment--
	if err != nil {
		return summary{}, err
	}
	st.visiting, st.done, st.sum = false, true, s
	return s, nil
}

func (w *docWalker) directives(ds ast.DirectiveList) *gqlerror.Error {
	if n := len(ds); n > w.limits.MaxDirectives {
		e := limitError(codeTooComplex, "the query has %s directives at one location, more than graphql.limits.max_directives (%d)", num(n), w.limits.MaxDirectives)
		if p := ds[0].Position; p != nil {
			e.Locations = []gqlerror.Location{{Line: p.Line, Column: p.Column}}
		}
		return e
	}
	// A directive's arguments are literals like a field's: the same
	// promise holds for them (no schema directive takes a number a client
	// could write inline today, but the validator would answer with its
	// own words, not the advice to use a variable).
	for _, d := range ds {
		for _, a := range d.Arguments {
			if err := checkLiteral(a.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

func depthError(depth int) *gqlerror.Error {
	return limitError(codeTooDeep, "the query nests fields at least %d levels deep, more than graphql.limits.max_depth", depth)
}

// budget is the time one request's checks may take (cpu_budget): wall
// time, which is never less than the CPU they use, so the bound holds on a
// busy machine too, and the request's context, which ends when the client
// goes away. It is looked at every 256 steps, which keeps it off the
// profile.
type budget struct {
	ctx      context.Context
	limit    time.Duration
	deadline time.Time
	steps    int
}

func newBudget(ctx context.Context, limit time.Duration) *budget {
	return &budget{ctx: ctx, limit: limit, deadline: time.Now().Add(limit)}
}

func (b *budget) spend() *gqlerror.Error {
	b.steps++
	if b.steps&255 != 0 {
		return nil
	}
	if b.ctx.Err() != nil {
		return limitError(codeCancelled, "the request was cancelled")
	}
	if time.Now().After(b.deadline) {
		return limitError(codeTooComplex, "checking the query took longer than graphql.limits.cpu_budget (%s)", b.limit)
	}
	return nil
}

// limitError is a refusal with its code; the message names the limit and
// its config key, so that a client, or whoever runs the server, knows what
// to change.
func limitError(code, format string, args ...any) *gqlerror.Error {
	e := gqlerror.Errorf(format, args...)
	errcode.Set(e, code)
	return e
}

// num writes n with thousands separators, as the messages do.
func num(n int) string {
	s := strconv.Itoa(n)
	if n < 0 || len(s) <= 3 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// csrfGuard runs once the operation is known: a mutation authenticated by
// the session cookie needs the session's anti-CSRF token.
type csrfGuard struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = csrfGuard{}

func (csrfGuard) ExtensionName() string                   { return "CSRFGuard" }
func (csrfGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (csrfGuard) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Mutation {
		return nil
	}
	if c := model.CallerFromContext(ctx); c.ViaCookie && !c.CSRFValid {
		e := gqlerror.Errorf("a mutation authenticated by the session cookie needs the %s header (the csrfToken that login returned)", csrfHeader)
		e.Extensions = map[string]any{"code": string(model.CodeForbidden)}
		return e
	}
	return nil
}

// checkLiteral refuses inline numbers that would not survive gqlparser's
// conversion exactly (it reads them into int64 or float64, and panics on
// overflow where gqlgen's complexity reads arguments): JSON numbers must
// survive as written, so such a number has to come in a variable, where it
// is kept exactly.
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
	e := gqlerror.ErrorPosf(v.Position, "the number %s cannot be kept exactly when written inline in the query; pass the value in a variable (sent in the request's \"variables\"), where numbers are kept as written", v.Raw)
	e.Extensions = map[string]any{"code": string(model.CodeBadUserInput)}
	return e
}

// credentialChecks are the mutation fields that verify or set a password,
// check a one-time, TOTP or lookup code, or verify a passkey assertion or an
// ID token: aliases cannot multiply them within one request.
var credentialChecks = map[string]bool{
	"login": true, "register": true, "changeMyPassword": true, "verifyAddress": true, "recoverAccount": true,
	"loginWithCode": true, "loginSecondFactor": true, "confirmTotp": true,
	"finishPasskeyLogin": true, "loginWithIdToken": true,
}

// limitCodes are registered with gqlgen as protocol errors (see the codes).
var limitCodes = []string{codeTooLarge, codeTooComplex, codeTooDeep, codeCancelled, complexityLimitCode}
