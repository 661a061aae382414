package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/identityd/identityd/model"
)

const (
	contentTypeJSON            = "application/json"
	contentTypeGraphQLResponse = "application/graphql-response+json"
)

// postTransport is gqlgen's POST transport (transport.POST: the same
// requests, content negotiation and status codes) with these changes. The
// answer's data is written as the executor produced it: gqlgen's own writer
// runs the whole answer through json.Marshal, and encoding/json validates
// and compacts a json.RawMessage byte by byte, a tenth of the server's cost
// of a 250-identity page, for data that is valid JSON by construction (every
// scalar writes valid JSON; the JSON scalar checks stored documents as it
// writes them, model.JSON). It is not HTML-escaped (<, > and & stay as they
// are), which JSON does not ask for. A body that does not decode is
// refused in words (decodeParams), never echoed back: it may hold a
// password. A body cut off at the
// caller's body limit (one sent without a length) answers 413, as one whose
// length is over it does, not a decoding error. And a refused request
// carries at most maxErrors errors.
type postTransport struct{}

var _ graphql.Transport = postTransport{}

// Supports takes the requests gqlgen's POST transport takes.
func (postTransport) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && r.Method == http.MethodPost && mediaType == contentTypeJSON
}

// Do runs one request as transport.POST does.
func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	contentType := responseContentType(r.Header.Get("Accept"))
	w.Header().Set("Content-Type", contentType)
	start := graphql.Now()

	body, err := io.ReadAll(r.Body)
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		writeBodyTooLarge(w, mbe.Limit, bodyLimitKey(model.CallerFromContext(ctx).Admin))
		return
	}
	if err != nil {
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{badRequest("the request body could not be read: %v", err)}))
		return
	}
	params, msg := decodeParams(body)
	if msg != "" {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{badRequest("%s", msg)}))
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	rc, opErr := exec.CreateOperationContext(ctx, params)
	if opErr != nil {
		opErr = boundErrors(opErr)
		w.WriteHeader(statusFor(contentType, opErr))
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), opErr))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeResponse(w, responses(ctx))
}

// maxErrors is the most errors a refused request is answered with. The
// validator reports every problem it finds, and a document can be written to
// have one per token (thousands, each a line of JSON), turning a small
// request into a large answer.
const maxErrors = 50

// boundErrors keeps the first maxErrors errors and says how many more there
// were.
func boundErrors(errs gqlerror.List) gqlerror.List {
	if len(errs) <= maxErrors {
		return errs
	}
	more := gqlerror.Errorf("and %s more errors", num(len(errs)-maxErrors))
	more.Extensions = maps.Clone(errs[0].Extensions) // the same kind, so the same status
	return append(errs[:maxErrors:maxErrors], more)
}

// responseContentType picks the answer's media type from Accept as gqlgen's
// POST transport does: application/json unless the client names
// application/graphql-response+json first, or names neither.
func responseContentType(accept string) string {
	if accept == "" {
		return contentTypeJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mediaType, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mediaType {
		case "*/*", "application/*", contentTypeJSON:
			return contentTypeJSON
		case contentTypeGraphQLResponse:
			return contentTypeGraphQLResponse
		}
	}
	return contentTypeGraphQLResponse
}

// statusFor is the HTTP status of a request refused before it ran: a
// protocol error (a parse or validation failure) is 422 under
// application/json and 400 under application/graphql-response+json, as the
// GraphQL-over-HTTP spec says; anything else is 200.
func statusFor(contentType string, errs gqlerror.List) int {
	if errcode.GetErrorKind(errs) != errcode.KindProtocol {
		return http.StatusOK
	}
	if contentType == contentTypeGraphQLResponse {
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}

// writeResponse writes resp as encoding/json would write a graphql.Response
// (the same keys in the same order), except that data goes out as it is.
func writeResponse(w io.Writer, resp *graphql.Response) {
	if resp == nil {
		// The executor has no answer when the request's context ended
		// first (the client went away): gqlgen writes null then too.
		_, _ = io.WriteString(w, "null")
		return
	}
	var b bytes.Buffer
	b.Grow(len(resp.Data) + 64)
	b.WriteByte('{')
	if len(resp.Errors) > 0 {
		b.WriteString(`"errors":`)
		writeJSON(&b, resp.Errors)
		b.WriteByte(',')
	}
	b.WriteString(`"data":`)
	if len(resp.Data) == 0 {
		b.WriteString("null")
	} else {
		b.Write(resp.Data)
	}
	if resp.Label != "" {
		b.WriteString(`,"label":`)
		writeJSON(&b, resp.Label)
	}
	if len(resp.Path) > 0 {
		b.WriteString(`,"path":`)
		writeJSON(&b, resp.Path)
	}
	if resp.HasNext != nil {
		b.WriteString(`,"hasNext":`)
		writeJSON(&b, *resp.HasNext)
	}
	if len(resp.Extensions) > 0 {
		b.WriteString(`,"extensions":`)
		writeJSON(&b, resp.Extensions)
	}
	b.WriteByte('}')
	_, _ = w.Write(b.Bytes())
}

// writeJSON appends v's JSON. The values written this way (errors, paths,
// extensions) are ours or gqlgen's and always marshal; should one ever
// fail, an error list stands in, which is valid wherever v stood.
func writeJSON(b *bytes.Buffer, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		out = []byte(`[{"message":"internal error: the answer could not be written","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]`)
	}
	b.Write(out)
}

