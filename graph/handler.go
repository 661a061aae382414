package graph

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/model"
)

// HandlerConfig tunes the GraphQL endpoint.
type HandlerConfig struct {
	Introspection bool
	// RequireAAL2 refuses (SESSION_AAL2_REQUIRED) sessions that have not
	// used their identity's second factor, on every session field but
	// those that finish or abandon signing in: session.whoami.required_aal
	// highest_available.
	RequireAAL2 bool
	Limits      Limits
	Logger      *slog.Logger
}

// Limits bound the work one request can ask for (config graphql.limits.*;
// see the config's GraphQLLimits for each). The Admin ones apply to callers
// with a valid admin key, which the Auth middleware in front has checked.
type Limits struct {
	// MaxBodyBytes and AdminMaxBodyBytes cap the request body. An admin's
	// import of many identities fits the larger one because the
	// identities travel as a variable (JSON, which only the body limit
	// bounds and which gqlgen decodes in one linear pass), not as literals
	// in the query text, where every brace, name and value is a token
	// counted against AdminMaxTokens and walked by the parser, the
	// validator and our checks.
	MaxBodyBytes, AdminMaxBodyBytes int64
	// MaxTokens and AdminMaxTokens cap the lexer tokens of the query.
	MaxTokens, AdminMaxTokens int
	MaxDepth                  int
	MaxComplexity             int
	// MaxFields caps the fields of the whole document with every fragment
	// expanded (every spread counted), which bounds both execution and
	// gqlparser's pairwise comparison of same-named fields.
	MaxFields                   int
	MaxAliases, AdminMaxAliases int
	MaxRootFields               int
	MaxDirectives               int
	MaxVariables                int
	// MaxFragments caps the fragment definitions of a document: gqlparser
	// compares the fragments spread in one selection set pairwise.
	MaxFragments int
	// CPUBudget is how long our checks of one request may run.
	CPUBudget time.Duration
}

// body is the caller's body limit and its config key.
func (l Limits) body(admin bool) (int64, string) {
	if admin {
		return l.AdminMaxBodyBytes, bodyLimitKey(admin)
	}
	return l.MaxBodyBytes, bodyLimitKey(admin)
}

func bodyLimitKey(admin bool) string {
	if admin {
		return "admin_max_body_bytes"
	}
	return "max_body_bytes"
}

// registerLimitCodes tells gqlgen that our refusals are protocol errors, so
// that its GET transport, like our POST one, answers them with a 4xx.
var registerLimitCodes sync.Once

// NewHandler builds the /graphql endpoint: POST (and GET for queries only),
// a parsed-query cache, the request limits, the CSRF check for cookie
// sessions, and an error presenter and recover func that never show
// internals to a client. It expects the Auth middleware in front, which
// says whether the caller is an admin.
//
// The limits run in this order, each before the work it bounds: the body
// limit as the body is read; the token count and the document checks
// (docLimits) before gqlgen parses and validates; the complexity limit
// after validation (it needs the schema's types), on a document whose size
// is bounded by then.
func NewHandler(r *Resolver, cfg HandlerConfig) http.Handler {
	registerLimitCodes.Do(func() {
		for _, c := range limitCodes {
			errcode.RegisterErrorType(c, errcode.KindProtocol)
		}
		errcode.RegisterErrorType(codeIntrospectionDisabled, errcode.KindProtocol)
	})
	es := NewExecutableSchema(Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Access: accessDirective(cfg.RequireAAL2)},
	})
	srv := handler.New(es)
	srv.AddTransport(getTransport{})
	srv.AddTransport(postTransport{})
	// Last: it takes whatever the two before refused, to say what they take.
	srv.AddTransport(otherRequests{})
	srv.SetQueryCache(newQueryCache[*ast.QueryDocument]())
	// docLimits has counted the tokens against the caller's own limit
	// before gqlgen parses; gqlgen's limit is only a backstop.
	srv.SetParserTokenLimit(max(cfg.Limits.MaxTokens, cfg.Limits.AdminMaxTokens))
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(introspectionOff{})
	}
	srv.Use(newDocLimits(cfg.Limits))
	srv.Use(csrfGuard{})
	srv.Use(&complexityLimit{limit: cfg.Limits.MaxComplexity, cpuBudget: cfg.Limits.CPUBudget})
	srv.SetErrorPresenter(errorPresenter(cfg.Logger))
	srv.SetRecoverFunc(recoverFunc(cfg.Logger))

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		limit, key := cfg.Limits.body(model.CallerFromContext(req.Context()).Admin)
		if req.ContentLength > limit {
			w.Header().Set("Content-Type", contentTypeJSON)
			writeBodyTooLarge(w, limit, key)
			return
		}
		// A body without a length is cut off at the limit all the same
		// (postTransport answers 413 then too).
		req.Body = http.MaxBytesReader(w, req.Body, limit)
		srv.ServeHTTP(w, req)
	})
}

