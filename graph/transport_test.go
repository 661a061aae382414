package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/model"
)

// TestWriteResponseMatchesEncodingJSON checks that writing data as it is
// gives the bytes gqlgen's json.Marshal of the response gives, for compact
// data, whatever else the response holds.
func TestWriteResponseMatchesEncodingJSON(t *testing.T) {
	yes := true
	for name, resp := range map[string]*graphql.Response{
		"data":            {Data: json.RawMessage(`{"whoami":{"id":"x","traits":{"n":9007199254740993}}}`)},
		"no data":         {},
		"errors and data": {Data: json.RawMessage(`{"identity":null}`), Errors: gqlerror.List{{Message: "this field is for admins only", Path: ast.Path{ast.PathName("identity"), ast.PathIndex(0)}, Extensions: map[string]any{"code": "FORBIDDEN"}}}},
		"errors only":     {Errors: gqlerror.List{{Message: `a "quoted" <message>`}}},
		"everything":      {Data: json.RawMessage(`[]`), Label: "l", Path: ast.Path{ast.PathName("a")}, HasNext: &yes, Extensions: map[string]any{"requestId": "r"}},
		"nil":             nil,
	} {
		want, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		writeResponse(&got, resp)
		if got.String() != string(want) {
			t.Errorf("%s: writeResponse = %s, want %s", name, got.String(), want)
		}
	}
}

func TestResponseContentType(t *testing.T) {
	for _, c := range []struct{ accept, want string }{
		{"", contentTypeJSON},
		{"*/*", contentTypeJSON},
		{"application/json", contentTypeJSON},
		{"application/graphql-response+json", contentTypeGraphQLResponse},
		{"application/graphql-response+json, application/json;q=0.9", contentTypeGraphQLResponse},
		{"text/html, application/json", contentTypeJSON},
		{"text/html", contentTypeGraphQLResponse},
		{"not a media type;;, application/json", contentTypeJSON},
	} {
		if got := responseContentType(c.accept); got != c.want {
			t.Errorf("Accept %q: %s, want %s", c.accept, got, c.want)
		}
	}
	protocol := gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "GRAPHQL_PARSE_FAILED"}}}
	for _, c := range []struct {
		ct   string
		errs gqlerror.List
		want int
	}{
		{contentTypeJSON, protocol, http.StatusUnprocessableEntity},
		{contentTypeGraphQLResponse, protocol, http.StatusBadRequest},
		{contentTypeJSON, gqlerror.List{{Message: "resolver"}}, http.StatusOK},
	} {
		if got := statusFor(c.ct, c.errs); got != c.want {
			t.Errorf("statusFor(%s, %v) = %d, want %d", c.ct, c.errs, got, c.want)
		}
	}
}

// TestJSONScalarWritesValidJSON: a stored document that is not JSON (a hand
// edit of a SQLite column) is refused with an error rather than written, so
// the answer stays JSON and the fault is reported.
func TestJSONScalarWritesValidJSON(t *testing.T) {
	for in, want := range map[string]string{`{"a": 1}`: `{"a": 1}`, `{"a":`: ``, ``: `null`, `nul`: ``} {
		var b bytes.Buffer
		err := model.JSON(in).MarshalGQLContext(context.Background(), &b)
		if b.String() != want || (err != nil) != (want == "") {
			t.Errorf("JSON(%q) wrote %q, %v; want %q", in, b.String(), err, want)
		}
	}
}

// TestRequestsTheTransportsDoNotTake: a POST with another media type (or
// none) answers 415 saying what is taken, with Accept naming it; another
// method answers 405 with Allow; a WebSocket upgrade 400. gqlgen answered
// each with a bare 400 "transport not supported".
func TestRequestsTheTransportsDoNotTake(t *testing.T) {
	h := newTestHandler(t, testLimits)
	body := `{"query":"{ __typename }"}`
	for _, c := range []struct {
		name, method, contentType, upgrade string
		status                             int
		header, headerValue                string
		says                               []string
	}{
		{"text/plain", http.MethodPost, "text/plain", "", http.StatusUnsupportedMediaType, "Accept", "application/json",
			[]string{"POST /graphql takes Content-Type: application/json", "has Content-Type text/plain", "with GET and query parameters"}},
		{"no content type", http.MethodPost, "", "", http.StatusUnsupportedMediaType, "Accept", "application/json",
			[]string{"takes Content-Type: application/json", "has no Content-Type"}},
		{"form", http.MethodPost, "application/x-www-form-urlencoded", "", http.StatusUnsupportedMediaType, "Accept", "application/json",
			[]string{"application/x-www-form-urlencoded"}},
		{"graphql", http.MethodPost, "application/graphql; charset=utf-8", "", http.StatusUnsupportedMediaType, "Accept", "application/json",
			[]string{"has Content-Type application/graphql)"}},
		{"PUT", http.MethodPut, "application/json", "", http.StatusMethodNotAllowed, "Allow", "GET, POST",
			[]string{"/graphql takes POST", "GET with query parameters", "not PUT"}},
		{"websocket", http.MethodGet, "", "websocket", http.StatusBadRequest, "", "",
			[]string{"does not upgrade connections"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "/graphql", strings.NewReader(body))
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			if c.upgrade != "" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", c.upgrade)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			var got struct {
				Errors []struct {
					Message    string         `json:"message"`
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || len(got.Errors) != 1 {
				t.Fatalf("%d %s: want one error as JSON (%v)", w.Code, w.Body, err)
			}
			msg := got.Errors[0].Message
			if w.Code != c.status {
				t.Errorf("status %d, want %d (%s)", w.Code, c.status, msg)
			}
			if c.header != "" && w.Header().Get(c.header) != c.headerValue {
				t.Errorf("%s: %q, want %q", c.header, w.Header().Get(c.header), c.headerValue)
			}
			if got.Errors[0].Extensions["code"] != codeBadRequest {
				t.Errorf("extensions %v, want code %s", got.Errors[0].Extensions, codeBadRequest)
			}
			for _, s := range c.says {
				if !strings.Contains(msg, s) {
					t.Errorf("message %q does not say %q", msg, s)
				}
			}
			if strings.Contains(msg, "transport not supported") {
				t.Errorf("message %q is gqlgen's", msg)
			}
		})
	}
}