// codeBadRequest marks a request refused before it is read as GraphQL: a
// method, media type or body this endpoint does not take. It is answered
// with an HTTP status of its own (400, 405 or 415), never 200.
const codeBadRequest = "BAD_REQUEST"

// badRequest is a refusal of the HTTP request itself.
func badRequest(format string, args ...any) *gqlerror.Error {
	e := gqlerror.Errorf(format, args...)
	errcode.Set(e, codeBadRequest)
	return e
}

// requestShape is what a POST body is, for the messages below.
const requestShape = `a JSON object such as {"query": "…", "variables": {…}, "operationName": "…"}`

// decodeParams decodes a POST body into one request, or says in words what
// is wrong with it: encoding/json's own messages name Go types
// ("cannot unmarshal array into Go value of type graphql.RawParams"), which
// tell a client nothing, and may quote what was sent. Nothing of the body
// is repeated: it may hold a password.
func decodeParams(body []byte) (*graphql.RawParams, string) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, "the request body is empty: send " + requestShape
	case trimmed[0] == '[':
		return nil, "batched requests (a JSON array) are not supported: send one operation per request, as " + requestShape
	}
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := dec.Decode(params)
	if err == nil {
		// A second value after the first would otherwise be ignored
		// without a word.
		end := dec.InputOffset()
		if rest := bytes.TrimLeft(body[end:], " \t\r\n"); len(rest) > 0 {
			return nil, fmt.Sprintf("the request body goes on after its JSON object (at %s): send one operation per request, as %s",
				lineColumn(body, int64(len(body)-len(rest))), requestShape)
		}
		return params, ""
	}
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return nil, fmt.Sprintf("the request body is not valid JSON (it breaks at %s): send %s", lineColumn(body, syntax.Offset-1), requestShape)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, "the request body ends before its JSON does: send " + requestShape
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return nil, fmt.Sprintf("the request body is %s: send %s", kindInWords(typeErr.Value), requestShape)
	case errors.As(err, &typeErr):
		want := "an object"
		if typeErr.Field == "query" || typeErr.Field == "operationName" {
			want = "a string"
		}
		return nil, fmt.Sprintf("%q in the request body must be %s, not %s", typeErr.Field, want, kindInWords(typeErr.Value))
	}
	return nil, "the request body could not be read as " + requestShape
}

// kindInWords names a JSON value's kind as encoding/json's
// UnmarshalTypeError gives it ("number", "number 1.5", "bool", "array", …)
// in words.
func kindInWords(v string) string {
	switch {
	case strings.HasPrefix(v, "number"):
		return "a number"
	case v == "bool":
		return "a boolean"
	case v == "string":
		return "a string"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	}
	return "a value of another kind"
}

// lineColumn says where byte offset off of data is, as an editor counts:
// lines and columns from 1, columns in characters.
func lineColumn(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// otherRequests takes every request the GET and POST transports do not:
// gqlgen would answer them all with a bare "transport not supported", which
// leaves a client guessing what to send instead.
type otherRequests struct{}

var _ graphql.Transport = otherRequests{}

// Supports takes anything; it is added last.
func (otherRequests) Supports(*http.Request) bool { return true }

// Do says what this endpoint takes: a POST with another media type answers
// 415 with the one it takes (RFC 9110 §15.5.16 names the Accept header for
// that), another method 405 with Allow, and an upgrade (a WebSocket client
// looking for subscriptions) 400.
func (otherRequests) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	w.Header().Set("Content-Type", responseContentType(r.Header.Get("Accept")))
	var e *gqlerror.Error
	switch {
	case r.Header.Get("Upgrade") != "":
		w.WriteHeader(http.StatusBadRequest)
		e = badRequest("/graphql does not upgrade connections (no WebSocket transport): send queries and mutations with POST (Content-Type: application/json), or queries with GET and query parameters")
	case r.Method == http.MethodPost:
		w.Header().Set("Accept", contentTypeJSON)
		w.WriteHeader(http.StatusUnsupportedMediaType)
		e = badRequest("POST /graphql takes Content-Type: application/json (this request has %s): send %s; a query may also be sent with GET and query parameters (?query=…&variables=…)",
			describeContentType(r.Header.Get("Content-Type")), requestShape)
	default:
		w.Header().Set("Allow", "GET, POST")
		w.WriteHeader(http.StatusMethodNotAllowed)
		e = badRequest("/graphql takes POST (Content-Type: application/json) for any operation, and GET with query parameters (?query=…&variables=…) for queries; not %.20s", r.Method)
	}
	writeResponse(w, exec.DispatchError(r.Context(), gqlerror.List{e}))
}

// describeContentType names what the client sent, its media type only:
// parameters can be long, and are not what is wrong.
func describeContentType(ct string) string {
	if ct == "" {
		return "no Content-Type"
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil || len(mediaType) > 100 {
		return "a Content-Type that is not a media type"
	}
	return fmt.Sprintf("Content-Type %s", mediaType)
}
