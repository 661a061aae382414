package schemas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/model"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func compactJSON(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serveTestdata serves testdata/ the way a schema host would.
func serveTestdata(t *testing.T, tls bool) (*httptest.Server, *http.Client) {
	t.Helper()
	h := http.FileServer(http.Dir("testdata"))
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, srv.Client()
}

func TestLoaders(t *testing.T) {
	customer := readTestdata(t, "customer.schema.json")
	abs, err := filepath.Abs(filepath.Join("testdata", "customer.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	plain, plainClient := serveTestdata(t, false)
	tls, tlsClient := serveTestdata(t, true)

	tests := []struct {
		name   string
		url    string
		client *http.Client
		doc    []byte // the document as loaded; nil: the customer schema
		traits string // valid traits
	}{
		{name: "file relative", url: "file://testdata/customer.schema.json"},
		{name: "file relative dot", url: "file://./testdata/customer.schema.json"},
		{name: "file absolute", url: "file://" + filepath.ToSlash(abs)},
		{name: "base64 standard", url: "base64://" + base64.StdEncoding.EncodeToString(customer)},
		{name: "base64 url unpadded", url: "base64://" + base64.RawURLEncoding.EncodeToString(customer)},
		{name: "http", url: plain.URL + "/customer.schema.json", client: plainClient},
		{name: "https", url: tls.URL + "/customer.schema.json", client: tlsClient},
		{
			name:   "file with a relative file $ref",
			url:    "file://testdata/ref-main.schema.json",
			doc:    readTestdata(t, "ref-main.schema.json"),
			traits: `{"email":"a@example.com"}`,
		},
		{
			name:   "http with a relative http $ref",
			url:    plain.URL + "/ref-main.schema.json",
			client: plainClient,
			doc:    readTestdata(t, "ref-main.schema.json"),
			traits: `{"email":"a@example.com"}`,
		},
		{name: "preset email", url: "preset://email", doc: mustPreset(t, "email"), traits: `{"email":"a@example.com"}`},
		{name: "preset username", url: "preset://username", doc: mustPreset(t, "username"), traits: `{"username":"alice"}`},
		{name: "preset sms", url: "preset://sms", doc: mustPreset(t, "sms"), traits: `{"phone_number":"+14155552671"}`},
		{name: "preset basic", url: "preset://basic", doc: mustPreset(t, "basic"), traits: `{"email":"a@example.com"}`},
		{name: "preset blank", url: "preset://blank", doc: mustPreset(t, "blank"), traits: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := tt.client
			if client == nil {
				client = offline(t)
			}
			r, err := NewRegistry(context.Background(), "s", []Source{{ID: "s", URL: tt.url}}, Options{HTTPClient: client})
			if err != nil {
				t.Fatal(err)
			}
			s, err := r.Get("s")
			if err != nil {
				t.Fatal(err)
			}
			doc, traits := tt.doc, tt.traits
			if doc == nil {
				doc, traits = customer, `{"email":"a@example.com","phone":"+14155552671"}`
			}
			if got, want := []byte(s.Document), compactJSON(t, doc); !bytes.Equal(got, want) {
				t.Errorf("Document = %s, want %s", got, want)
			}
			if s.ID != "s" || s.URL != tt.url {
				t.Errorf("ID, URL = %q, %q", s.ID, s.URL)
			}
			if err := s.Validate(json.RawMessage(traits)); err != nil {
				t.Errorf("Validate(%s) = %v", traits, err)
			}
			// The schema took effect: these traits break every schema here
			// but blank, which allows anything.
			if tt.url != "preset://blank" {
				if err := s.Validate(json.RawMessage(`{"email":7,"username":7,"phone_number":7,"phone":7}`)); err == nil {
					t.Error("Validate accepted traits of the wrong type")
				}
			}
		})
	}
}

func mustPreset(t *testing.T, name string) []byte {
	t.Helper()
	data, err := presetFS.ReadFile("presets/" + name + ".schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLoadErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/huge":
			w.Write([]byte(`{"title": "` + strings.Repeat("x", 4096) + `"}`))
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ok := Source{ID: "ok", URL: "preset://email"}
	one := func(url string) []Source { return []Source{{ID: "x", URL: url}} }

	tests := []struct {
		name      string
		defaultID string
		sources   []Source
		opts      Options
		want      []string // substrings of the error
	}{
		{name: "no sources", defaultID: "x", want: []string{"no identity schemas are configured"}},
		{name: "empty id", defaultID: "ok", sources: []Source{ok, {URL: "preset://sms"}}, want: []string{"identity schema #2 (preset://sms): id is empty"}},
		{name: "duplicate id", defaultID: "ok", sources: []Source{ok, ok}, want: []string{`identity schema "ok" is configured more than once`}},
		{name: "empty url", defaultID: "x", sources: one(""), want: []string{`identity schema "x": url is empty`}},
		{name: "unknown default", defaultID: "nope", sources: []Source{ok}, want: []string{`default identity schema "nope" is not among the configured schemas (ok)`}},
		{name: "unknown scheme", defaultID: "x", sources: one("ftp://example.com/s.json"), want: []string{`identity schema "x" (ftp://example.com/s.json): unsupported url scheme "ftp"`}},
		{name: "no scheme", defaultID: "x", sources: one("testdata/customer.schema.json"), want: []string{`unsupported url "testdata/customer.schema.json"`}},
		{name: "unknown preset", defaultID: "x", sources: one("preset://admin"), want: []string{`identity schema "x" (preset://admin): unknown preset "admin": want one of basic, blank, email, sms, username`}},
		{name: "preset path escape", defaultID: "x", sources: one("preset://../meta/ory.sh-kratos"), want: []string{`unknown preset`}},
		{name: "missing file", defaultID: "x", sources: one("file://testdata/nope.json"), want: []string{`identity schema "x" (file://testdata/nope.json): open `, "no such file"}},
		{name: "bad json", defaultID: "x", sources: one("file://testdata/bad/invalid-json.schema.json"), want: []string{`identity schema "x" (file://testdata/bad/invalid-json.schema.json): invalid JSON at line 1, column 63: invalid character '}' looking for beginning of object key string`}},
		{name: "bad base64", defaultID: "x", sources: one("base64://!!!"), want: []string{`identity schema "x" (base64://!!!): not valid base64`}},
		{name: "bad extension value", defaultID: "x", sources: one("file://testdata/bad/pigeon.schema.json"), want: []string{
			`identity schema "x" (file://testdata/bad/pigeon.schema.json): invalid schema: at /properties/traits/properties/email/ory.sh~1kratos/verification/via: value must be one of 'email', 'sms'`,
		}},
		{name: "bad extension type in draft-07", defaultID: "x", sources: one("file://testdata/bad/identifier-string.schema.json"), want: []string{
			`invalid schema: at /properties/traits/properties/username/ory.sh~1kratos/credentials/password/identifier: got string, want boolean`,
		}},
		{name: "code identifier without via", defaultID: "x", sources: one("file://testdata/bad/code-without-via.schema.json"), want: []string{
			`at /properties/traits/properties/email/ory.sh~1kratos/credentials/code/via: property "via" is missing`,
		}},
		{name: "missing traits", defaultID: "x", sources: one("file://testdata/bad/no-traits.schema.json"), want: []string{`the schema has no "properties.traits"`}},
		{name: "traits not an object", defaultID: "x", sources: one("file://testdata/bad/traits-not-object.schema.json"), want: []string{`"properties.traits" must declare "type": "object"`}},
		{name: "missing $ref", defaultID: "x", sources: one("file://testdata/bad/missing-ref.schema.json"), want: []string{"does-not-exist.schema.json", "no such file"}},
		{name: "invalid json schema", defaultID: "x", sources: one(`base64://` + base64.StdEncoding.EncodeToString([]byte(`{"properties":{"traits":{"type":"object","minLength":"3"}}}`))), want: []string{
			`invalid schema: at /properties/traits/minLength: got string, want integer`,
		}},
		{name: "http 404", defaultID: "x", sources: one(srv.URL + "/missing.json"), want: []string{`identity schema "x" (` + srv.URL + `/missing.json): GET ` + srv.URL + `/missing.json: 404 Not Found`}},
		{name: "http timeout", defaultID: "x", sources: one(srv.URL + "/slow"), opts: Options{HTTPTimeout: 50 * time.Millisecond}, want: []string{"context deadline exceeded"}},
		{name: "http size cap", defaultID: "x", sources: one(srv.URL + "/huge"), opts: Options{MaxBytes: 1024}, want: []string{"schema is larger than the limit of 1024 bytes"}},
		{name: "file size cap", defaultID: "x", sources: one("file://testdata/customer.schema.json"), opts: Options{MaxBytes: 100}, want: []string{"schema is larger than the limit of 100 bytes"}},
		{name: "base64 size cap", defaultID: "x", sources: one("base64://" + base64.StdEncoding.EncodeToString(readTestdata(t, "customer.schema.json"))), opts: Options{MaxBytes: 100}, want: []string{"schema is larger than the limit of 100 bytes"}},
		{name: "redirect off http", defaultID: "x", sources: one(srv.URL + "/to-file"), want: []string{"refusing to follow a redirect to file:///etc/passwd"}},
		{name: "stops at the first broken schema", defaultID: "ok", sources: []Source{ok, {ID: "broken", URL: "preset://nope"}}, want: []string{`identity schema "broken" (preset://nope)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRegistry(context.Background(), tt.defaultID, tt.sources, tt.opts)
			if err == nil {
				t.Fatalf("NewRegistry succeeded, want an error (registry %v)", r)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadHonoursContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewRegistry(ctx, "x", []Source{{ID: "x", URL: srv.URL}}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestShortensBase64InErrors(t *testing.T) {
	url := "base64://" + base64.StdEncoding.EncodeToString([]byte(`{"type":"object","title":"`+strings.Repeat("x", 200)+`"}`))
	_, err := NewRegistry(context.Background(), "x", []Source{{ID: "x", URL: url}}, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), url[:40]+"…") {
		t.Errorf("error %q should name the url shortened", err)
	}
}

func TestRegistry(t *testing.T) {
	sources := []Source{
		{ID: "default", URL: "preset://email"},
		{ID: "customer", URL: "file://testdata/customer.schema.json"},
		{ID: "phone", URL: "preset://sms"},
	}
	r, err := NewRegistry(context.Background(), "customer", sources, Options{HTTPClient: offline(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.DefaultID(); got != "customer" {
		t.Errorf("DefaultID() = %q", got)
	}

	var ids []string
	for _, s := range r.All() {
		ids = append(ids, s.ID)
	}
	if got, want := strings.Join(ids, ","), "default,customer,phone"; got != want {
		t.Errorf("All() ids = %s, want %s (configuration order)", got, want)
	}
	r.All()[0] = nil // a copy: callers cannot break the registry
	if r.All()[0] == nil {
		t.Error("All() returned the registry's own slice")
	}

	for _, tt := range []struct{ id, want string }{{"", "customer"}, {"phone", "phone"}, {"default", "default"}} {
		s, err := r.Resolve(tt.id)
		if err != nil || s.ID != tt.want {
			t.Errorf("Resolve(%q) = %v, %v; want %s", tt.id, s, err, tt.want)
		}
	}

	for _, get := range []func(string) (*Schema, error){r.Get, r.Resolve} {
		s, err := get("x")
		var e *model.Error
		if s != nil || !errors.As(err, &e) {
			t.Fatalf("got %v, %v; want a *model.Error", s, err)
		}
		want := model.Error{Code: model.CodeSchemaNotFound, Message: `identity schema "x" is not configured`, Path: "/schemaId"}
		if *e != want {
			t.Errorf("error = %+v, want %+v", *e, want)
		}
	}
}

// Kratos schema files carry an https $id; loading must not fetch it, nor
// anything else, when the schema references only itself.
func TestDoesNotFetchIDs(t *testing.T) {
	for _, url := range []string{
		"file://testdata/customer.schema.json",
		"file://testdata/kratos-full.schema.json",
		"file://testdata/nested.schema.json",
		"preset://email", "preset://username", "preset://sms", "preset://basic", "preset://blank",
	} {
		t.Run(url, func(t *testing.T) {
			schemaAt(t, url) // offline fails the test on any request
		})
	}
}

// TestJSONSyntaxErrorsSayWhere: a schema, or a document it references, that
// is not JSON fails start-up naming the schema, its url and the line and
// column of the mistake, as an editor counts them. encoding/json gave a
// byte offset at best, and often no place at all.
func TestJSONSyntaxErrorsSayWhere(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return "file://" + filepath.ToSlash(path)
	}
	traits := `{
  "type": "object",
  "properties": {
    "traits": {
      "type": "object",
      "properties": {
        "email": {"type": "string",},
      }
    }
  }
}
`
	ref := write("defs.schema.json", "{\n  \"$defs\": {\n    \"name\": {\"type\": \"string\"}\n  }\n  \"oops\": 1\n}\n")
	for _, c := range []struct{ name, url, want string }{
		{"trailing comma", write("comma.schema.json", traits),
			`identity schema "x" (` + write("comma.schema.json", traits) + `): invalid JSON at line 7, column 36: invalid character '}' looking for beginning of object key string`},
		{"characters counted, not bytes", write("utf8.schema.json", "{\n  \"title\": \"Kundenkonto für Ärzte\" \"type\": \"object\"\n}"),
			`invalid JSON at line 2, column 36: invalid character '"' after object key:value pair`},
		{"cut short", write("short.schema.json", "{\n  \"type\": \"object\",\n  \"properties\": {\n"),
			`invalid JSON at line 4, column 1: the document ends before its value does`},
		{"two documents", write("two.schema.json", "{\"type\": \"object\"}\n{}\n"),
			`invalid JSON at line 2, column 1: more follows the document's value`},
		{"empty", write("empty.schema.json", "\n"), `invalid JSON: the document is empty`},
		{"base64", "base64://" + base64.StdEncoding.EncodeToString([]byte("{\"type\": object}")), `invalid JSON at line 1, column 10: invalid character 'o' looking for beginning of value`},
		{"in a referenced file", write("main.schema.json", `{"type": "object", "properties": {"traits": {"type": "object", "properties": {"name": {"$ref": "`+ref+`#/$defs/name"}}}}}`),
			`invalid JSON at line 5, column 3: invalid character '"' after object key:value pair`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewRegistry(context.Background(), "x", []Source{{ID: "x", URL: c.url}}, Options{HTTPClient: offline(t)})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, c.want)
			}
			if !strings.Contains(err.Error(), `identity schema "x" (`) {
				t.Errorf("error %v does not name the schema and its url", err)
			}
		})
	}
}

// TestHasPasswordIdentifier: whether a schema marks any value as a login
// identifier for passwords, read from the schema alone, wherever Facts would
// find the mark in some traits, and nowhere it would not.
func TestHasPasswordIdentifier(t *testing.T) {
	inline := func(traits string) string {
		return "base64://" + base64.StdEncoding.EncodeToString([]byte(`{"type": "object", "properties": {"traits": {"type": "object", `+traits+`}}}`))
	}
	const pw = `"ory.sh/kratos": {"credentials": {"password": {"identifier": true}}}`
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"preset://email", true},
		{"preset://username", true},
		{"preset://sms", true},
		{"preset://basic", true},
		{"preset://blank", false},
		{"file://testdata/ref-main.schema.json", true}, // through a $ref to another file
		{"file://testdata/nested.schema.json", true},
		{"file://testdata/channels.schema.json", false},
		{inline(`"properties": {"email": {"type": "string", "ory.sh/kratos": {"credentials": {"code": {"identifier": true, "via": "email"}}, "verification": {"via": "email"}}}}`), false},
		{inline(`"properties": {"email": {"type": "string", "ory.sh/kratos": {"credentials": {"password": {"identifier": false}}}}}`), false},
		{inline(`"properties": {"email": {"not": {` + pw + `}}}`), false},
		{inline(`"properties": {"email": {"anyOf": [{"type": "integer"}, {"type": "string", ` + pw + `}]}}`), true},
		{inline(`"properties": {"emails": {"type": "array", "items": {"type": "string", ` + pw + `}}}`), true},
		{inline(`"patternProperties": {"^e": {"type": "string", ` + pw + `}}`), true},
		{inline(`"additionalProperties": {"$ref": "#/properties/traits/$defs/id"}, "$defs": {"id": {"type": "string", ` + pw + `}}`), true},
		{inline(`"if": {"required": ["a"]}, "then": {"properties": {"a": {` + pw + `}}}`), true},
	} {
		if got := schemaAt(t, c.url).HasPasswordIdentifier(); got != c.want {
			t.Errorf("%.120s: HasPasswordIdentifier() = %v, want %v", c.url, got, c.want)
		}
	}
}
