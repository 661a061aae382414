package graph

import (
	"fmt"
	"log/slog"
	"net/http"

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
	MaxBodyBytes  int64
	MaxDepth      int
	MaxComplexity int
	Logger        *slog.Logger
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
	srv.Use(queryGuard{maxDepth: cfg.MaxDepth})
	srv.Use(extension.FixedComplexityLimit(cfg.MaxComplexity))
	srv.SetErrorPresenter(errorPresenter(cfg.Logger))
	srv.SetRecoverFunc(recoverFunc(cfg.Logger))

	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength > cfg.MaxBodyBytes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"errors":[{"message":"the request body is larger than %d bytes","extensions":{"code":"BAD_USER_INPUT"}}]}`, cfg.MaxBodyBytes)
			return
		}
		// A body without a length is cut off at the limit all the same.
		req.Body = http.MaxBytesReader(w, req.Body, cfg.MaxBodyBytes)
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
