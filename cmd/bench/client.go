package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// client speaks GraphQL over HTTP to one server: POST application/json on
// keep-alive connections of one fasthttp HostClient. The load loop shares
// the cores with the server, so the client must cost as little as it can:
// fasthttp reuses its requests, responses and buffers, and took about half
// the CPU per request that net/http's Transport did on this machine (whoami
// at c=64: 72% of a core for 8,263 req/s with net/http).
type client struct {
	url string
	hc  *fasthttp.HostClient
	// adminHeader and publicHeader are shared by every request that sends
	// them: post only reads a header.
	adminHeader, publicHeader http.Header
}

var jsonType = []string{"application/json"}

// newClient returns a client for base that keeps up to conns connections
// open, so that no request of a closed loop of that many ever waits for one.
func newClient(base, adminKey string, conns int) (*client, error) {
	u, err := url.Parse(base + "/graphql")
	if err != nil {
		return nil, fmt.Errorf("-target: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("-target: want http://host:port, got %q", base)
	}
	hc := &fasthttp.HostClient{
		Addr:                u.Host,
		Name:                "identityd-bench",
		MaxConns:            conns,
		MaxIdleConnDuration: 5 * time.Minute,
		ReadTimeout:         5 * time.Minute,
		WriteTimeout:        time.Minute,
		MaxResponseBodySize: 1 << 30,
		// A closed loop never has more requests than connections; waiting
		// for a free one is what a busy client does, not an error.
		MaxConnWaitTimeout: 5 * time.Minute,
	}
	return &client{
		url:          u.String(),
		hc:           hc,
		adminHeader:  http.Header{"Content-Type": jsonType, "Authorization": {"Bearer " + adminKey}},
		publicHeader: http.Header{"Content-Type": jsonType},
	}, nil
}

// close drops the idle connections.
func (c *client) close() { c.hc.CloseIdleConnections() }

// post sends body with header h (nil: public) and reads the whole answer
// into buf.
func (c *client) post(body []byte, h http.Header, buf *bytes.Buffer) (int, error) {
	if h == nil {
		h = c.publicHeader
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(c.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.SetBodyRaw(body)
	if err := c.hc.Do(req, resp); err != nil {
		return 0, err
	}
	buf.Reset()
	buf.Write(resp.Body())
	return resp.StatusCode(), nil
}

// bearer is the Authorization header of a session token.
func bearer(token string) http.Header {
	return http.Header{"Content-Type": jsonType, "Authorization": {"Bearer " + token}}
}

// gqlRequest is a GraphQL-over-HTTP request body.
type gqlRequest struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
}

// mustBody marshals a request body; the inputs are the tool's own values,
// so failing is a bug.
func mustBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(gqlRequest{Query: query, Variables: vars})
	if err != nil {
		panic(err)
	}
	return b
}

// call sends one request outside any measurement and decodes data into out.
// Any HTTP or GraphQL error is an error: setup must succeed.
func (c *client) call(query string, vars map[string]any, h http.Header, out any) error {
	var buf bytes.Buffer
	status, err := c.post(mustBody(query, vars), h, &buf)
	if err != nil {
		return err
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(buf.Bytes(), &resp); err != nil {
		return fmt.Errorf("HTTP %d, not a GraphQL answer: %.300s", status, buf.String())
	}
	if len(resp.Errors) > 0 {
		return fmt.Errorf("HTTP %d: %s (%v)", status, resp.Errors[0].Message, resp.Errors[0].Extensions["code"])
	}
	if status != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.300s", status, buf.String())
	}
	return json.Unmarshal(resp.Data, out)
}

var (
	errorsKey     = []byte(`"errors":`)
	userErrorsKey = []byte(`"userErrors":[`)
)

// counts are failed requests by kind. UserErrors counts non-empty userErrors
// lists (for an import, one per failed item).
type counts struct {
	HTTP, GraphQL, UserErrors int
}

func (c *counts) add(o counts) {
	c.HTTP += o.HTTP
	c.GraphQL += o.GraphQL
	c.UserErrors += o.UserErrors
}

func (c counts) total() int { return c.HTTP + c.GraphQL + c.UserErrors }

// classify sorts one answer without decoding it. A transport failure or a
// status other than 200 is an HTTP error; a top-level "errors" key, or an
// answer without expect (the shape a success has) and without userErrors, a
// GraphQL error; each non-empty "userErrors" list a user error. Field names come from the tool's
// own queries, so `"errors":` can only be the top-level key (userErrors is
// spelt `"userErrors":`).
func classify(status int, err error, body, expect []byte) counts {
	var c counts
	if err != nil || status != http.StatusOK {
		c.HTTP = 1
		return c
	}
	for b := body; ; {
		i := bytes.Index(b, userErrorsKey)
		if i < 0 {
			break
		}
		b = b[i+len(userErrorsKey):]
		if len(b) > 0 && b[0] != ']' {
			c.UserErrors++
		}
	}
	// An answer refused with userErrors lacks the success shape by design:
	// it is counted once, as a user error.
	if bytes.Contains(body, errorsKey) || (c.UserErrors == 0 && expect != nil && !bytes.Contains(body, expect)) {
		c.GraphQL = 1
	}
	return c
}
