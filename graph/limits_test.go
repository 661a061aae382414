package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/introspection"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/identityd/identityd/graph/hostile"
	"github.com/identityd/identityd/model"
)

// answer is a GraphQL answer with its HTTP status.
type answer struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	took time.Duration
}

func (a answer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

func (a answer) message() string {
	if len(a.Errors) == 0 {
		return ""
	}
	return a.Errors[0].Message
}

// postBody sends body to h as a POST with the bearer token (none when empty).
func postBody(t testing.TB, h http.Handler, token string, body []byte) answer {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, req)
	a := answer{status: w.Code, took: time.Since(start)}
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %.300s", w.Code, err, w.Body.Bytes())
	}
	return a
}

func post(t testing.TB, h http.Handler, token, query string, vars map[string]any) answer {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, h, token, body)
}

// TestDocumentLimits sends each shape the limits exist for, as an anonymous
// caller and as an admin, and wants it refused with its code and a message
// naming the config key, or answered.
func TestDocumentLimits(t *testing.T) {
	h := newTestHandler(t, testLimits)
	multiOp := func(ops int, fragTokens int) string {
		var b strings.Builder
		for i := range ops {
			fmt.Fprintf(&b, "query Q%d { ...F } ", i)
		}
		// "fragment F on Query { b { c: name } }" is 12 tokens; each
		// further "name" one more.
		b.WriteString(`fragment F on Query { b: __type(name: "Query") { c: name` + strings.Repeat(" name", fragTokens-16) + " } }")
		return b.String()
	}
	const user, admin = testUserToken, testAdminKey
	tests := []struct {
		name, query string
		vars        map[string]any
		token       string
		code, key   string // want; "" answers
	}{
		{"whoami", `{ whoami { id identity { id traits } } }`, nil, user, "", ""},
		{"graphiql introspection", introspection.Query, nil, "", "", ""},

		{"fragment bomb", hostile.FragmentBomb("query", "Query", 30), nil, "", codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"fragment bomb, admin", hostile.FragmentBomb("query", "Query", 30), nil, admin, codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"mutation fragment bomb", hostile.FragmentBomb("mutation", "Mutation", 30), nil, "", codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"fragment bomb within the limits", strings.Replace(hostile.FragmentBomb(`query`, "__Type", 9), "{ ...F9 }", `{ __type(name: "Query") { ...F9 } }`, 1), nil, "", "", ""},
		{"1,001 fields", hostile.Below(1000), nil, admin, codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"1,000 fields", hostile.Below(999), nil, "", "", ""},

		{"10,000 __typename", hostile.RepeatTypename(10000), nil, "", codeTooLarge, "graphql.limits.max_body_bytes (65536 bytes)"},
		{"10,000 __typename, admin", hostile.RepeatTypename(10000), nil, admin, codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"20,000 __typename, admin", hostile.RepeatTypename(20000), nil, admin, codeTooComplex, "graphql.limits.max_fields (1000)"},
		{"5,001 tokens", "{ a" + strings.Repeat(" b", 4998) + " }", nil, "", codeTooLarge, "graphql.limits.max_tokens (5000)"},
		{"60,000 tokens, admin", hostile.RepeatTypename(60000), nil, admin, codeTooLarge, "graphql.limits.admin_max_tokens (50000)"},
		{"tokens of comments", "{ __typename }" + strings.Repeat("\n#", 5000), nil, "", codeTooLarge, "graphql.limits.max_tokens (5000)"},
		{"fragments walked once per operation", multiOp(4, 2000), nil, "", codeTooLarge, "once for each of its 4 operations"},
		{"fragments, one operation", multiOp(1, 1000), nil, "", "", ""},

		{"20,000 variables declared", hostile.Variables(20000), nil, admin, codeTooLarge, "graphql.limits.admin_max_tokens"},
		{"10,000 variables declared", hostile.Variables(10000), nil, admin, codeTooComplex, "graphql.limits.max_variables (50)"},
		{"51 variables declared", hostile.Variables(51), nil, "", codeTooComplex, "graphql.limits.max_variables (50)"},
		{"20,000 variables sent", `{ __typename }`, func() map[string]any {
			v := map[string]any{}
			for i := range 20000 {
				v[fmt.Sprint("v", i)] = i
			}
			return v
		}(), admin, codeTooComplex, "graphql.limits.max_variables (50)"},

		{"deep nesting", hostile.Nested(13), nil, "", codeTooDeep, "graphql.limits.max_depth"},
		{"deep nesting through fragments", `{ whoami { ...A } } fragment A on Session { identity { ...B } } fragment B on Identity { traits ` + strings.Repeat("x { ", 10) + "y " + strings.Repeat("} ", 10) + `}`, nil, "", codeTooDeep, "graphql.limits.max_depth"},
		{"900 levels", hostile.Nested(900), nil, admin, codeTooDeep, "graphql.limits.max_depth"},

		{"16 aliases", hostile.Aliases(16), nil, "", codeTooComplex, "graphql.limits.max_aliases (15)"},
		{"15 aliases", hostile.Aliases(15), nil, "", "", ""},
		{"16 aliases, admin", hostile.Aliases(16), nil, admin, "", ""},
		{"101 aliases, admin", hostile.Aliases(101), nil, admin, codeTooComplex, "graphql.limits.admin_max_aliases (100)"},
		{"aliases through fragments", `{ __type(name: "Query") { ...A ...A2 } } fragment A on __Type { ` + strings.Repeat(" n: name", 8) + ` } fragment A2 on __Type { ...A }`, nil, "", codeTooComplex, "graphql.limits.max_aliases (15)"},
		{"21 root fields", hostile.RootFields(21), nil, admin, codeTooComplex, "graphql.limits.max_root_fields (20)"},
		{"21 root fields through a fragment", `{ __typename ...R } fragment R on Query {` + strings.Repeat(" __typename", 20) + ` }`, nil, "", codeTooComplex, "graphql.limits.max_root_fields (20)"},

		{"6 directives", `{ __typename` + strings.Repeat(" @skip(if: false)", 6) + ` }`, nil, "", codeTooComplex, "graphql.limits.max_directives (5)"},
		{"6 directives on a spread", `{ ...F` + strings.Repeat(" @skip(if: false)", 6) + ` } fragment F on Query { __typename }`, nil, "", codeTooComplex, "graphql.limits.max_directives (5)"},
		{"6 directives on an operation", `query Q` + strings.Repeat(" @skip(if: false)", 6) + ` { __typename }`, nil, "", codeTooComplex, "graphql.limits.max_directives (5)"},
		{"many directives over many places", `{ __type(name: "Query") {` + strings.Repeat(` name @skip(if: false) @include(if: true)`, 100) + ` } }`, nil, "", "", ""},

		{"101 fragments", hostile.Fragments(101), nil, admin, codeTooComplex, "graphql.limits.max_fragments (100)"},
		{"100 fragments", hostile.Fragments(100), nil, "", "", ""},

		{"fragment cycle", `{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`, nil, "", "GRAPHQL_VALIDATION_FAILED", "within itself"},
		{"fragment spreads itself", `{ ...A } fragment A on Query { __typename ...A }`, nil, "", "GRAPHQL_VALIDATION_FAILED", "within itself"},
		{"unused fragment cycle", `{ __typename } fragment A on Query { ...A }`, nil, "", "GRAPHQL_VALIDATION_FAILED", "within itself"},
		{"duplicate fragment names", `{ ...A } fragment A on Query { __typename } fragment A on Query { __typename }`, nil, "", "GRAPHQL_VALIDATION_FAILED", "only one fragment"},
		{"unused fragment counts", `{ __typename } fragment U on Query { a { ...B ...B } } fragment B on Query {` + strings.Repeat(" __typename", 600) + ` }`, nil, "", codeTooComplex, "graphql.limits.max_fields"},

		{"two logins", `mutation { a: login(input: {identifier: "a", password: "b"}) { sessionToken } ...F } fragment F on Mutation { b: login(input: {identifier: "a", password: "c"}) { sessionToken } }`, nil, "", "BAD_USER_INPUT", "at most once"},
		{"inline number", `{ identitySchema(id: "x") { id } } fragment F on Query { identitySchema(id: 123456789012345678901234567890) { id } }`, nil, "", "BAD_USER_INPUT", "pass the value in a variable"},
		{"inline number deep in a literal", `{ identitySchema(id: {a: [{b: [0.1, 1e400]}]}) { id } }`, nil, "", "BAD_USER_INPUT", "the number 1e400 cannot be kept exactly"},
		{"inline number in a directive", `{ __typename @skip(if: 123456789012345678901234567890) }`, nil, "", "BAD_USER_INPUT", "pass the value in a variable"},
		{"inline number in a directive on a fragment", `{ ...F } fragment F on Query @include(if: [{n: 3.14159265358979323846264338327950288}]) { __typename }`, nil, "", "BAD_USER_INPUT", "pass the value in a variable"},
		{"syntax error", `{ whoami `, nil, "", "GRAPHQL_PARSE_FAILED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, h, tc.token, tc.query, tc.vars)
			if a.took > 2*time.Second {
				t.Errorf("took %v", a.took)
			}
			if tc.code == "" {
				if len(a.Errors) > 0 || a.status != http.StatusOK {
					t.Fatalf("status %d, errors %+v", a.status, a.Errors)
				}
				return
			}
			if a.code() != tc.code || !strings.Contains(a.message(), tc.key) {
				t.Fatalf("status %d, errors %+v; want %s naming %q", a.status, a.Errors, tc.code, tc.key)
			}
			if a.status < 400 && tc.code != "BAD_USER_INPUT" || a.status >= 500 {
				t.Errorf("status %d, want a 4xx", a.status)
			}
			if len(a.Data) > 0 && string(a.Data) != "null" {
				t.Errorf("data %s: nothing may run", a.Data)
			}
		})
	}
}