// TestUndecodableBodies: a body that is not one GraphQL request is refused
// with 400 and words (a batch, bad JSON with where it breaks, a field of
// the wrong kind), never with a Go type name and never repeating the body,
// which may hold a password.
func TestUndecodableBodies(t *testing.T) {
	h := newTestHandler(t, testLimits)
	const secret = "hunter2-SECRET"
	for _, c := range []struct{ body, says string }{
		{`[{"query":"mutation { login(input: {identifier: \"a\", password: \"` + secret + `\"}) { sessionToken } }"}]`,
			"batched requests (a JSON array) are not supported: send one operation per request"},
		{"  \n[]", "batched requests (a JSON array) are not supported"},
		{`{"query": "{ __typename }", "variables": {"password": ` + secret + `}}`, "the request body is not valid JSON (it breaks at line 1, column 55)"},
		{"{\n  \"query\": \"{ __typename }\",\n  \"variables\": {\"password\": \"" + secret + "\",}\n}", "not valid JSON (it breaks at line 3, column 46)"},
		{`{"query": "{ __typename }", "variables": {"password": "` + secret, "the request body ends before its JSON does"},
		{`{"query": 5, "variables": {"password": "` + secret + `"}}`, `"query" in the request body must be a string, not a number`},
		{`{"query": "{ __typename }", "variables": ["` + secret + `"]}`, `"variables" in the request body must be an object, not an array`},
		{`{"query": "{ __typename }", "operationName": {"a": "` + secret + `"}}`, `"operationName" in the request body must be a string, not an object`},
		{`"` + secret + `"`, "the request body is a string: send a JSON object"},
		{`true`, "the request body is a boolean: send a JSON object"},
		{``, "the request body is empty"},
		{`{"query": "{ __typename }"} {"variables": {"password": "` + secret + `"}}`, "the request body goes on after its JSON object (at line 1, column 29): send one operation per request"},
		{"\x00\xff" + secret, "not valid JSON (it breaks at line 1, column 1)"},
	} {
		a := postBody(t, h, "", []byte(c.body))
		msg := a.message()
		if a.status != http.StatusBadRequest || !strings.Contains(msg, c.says) {
			t.Errorf("%.60q: %d %q, want 400 saying %q", c.body, a.status, msg, c.says)
		}
		if a.code() != codeBadRequest {
			t.Errorf("%.60q: code %q, want %s", c.body, a.code(), codeBadRequest)
		}
		for _, leak := range []string{secret, "Go ", "graphql.", "RawParams", "unmarshal", "map[", "[]interface"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%.60q: message %q shows %q", c.body, msg, leak)
			}
		}
	}
	if a := postBody(t, h, "", []byte("{\"query\": \"{ __typename }\"}\n\t ")); a.status != http.StatusOK || len(a.Errors) > 0 {
		t.Errorf("trailing white space: %d %+v", a.status, a.Errors)
	}
}

func TestLineColumn(t *testing.T) {
	data := []byte("ab\ncé\n\nx")
	for _, c := range []struct {
		off  int64
		want string
	}{
		{0, "line 1, column 1"}, {1, "line 1, column 2"}, {2, "line 1, column 3"}, {3, "line 2, column 1"},
		{6, "line 2, column 3"}, {7, "line 3, column 1"}, {8, "line 4, column 1"}, {9, "line 4, column 2"}, {99, "line 4, column 2"}, {-1, "line 1, column 1"},
	} {
		if got := lineColumn(data, c.off); got != c.want {
			t.Errorf("lineColumn(%d) = %s, want %s", c.off, got, c.want)
		}
	}
}