// writeBodyTooLarge answers 413 naming the limit and its config key.
func writeBodyTooLarge(w http.ResponseWriter, limit int64, key string) {
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, `{"errors":[{"message":"the request body is larger than graphql.limits.%s (%d bytes)","extensions":{"code":"%s"}}],"data":null}`, key, limit, codeTooLarge)
}

// getTransport is gqlgen's GET transport with one change: a mutation sent
// with GET answers 405 Method Not Allowed (with Allow: POST) rather than 406,
// as the GraphQL-over-HTTP spec asks. It never runs the mutation either way.
type getTransport struct{ transport.GET }

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.GET.Do(&methodNotAllowedWriter{ResponseWriter: w}, r, boundedExecutor{exec})
}

// boundedExecutor answers a refused request with at most maxErrors errors,
// for gqlgen's GET transport (postTransport bounds them itself).
type boundedExecutor struct{ graphql.GraphExecutor }

func (e boundedExecutor) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	rc, errs := e.GraphExecutor.CreateOperationContext(ctx, params)
	return rc, boundErrors(errs)
}

type methodNotAllowedWriter struct{ http.ResponseWriter }

func (w *methodNotAllowedWriter) WriteHeader(code int) {
	if code == http.StatusNotAcceptable {
		w.Header().Set("Allow", "POST")
		code = http.StatusMethodNotAllowed
	}
	w.ResponseWriter.WriteHeader(code)
}

// codeIntrospectionDisabled refuses a query for __schema or __type when
// serve.introspection is off. A protocol error, so it answers 422 (400
// under application/graphql-response+json) before anything runs.
const codeIntrospectionDisabled = "INTROSPECTION_DISABLED"

// introspectionOff refuses, before execution, an operation that asks for
// __schema or __type. Without it gqlgen runs the operation and its
// introspection resolvers fail with a plain error, which the error
// presenter can only take for an internal failure: the client saw
// INTERNAL_SERVER_ERROR and the log an error, for a request the server
// refuses on purpose. __typename is not introspection of the schema and
// still works, as gqlgen has it.
type introspectionOff struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = introspectionOff{}

func (introspectionOff) ExtensionName() string                   { return "IntrospectionOff" }
func (introspectionOff) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext runs after validation, on the operation that is
// about to run: fragments exist and do not cycle, and the document's size
// is bounded by docLimits. Each fragment is looked at once.
func (introspectionOff) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	seen := map[string]bool{}
	var find func(ast.SelectionSet) *ast.Field
	find = func(set ast.SelectionSet) *ast.Field {
		for _, sel := range set {
			var inner ast.SelectionSet
			switch x := sel.(type) {
			case *ast.Field:
				if x.Name == "__schema" || x.Name == "__type" {
					return x
				}
				inner = x.SelectionSet
			case *ast.InlineFragment:
				inner = x.SelectionSet
			case *ast.FragmentSpread:
				if seen[x.Name] {
					continue
				}
				seen[x.Name] = true
				if f := rc.Doc.Fragments.ForName(x.Name); f != nil {
					inner = f.SelectionSet
				}
			}
			if f := find(inner); f != nil {
				return f
			}
		}
		return nil
	}
	f := find(rc.Operation.SelectionSet)
	if f == nil {
		return nil
	}
	e := gqlerror.Errorf("introspection is disabled on this server (config key serve.introspection), so %s cannot be queried; __typename still answers", f.Name)
	if f.Position != nil {
		e.Locations = []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}
	}
	errcode.Set(e, codeIntrospectionDisabled)
	return e
}
