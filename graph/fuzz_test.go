package graph

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/introspection"

	"github.com/identityd/identityd/graph/hostile"
)

// FuzzGraphQLBody sends any body to /graphql, through Auth and the whole
// GraphQL handler (transport, limits, parse, validation, execution), as an
// anonymous caller or an admin: every answer is a 200 or a 4xx with a JSON
// body, in good time, and nothing panics out of the handler. The seeds are
// the hostile documents the limits are for, so they also run as a normal
// test.
//
//	go test -run '^$' -fuzz FuzzGraphQLBody -fuzztime 5s ./graph/
func FuzzGraphQLBody(f *testing.F) {
	query := func(q string) []byte {
		b, _ := json.Marshal(map[string]any{"query": q})
		return b
	}
	for _, q := range []string{
		`{ whoami { id identity { id traits } } }`,
		`{ identitySchemas { id } }`,
		introspection.Query,
		hostile.FragmentBomb("query", "Query", 30),
		hostile.FragmentBomb("mutation", "Mutation", 30),
		hostile.FragmentBomb("query", "Query", 8),
		hostile.RepeatTypename(3000),
		hostile.Variables(200),
		hostile.Nested(40),
		hostile.Aliases(120),
		hostile.RootFields(30),
		hostile.Fragments(120),
		`{ __typename` + strings.Repeat(" @skip(if: false)", 8) + ` }`,
		`{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }`,
		`{ ...A } fragment A on Query { ...A }`,
		`query A { ...F } query B { ...F } fragment F on Query { __typename }`,
		`mutation { a: login(input: {identifier: "a", password: "b"}) { sessionToken } b: login(input: {identifier: "a", password: "c"}) { sessionToken } }`,
		`{ identitySchema(id: 123456789012345678901234567890) { id } }`,
		`{ identitySchema(id: {` + strings.Repeat("a: 1 ", 300) + `}) { id } }`,
		`{ whoami `,
		`# only a comment`,
		``,
	} {
		f.Add(query(q), false)
		f.Add(query(q), true)
	}
	for _, raw := range []string{
		`{"query":"{ __typename }","variables":{"a":1,"b":[1,2,{"c":null}]}}`,
		`{"query":"query($x: Int) { __typename }","variables":{"x":"not an int"}}`,
		`{"query":"{ __typename }","operationName":"nope"}`,
		`{"query":1}`,
		`[{"query":"{ __typename }"},{"query":"{ __typename }"}]`,
		`{"query":"{ __typename }"`,
		`null`,
		"\x00\xff",
	} {
		f.Add([]byte(raw), false)
	}

	h := newTestHandler(f, testLimits)
	f.Fuzz(func(t *testing.T, body []byte, admin bool) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if admin {
			req.Header.Set("Authorization", "Bearer "+testAdminKey)
		}
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %v", took)
		}
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code >= 500) {
			t.Errorf("status %d: %.500s", w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Errorf("status %d, the answer is not JSON: %.500q", w.Code, w.Body)
		}
	})
}
