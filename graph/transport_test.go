package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
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
