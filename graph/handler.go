package graph

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
)

// HandlerConfig tunes the GraphQL endpoint.
type HandlerConfig struct {
	Introspection bool
	Limits        Limits
	Logger        *slog.Logger
}

// Limits bound the work one request can ask for (config graphql.limits.*):
// see the config's GraphQLLimits for each. The Admin ones apply to callers
// with a valid admin key.
type Limits struct {
	MaxBodyBytes, AdminMaxBodyBytes int64
	MaxTokens, AdminMaxTokens       int
	MaxDepth                        int
	MaxComplexity                   int
	MaxFields                       int
	MaxAliases, AdminMaxAliases     int
	MaxRootFields                   int
	MaxDirectives                   int
	MaxVariables                    int
	CPUBudget                       time.Duration
}

// NewHandler builds the /graphql endpoint: POST (and GET for queries only),
// a parsed-query cache, depth, literal and complexity guards, and an error
// presenter and recover func that never show internals to a client.
func NewHandler(r *Resolver, cfg HandlerConfig) http.Handler {
	es := NewExecutableSchema(Config{
		Resolvers:  r,
		Directives: DirectiveRoot{Access: access},
	})
	srv := handler.New(es)
	srv.AddTransport(getTransport{})
	srv.AddTransport(postTransport{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	// The guard must run before the complexity limit: computing complexity
	// reads argument values, which is where a bad literal would panic.
	srv.Use(queryGuard{maxDepth: cfg.Limits.MaxDepth})
	srv.Use(extension.FixedComplexityLimit(cfg.Limits.MaxComplexity))
	srv.SetErrorPresenter(errorPresenter(cfg.Logger))
	srv.SetRecoverFunc(recoverFunc(cfg.Logger))

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength > cfg.Limits.AdminMaxBodyBytes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"errors":[{"message":"the request body is larger than %d bytes","extensions":{"code":"BAD_USER_INPUT"}}]}`, cfg.Limits.AdminMaxBodyBytes)
			return
		}
		// A body without a length is cut off at the limit all the same.
		req.Body = http.MaxBytesReader(w, req.Body, cfg.Limits.AdminMaxBodyBytes)
		srv.ServeHTTP(w, req)
	})
}

// getTransport is gqlgen's GET transport with one change: a mutation sent
// with GET answers 405 Method Not Allowed (with Allow: POST) rather than 406,
// as the GraphQL-over-HTTP spec asks. It never runs the mutation either way.
type getTransport struct{ transport.GET }

func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.GET.Do(&methodNotAllowedWriter{ResponseWriter: w}, r, exec)
}

type methodNotAllowedWriter struct{ http.ResponseWriter }

func (w *methodNotAllowedWriter) WriteHeader(code int) {
	if code == http.StatusNotAcceptable {
		w.Header().Set("Allow", "POST")
		code = http.StatusMethodNotAllowed
	}
	w.ResponseWriter.WriteHeader(code)
}
