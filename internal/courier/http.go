package courier

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/go-jsonnet"

	"github.com/identityd/identityd/model"
)

// Channel is one entry of courier.channels, in Kratos's format, so that a
// Kratos SMS gateway configuration works unchanged:
//
//	courier:
//	  channels:
//	    - id: sms
//	      type: http
//	      request_config:
//	        url: https://api.twilio.com/2010-04-01/Accounts/AC…/Messages.json
//	        method: POST
//	        headers: {Content-Type: application/x-www-form-urlencoded}
//	        body: file:///etc/identityd/sms.jsonnet
//	        auth: {type: basic_auth, config: {user: AC…, password: …}}
//
// id sms carries SMS, id email carries email (instead of courier.smtp).
type Channel struct {
	ID            string        `yaml:"id" json:"id"`
	Type          string        `yaml:"type" json:"type"`
	RequestConfig RequestConfig `yaml:"request_config" json:"request_config"`
}

// RequestConfig is the HTTP request a channel makes for each message.
type RequestConfig struct {
	URL string `yaml:"url" json:"url"`
	// Method is POST when empty.
	Method  string            `yaml:"method" json:"method"`
	Headers map[string]string `yaml:"headers" json:"headers"`
	// Body is the Jsonnet template of the body: file:///path, a plain path,
	// or base64://<the template in base64>. It is a function of ctx
	// (recipient, subject, body, html_body, template_type, template_data,
	// message_type), as in Kratos.
	Body string     `yaml:"body" json:"body"`
	Auth AuthConfig `yaml:"auth" json:"auth"`
}

// AuthConfig is how a channel authenticates: type basic_auth (config: user,
// password) or api_key (config: name, value, in: header or cookie); no type,
// no authentication.
type AuthConfig struct {
	Type   string            `yaml:"type" json:"type"`
	Config map[string]string `yaml:"config" json:"config"`
}

// httpTimeout bounds one channel request.
const httpTimeout = 10 * time.Second

// httpChannel delivers messages by an HTTP request whose body a Jsonnet
// template makes, like Kratos's courier HTTP channel.
type httpChannel struct {
	id       string
	method   string
	url      string
	where    string // method and URL without credentials or query, for errors
	headers  http.Header
	body     string // the Jsonnet source
	bodyName string
	auth     func(*http.Request)
	client   *http.Client
	secrets  []string
}

// newHTTPChannel checks c, reads its body template and checks that it
// parses: a broken template stops the start, naming the key.
func newHTTPChannel(key string, c Channel) (*httpChannel, error) {
	rc := c.RequestConfig
	u, err := url.Parse(rc.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s.request_config.url: %q is not an http:// or https:// URL", key, redactURL(rc.URL))
	}
	h := &httpChannel{id: c.ID, method: strings.ToUpper(rc.Method), url: rc.URL, headers: http.Header{},
		client: &http.Client{Timeout: httpTimeout}}
	if h.method == "" {
		h.method = http.MethodPost
	}
	h.where = h.method + " " + u.Scheme + "://" + u.Host + u.Path
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			h.secrets = append(h.secrets, p)
		}
	}
	for _, vs := range u.Query() {
		h.secrets = append(h.secrets, vs...)
	}
	h.headers.Set("Content-Type", "application/json")
	for k, v := range rc.Headers {
		h.headers.Set(k, v)
		// A configured header is often a token (Authorization: Bearer …).
		h.secrets = append(h.secrets, v)
	}
	switch ct := h.headers.Get("Content-Type"); ct {
	case "application/json", "application/x-www-form-urlencoded":
	default:
		return nil, fmt.Errorf("%s.request_config.headers: Content-Type %q is neither application/json nor application/x-www-form-urlencoded", key, ct)
	}
	cfg := func(name string) string {
		for k, v := range rc.Auth.Config {
			if strings.EqualFold(k, name) {
				return v
			}
		}
		return ""
	}
	switch rc.Auth.Type {
	case "":
		h.auth = func(*http.Request) {}
	case "basic_auth":
		user, pass := cfg("user"), cfg("password")
		h.secrets = append(h.secrets, pass)
		h.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	case "api_key":
		name, value, in := cfg("name"), cfg("value"), cfg("in")
		if name == "" {
			return nil, fmt.Errorf("%s.request_config.auth.config.name: required for api_key", key)
		}
		h.secrets = append(h.secrets, value)
		if in == "cookie" {
			h.auth = func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
		} else {
			h.auth = func(r *http.Request) { r.Header.Set(name, value) }
		}
	default:
		return nil, fmt.Errorf("%s.request_config.auth.type: %q is not basic_auth or api_key", key, rc.Auth.Type)
	}
	if h.body, h.bodyName, err = readTemplate(rc.Body); err != nil {
		return nil, fmt.Errorf("%s.request_config.body: %w", key, err)
	}
	if _, err := jsonnet.SnippetToAST(h.bodyName, h.body); err != nil {
		return nil, fmt.Errorf("%s.request_config.body: %s is not valid Jsonnet: %w", key, h.bodyName, err)
	}
	return h, nil
}

