package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// client speaks GraphQL over HTTP to one server: POST application/json on
// keep-alive connections of one shared transport.
type client struct {
	url *url.URL
	tr  *http.Transport
	// adminHeader and publicHeader are shared by every request that sends
	// them: the transport only reads a request's header.
	adminHeader, publicHeader http.Header
}

var jsonType = []string{"application/json"}

// newClient returns a client for base with room for conns idle connections,
// so that no request of a closed loop of that many ever opens a new one.
func newClient(base, adminKey string, conns int) (*client, error) {
	u, err := url.Parse(base + "/graphql")
	if err != nil {
		return nil, fmt.Errorf("-target: %w", err)
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       5 * time.Minute,
		ResponseHeaderTimeout: 5 * time.Minute,
		DisableCompression:    true,
	}
	return &client{
		url:          u,
		tr:           tr,
		adminHeader:  http.Header{"Content-Type": jsonType, "Authorization": {"Bearer " + adminKey}},
		publicHeader: http.Header{"Content-Type": jsonType},
	}, nil
}

// close drops the idle connections.
func (c *client) close() { c.tr.CloseIdleConnections() }

// post sends body with header h (nil: public) and reads the whole answer
// into buf. It skips http.Client (redirects, cookies, timeouts by timer) and
// builds the request by hand: the load loop is on the same cores as the
// server, so every allocation the client saves is CPU the server keeps.
func (c *client) post(body []byte, h http.Header, buf *bytes.Buffer) (int, error) {
	if h == nil {
		h = c.publicHeader
	}
	req := &http.Request{
		Method:        http.MethodPost,
		URL:           c.url,
		Host:          c.url.Host,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
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