// TestLimitsPerCaller: a document an admin may send is cached with its
// measurements, and the cache does not let the same text past a public
// caller's smaller limits, nor does the public refusal stop the admin.
func TestLimitsPerCaller(t *testing.T) {
	h := newTestHandler(t, testLimits)
	over := []string{
		hostile.Aliases(20), // public max_aliases 15, admin 100
		`{ __type(name: "Query") {` + strings.Repeat(" name", 900) + strings.Repeat("\n#", 4200) + "\n} }", // public max_tokens 5000, admin 50000
	}
	for _, q := range over {
		for range 2 {
			if a := post(t, h, testAdminKey, q, nil); len(a.Errors) > 0 {
				t.Fatalf("admin: %+v", a.Errors)
			}
			if a := post(t, h, "", q, nil); a.code() == "" {
				t.Fatalf("public: answered a document over its limits")
			}
		}
	}
}

// TestBodyLimit: the public limit, the admin one, and a body without a
// length cut at the limit, each a 413 naming its key.
func TestBodyLimit(t *testing.T) {
	lim := testLimits
	lim.MaxBodyBytes, lim.AdminMaxBodyBytes = 2048, 8192
	h := newTestHandler(t, lim)
	body := func(n int) []byte {
		return []byte(`{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("a", n) + `"}}`)
	}
	for _, tc := range []struct {
		token   string
		size    int
		chunked bool
		want    int
		key     string
	}{
		{"", 1000, false, http.StatusOK, ""},
		{"", 3000, false, http.StatusRequestEntityTooLarge, "graphql.limits.max_body_bytes (2048 bytes)"},
		{"", 3000, true, http.StatusRequestEntityTooLarge, "graphql.limits.max_body_bytes (2048 bytes)"},
		{testAdminKey, 3000, false, http.StatusOK, ""},
		{testAdminKey, 3000, true, http.StatusOK, ""},
		{testAdminKey, 9000, false, http.StatusRequestEntityTooLarge, "graphql.limits.admin_max_body_bytes (8192 bytes)"},
		{testAdminKey, 9000, true, http.StatusRequestEntityTooLarge, "graphql.limits.admin_max_body_bytes (8192 bytes)"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body(tc.size)))
		if tc.chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(struct{ io.Reader }{bytes.NewReader(body(tc.size))})
		}
		req.Header.Set("Content-Type", "application/json")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.key) || !json.Valid(w.Body.Bytes()) {
			t.Errorf("%d bytes (admin %v, chunked %v): %d %s, want %d naming %q", tc.size, tc.token != "", tc.chunked, w.Code, w.Body, tc.want, tc.key)
		}
	}
}

