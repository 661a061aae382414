package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	coderws "github.com/coder/websocket"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/internal/eventfeed"
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
// subscriptions over WebSocket (graphql-transport-ws) and Server-Sent Events,
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
	// WebSocket handshakes only (subscriptions, graphql-transport-ws).
	srv.AddTransport(newWebsocketTransport(cfg))
	srv.AddTransport(getTransport{})
	// Before postTransport, which would take its requests too: a POST
	// that asks for text/event-stream (GraphQL over SSE).
	srv.AddTransport(sseTransport{SSE: transport.SSE{KeepAlivePingInterval: keepAliveInterval}})
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
	srv.Use(feedDrops{present: errorPresenter(cfg.Logger)})
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

// Subscriptions (identityEvents) are served over WebSocket and SSE.

const (
	// keepAliveInterval is how often an idle stream carries something
	// (an SSE comment, graphql-ws's "ka"), so that proxies keep it open.
	keepAliveInterval = 15 * time.Second
	// wsPingInterval is how often a graphql-transport-ws client is pinged;
	// one that has not answered with a pong two intervals later is
	// disconnected.
	wsPingInterval = 20 * time.Second
	// wsInitTimeout is how long a WebSocket may stay open without its
	// connection_init.
	wsInitTimeout = 10 * time.Second
	// sseWriteTimeout bounds each write to an SSE stream: a client that
	// stops reading is cut off then, not kept forever.
	sseWriteTimeout = time.Minute
)

// websocketTransport is gqlgen's WebSocket transport (graphql-transport-ws,
// and the older graphql-ws) behind an origin check: a browser page may open
// one only from this server's own origin or an allowed one
// (serve.cors.allowed_origins, session.cookie.allowed_origins), never from
// any, since the session cookie goes along with the handshake.
type websocketTransport struct{ transport.Websocket }

func newWebsocketTransport(cfg HandlerConfig) websocketTransport {
	// One message is one operation: the same bound as a request body
	// from anyone but an admin (who sends imports with POST).
	limit := cfg.Limits.MaxBodyBytes
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return websocketTransport{transport.Websocket{
		// The origin was checked by Do, in the words of this API.
		Implementation:        transport.CoderWebsocketImplementation{AcceptOptions: coderws.AcceptOptions{InsecureSkipVerify: true}},
		InitFunc:              websocketInit,
		InitTimeout:           wsInitTimeout,
		KeepAlivePingInterval: keepAliveInterval,
		PingPongInterval:      wsPingInterval,
		PayloadReadLimit:      &limit,
		ErrorFunc: func(ctx context.Context, err error) {
			if !errors.Is(err, context.Canceled) {
				log.Debug("websocket", "request_id", RequestID(ctx), "err", err)
			}
		},
	}}
}

// Supports takes WebSocket handshakes; another upgrade, or a handshake
// without its key, is left to otherRequests, which refuses it.
func (t websocketTransport) Supports(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && r.Header.Get("Sec-WebSocket-Key") != ""
}

func (t websocketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if origin := r.Header.Get("Origin"); origin != "" && !websocketOriginAllowed(r, origin) {
		w.Header().Set("Content-Type", contentTypeJSON)
		w.WriteHeader(http.StatusForbidden)
		e := gqlerror.Errorf("a WebSocket to /graphql is opened only by pages of this server's own origin or of serve.cors.allowed_origins (or session.cookie.allowed_origins); %s is not one", origin)
		e.Extensions = map[string]any{"code": string(model.CodeForbidden)}
		writeResponse(w, &graphql.Response{Errors: gqlerror.List{e}})
		return
	}
	t.Websocket.Do(w, r, exec)
}

// websocketOriginAllowed: the page's origin is the server's own (its host
// is the request's Host) or an allowed one.
func websocketOriginAllowed(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	x := exchangeFrom(r.Context())
	return x != nil && originAllowed(x.cookies.AllowedOrigins, origin)
}

// websocketInit reads credentials from the connection_init payload, which
// is where browsers' WebSocket clients put them (a page cannot set the
// handshake's headers): {"Authorization": "Bearer <admin key or session
// token>"} (also lower-case, or inside "headers"), or {"X-Session-Token":
// "<token>"}. Without any, the handshake's own credentials stand (its
// Authorization header, its session cookie), as the Auth middleware found
// them.
func websocketInit(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	a := authFrom(ctx)
	if a == nil {
		return ctx, nil, nil
	}
	return a.withInitPayload(ctx, p), nil, nil
}

// sseTransport is gqlgen's SSE transport (GraphQL over SSE, distinct
// connections: a POST with Accept: text/event-stream answers a stream of
// "next" events and a "complete"), with the body read as postTransport
// reads it (the body limit answers 413, an undecodable body is refused in
// words and never echoed), and the server's read and write timeouts, made
// for requests, replaced by a bound on each write.
type sseTransport struct{ transport.SSE }

func (t sseTransport) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && t.SSE.Supports(r)
}

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	body, err := io.ReadAll(r.Body)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		w.Header().Set("Content-Type", contentTypeJSON)
		writeBodyTooLarge(w, mbe.Limit, bodyLimitKey(model.CallerFromContext(ctx).Admin))
		return
	}
	msg := ""
	if err != nil {
		msg = fmt.Sprintf("the request body could not be read: %v", err)
	} else if _, m := decodeParams(body); m != "" {
		msg = m
	}
	if msg != "" {
		w.Header().Set("Content-Type", contentTypeJSON)
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{badRequest("%s", msg)}))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc := http.NewResponseController(w)
	// Nothing more is read; an expired read deadline would end the stream.
	_ = rc.SetReadDeadline(time.Time{})
	t.SSE.Do(&sseWriter{ResponseWriter: w, rc: rc}, r, exec)
}

// sseWriter flushes through any wrapper that has Unwrap (the access log's
// does), and bounds each write by sseWriteTimeout.
type sseWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (w *sseWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
	return w.ResponseWriter.Write(p)
}

func (w *sseWriter) Flush() { _ = w.rc.Flush() }

func (w *sseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// feedDrops tells a subscriber why the live feed ended its subscription
// (it fell behind), in an error before the stream ends, on either
// transport.
type feedDrops struct{ present graphql.ErrorPresenterFunc }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = feedDrops{}

func (feedDrops) ExtensionName() string                   { return "FeedDrops" }
func (feedDrops) Validate(graphql.ExecutableSchema) error { return nil }

func (d feedDrops) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	ctx = eventfeed.WithDropNotice(ctx)
	responses := next(ctx)
	done := false
	return func(rctx context.Context) *graphql.Response {
		if done {
			return nil
		}
		resp := responses(rctx)
		if resp != nil {
			return resp
		}
		done = true
		if err := eventfeed.DropNotice(ctx); err != nil {
			return &graphql.Response{Errors: gqlerror.List{d.present(rctx, err)}}
		}
		return nil
	}
}
