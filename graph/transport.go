package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"strings"

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
// are), which JSON does not ask for. A body that does not decode is not
// echoed back in the error: it may hold a password. A body cut off at the
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
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("could not read request body: %+v", err)}))
		return
	}
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(ctx, gqlerror.List{gqlerror.Errorf("json request body could not be decoded: %+v", err)}))
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