// readTemplate reads a template named as Kratos names them: file://PATH,
// a plain path, or base64://DATA.
func readTemplate(uri string) (src, name string, err error) {
	switch {
	case uri == "":
		return "", "", errors.New("required: the Jsonnet template of the request body (file:///path or base64://…)")
	case strings.HasPrefix(uri, "base64://"):
		enc := strings.TrimPrefix(uri, "base64://")
		b, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "=")); err != nil {
				return "", "", errors.New("base64:// is followed by something that is not base64")
			}
		}
		return string(b), "base64 template", nil
	case strings.HasPrefix(uri, "http://"), strings.HasPrefix(uri, "https://"):
		return "", "", fmt.Errorf("%q: templates are read from file:// or base64:// only", redactURL(uri))
	}
	p := strings.TrimPrefix(uri, "file://")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", p, err)
	}
	return string(b), p, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	u.RawQuery = ""
	return u.Redacted()
}

// httpContext is what the body template gets as ctx: Kratos's
// httpDataModel.
type httpContext struct {
	Recipient    string          `json:"recipient"`
	Subject      string          `json:"subject"`
	Body         string          `json:"body"`
	HTMLBody     string          `json:"html_body,omitempty"`
	TemplateType string          `json:"template_type"`
	TemplateData json.RawMessage `json:"template_data"`
	MessageType  string          `json:"message_type"`
}

// kratosTemplateType is the template type as Kratos names it in
// ctx.template_type: its code templates are "…_valid".
func kratosTemplateType(t string) string {
	switch t {
	case TemplateVerificationCode, TemplateRecoveryCode, TemplateLoginCode:
		return t + "_valid"
	}
	return t
}

// noImports keeps a body template from reading files of the server.
type noImports struct{}

func (noImports) Import(_, importedPath string) (jsonnet.Contents, string, error) {
	return jsonnet.Contents{}, "", fmt.Errorf("imports are not allowed in a courier template (%s)", importedPath)
}

// request builds the request for m.
func (h *httpChannel) request(ctx context.Context, m *model.CourierMessage) (*http.Request, error) {
	data := json.RawMessage(m.TemplateData)
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	in, err := json.Marshal(httpContext{Recipient: m.Recipient, Subject: m.Subject, Body: m.Body, HTMLBody: m.HTMLBody,
		TemplateType: kratosTemplateType(m.TemplateType), TemplateData: data, MessageType: m.Via})
	if err != nil {
		return nil, err
	}
	vm := jsonnet.MakeVM()
	vm.Importer(noImports{})
	vm.TLACode("ctx", string(in))
	out, err := vm.EvaluateAnonymousSnippet(h.bodyName, h.body)
	if err != nil {
		return nil, fmt.Errorf("body template %s: %w", h.bodyName, err)
	}
	body := []byte(out)
	if h.headers.Get("Content-Type") == "application/x-www-form-urlencoded" {
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			return nil, fmt.Errorf("body template %s: a form body must be an object: %w", h.bodyName, err)
		}
		form := url.Values{}
		for k, v := range fields {
			if s, ok := v.(string); ok {
				form.Set(k, s)
			} else {
				b, _ := json.Marshal(v)
				form.Set(k, string(b))
			}
		}
		body = []byte(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, h.method, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = h.headers.Clone()
	h.auth(req)
	return req, nil
}

// send makes the request of m; a 2xx answer is delivery.
func (h *httpChannel) send(ctx context.Context, m *model.CourierMessage) sendResult {
	if ctx.Err() != nil {
		return sendResult{untried: true}
	}
	req, err := h.request(ctx, m)
	if err != nil {
		return sendResult{err: err, permanent: true}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// The client's error repeats the URL, query (an API key) and all:
		// say where from the configuration, and why from the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return sendResult{err: fmt.Errorf("%s: %w", h.where, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The answer's body is not kept: a gateway may echo the message,
		// code and all.
		return sendResult{err: fmt.Errorf("%s: the server answered %s", h.where, resp.Status)}
	}
	return sendResult{}
}