// TestCountTokens: the count is gqlparser's own (a parse with a token limit
// of the count passes and one less fails), comments included.
func TestCountTokens(t *testing.T) {
	lim := callerLimits{tokens: 1 << 20, tokensKey: "max_tokens"}
	for _, q := range []string{
		`{ __typename }`,
		introspection.Query,
		"# a comment\n{ a(x: {b: [1, 2.5, \"s\", \"\"\"block\"\"\", $v, ENUM]}) @d(if: true) { ...F ... on T { c } } }\nfragment F on T { d }",
		hostile.FragmentBomb("query", "Query", 5),
		hostile.Variables(10),
	} {
		st, err := countTokens(q, lim, newBudget(context.Background(), time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: q}, st.tokens); err != nil {
			t.Errorf("%.40q: %d tokens, but the parser needs more: %v", q, st.tokens, err)
		}
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: q}, st.tokens-1); err == nil {
			t.Errorf("%.40q: %d tokens, but the parser needs fewer", q, st.tokens)
		}
	}
	if st, _ := countTokens(introspection.Query, lim, newBudget(context.Background(), time.Second)); st.tokens > 300 {
		t.Errorf("the GraphiQL introspection query has %d tokens: max_tokens must leave room for it", st.tokens)
	}
	for _, tc := range []struct {
		q          string
		ops, extra int
	}{
		{`{ a } fragment F on T { b }`, 1, 0},
		{`query A { ...F } query B($v: I = {x: {y: 1}}) @d(a: {b: 1}) { ...F } fragment F on T { b { c } }`, 2, 10},
		{`query A { a } mutation B { b } subscription C { c } fragment F on T { b } fragment G on T { c }`, 3, 2 * 14},
	} {
		st, err := countTokens(tc.q, lim, newBudget(context.Background(), time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if st.operations != tc.ops || st.walkTokens-st.tokens != tc.extra {
			t.Errorf("%q: %d operations, %d tokens more; want %d, %d", tc.q, st.operations, st.walkTokens-st.tokens, tc.ops, tc.extra)
		}
	}
}

// TestBudget: every walk of ours stops when the request's context ends or
// the cpu_budget is spent.
func TestBudget(t *testing.T) {
	q := hostile.RepeatTypename(900)
	lim := testLimits
	lim.CPUBudget = time.Nanosecond
	l := newDocLimits(lim)
	_, err := l.measure(context.Background(), q, l.forCaller(false))
	if err == nil || err.Extensions["code"] != codeTooComplex || !strings.Contains(err.Message, "graphql.limits.cpu_budget") {
		t.Errorf("spent budget: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l = newDocLimits(testLimits)
	if _, err := l.measure(ctx, q, l.forCaller(false)); err == nil || err.Extensions["code"] != codeCancelled {
		t.Errorf("cancelled request: %v", err)
	}

	s := NewExecutableSchema(Config{Resolvers: &Resolver{}})
	doc := gqlparser.MustLoadQuery(s.Schema(), q)
	w := complexityWalker{es: s, schema: s.Schema(), budget: newBudget(ctx, time.Second)}
	if _, err := w.selections(ctx, doc.Operations[0].SelectionSet); err == nil || err.Extensions["code"] != codeCancelled {
		t.Errorf("complexity, cancelled request: %v", err)
	}
}

// TestComplexityMatchesGqlgen: the memoised walk gives complexity.Calculate's
// numbers, with the schema's own complexity functions and without.
func TestComplexityMatchesGqlgen(t *testing.T) {
	var cfg Config
	cfg.Resolvers = &Resolver{}
	cfg.Complexity.Query.IdentitySchemas = func(child int) int { return 10 * child }
	cfg.Complexity.Query.Identities = func(child int, first *int, _ *string, _ *model.IdentityFilter) int {
		if first != nil {
			return *first * child
		}
		return 100 * child
	}
	for name, es := range map[string]graphql.ExecutableSchema{"default": NewExecutableSchema(Config{Resolvers: &Resolver{}}), "custom": NewExecutableSchema(cfg)} {
		for _, q := range []string{
			`{ whoami { id identity { id traits } } }`,
			`{ a: identitySchemas { id } b: identitySchemas { ...S } } fragment S on IdentitySchema { id schema }`,
			`query($n: Int) { identities(first: $n) { edges { node { ...I verifiableAddresses { id } } } } } fragment I on Identity { id traits ... on Identity { state } }`,
			introspection.Query,
			`{ __type(name: "Query") { name fields { name } } }`,
			hostile.FragmentBomb("query", "Query", 8),
		} {
			doc, errs := gqlparser.LoadQuery(es.Schema(), q)
			if errs != nil {
				t.Fatalf("%s: %v", q, errs)
			}
			vars := map[string]any{"n": int64(7)}
			op := doc.Operations[0]
			want := complexity.Calculate(context.Background(), es, op, vars)
			w := complexityWalker{es: es, schema: es.Schema(), vars: vars, budget: newBudget(context.Background(), time.Second)}
			got, err := w.selections(context.Background(), op.SelectionSet)
			if err != nil || got != want {
				t.Errorf("%s: %.50q: complexity %d, %v; gqlgen says %d", name, q, got, err, want)
			}
		}
	}
}

func TestBoundErrors(t *testing.T) {
	h := newTestHandler(t, testLimits)
	// Every repeated input field is an error of its own.
	a := post(t, h, "", `{ identitySchema(id: "x", id: "y", id: "z") { id } } fragment F on Query { identitySchema(id: {`+strings.Repeat(`a: 1 `, 500)+`}) { id } }`, nil)
	if len(a.Errors) != maxErrors+1 || !strings.Contains(a.Errors[maxErrors].Message, "more errors") || a.status != http.StatusUnprocessableEntity {
		t.Errorf("status %d, %d errors, last %q; want %d and a count of the rest", a.status, len(a.Errors), a.Errors[len(a.Errors)-1].Message, maxErrors+1)
	}
}

func TestNum(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1204: "1,204", 1234567: "1,234,567", -5: "-5"} {
		if got := num(n); got != want {
			t.Errorf("num(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestQueryCacheBound: a query longer than maxCachedQuery is not kept (its
// text would be the key), a shorter one is.
func TestQueryCacheBound(t *testing.T) {
	c := newQueryCache[int]()
	ctx := context.Background()
	short, long := "{ __typename }", "{ __typename }"+strings.Repeat(" ", maxCachedQuery)
	c.Add(ctx, short, 1)
	c.Add(ctx, long, 2)
	if _, ok := c.Get(ctx, short); !ok {
		t.Error("a short query was not kept")
	}
	if _, ok := c.Get(ctx, long); ok {
		t.Error("a long query was kept")
	}
}

// TestGETLimits: the limits hold for queries sent with GET too (gqlgen's
// transport, the same executor), with a 4xx and at most maxErrors errors.
func TestGETLimits(t *testing.T) {
	h := newTestHandler(t, testLimits)
	for _, tc := range []struct{ query, code string }{
		{hostile.FragmentBomb("query", "Query", 30), codeTooComplex},
		{hostile.Nested(13), codeTooDeep},
		{`{ identitySchema(id: {` + strings.Repeat(`a: 1 `, 500) + `}) { id } }`, "GRAPHQL_VALIDATION_FAILED"},
	} {
		req := httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(tc.query), nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var a answer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("%d %.200s", w.Code, w.Body)
		}
		if w.Code != http.StatusUnprocessableEntity || a.code() != tc.code || len(a.Errors) > maxErrors+1 {
			t.Errorf("GET %.40q: %d, %d errors, code %s; want 422 %s", tc.query, w.Code, len(a.Errors), a.code(), tc.code)
		}
	}
}
