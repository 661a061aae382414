package courier

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

func TestTemplateOverrides(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A partial in a sibling file, as Kratos allows (email.body*).
	write("recovery_code/valid/email.body.gotmpl", `{{ template "greeting" . }}<b>{{ .RecoveryCode | quote }}</b>`)
	write("recovery_code/valid/email.body.partials.gotmpl", `{{ define "greeting" }}<p>Hello {{ .To | lower }}</p>{{ end }}`)
	write("recovery_code/valid/sms.body.gotmpl", `{{ .RecoveryCode | repeat 2 }}`)
	// Kratos's other template types are ignored, not refused.
	write("registration_code/valid/email.subject.gotmpl", `{{ broken`)
	// A sign-in code's template takes Kratos's LoginCode.
	write("login_code/valid/sms.body.gotmpl", `code {{ .LoginCode }} for {{ .To }}`)
	c, err := New(WithTemplateOverrides(dir))
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"To": "Ann@Example.com", "RecoveryCode": "123456", "ExpiresInMinutes": 15}
	m, err := c.Compose(model.ViaEmail, "Ann@Example.com", TemplateRecoveryCode, data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.HTMLBody != `<p>Hello ann@example.com</p><b>&#34;123456&#34;</b>` {
		t.Errorf("html = %q", m.HTMLBody)
	}
	if m.Subject != "Recover access to your account" {
		t.Errorf("built-in subject = %q", m.Subject)
	}
	s, err := c.Compose(model.ViaSMS, "+1", TemplateRecoveryCode, data, time.Now())
	if err != nil || s.Body != "123456123456" {
		t.Errorf("sms = %q, %v", s.Body, err)
	}
	l, err := c.Compose(model.ViaSMS, "+1", TemplateLoginCode, map[string]any{"To": "+1", "LoginCode": "654321"}, time.Now())
	if err != nil || l.Body != "code 654321 for +1" {
		t.Errorf("login_code sms = %q, %v", l.Body, err)
	}

	write("recovery_code/valid/email.subject.gotmpl", `{{ .To `)
	_, err = New(WithTemplateOverrides(dir))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "recovery_code", "valid", "email.subject.gotmpl")) {
		t.Errorf("broken override: %v; want an error naming the file", err)
	}
	if _, err := New(WithTemplateOverrides(filepath.Join(dir, "missing"))); err == nil || !strings.Contains(err.Error(), "courier.template_override_path") {
		t.Errorf("missing folder: %v", err)
	}
	// env is not available: a template must not print the server's secrets.
	write("recovery_code/valid/email.subject.gotmpl", `{{ env "HOME" }}`)
	if _, err := New(WithTemplateOverrides(dir)); err == nil {
		t.Error("a template calling env parsed")
	}
}

func TestTemplateDataKeys(t *testing.T) {
	type model struct {
		To               string
		VerificationCode string
		RequestURL       string
		ExpiresInMinutes int
		Identity         map[string]any
	}
	raw, err := templateData(model{To: "a", VerificationCode: "1", RequestURL: "u", ExpiresInMinutes: 5, Identity: map[string]any{"Traits": 1}})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(raw, &got)
	for _, k := range []string{"to", "verification_code", "request_url", "expires_in_minutes", "identity"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no key %s in %s", k, raw)
		}
	}
	if !strings.Contains(string(raw), `"Traits"`) {
		t.Errorf("nested keys changed: %s", raw)
	}
	for in, want := range map[string]string{"HTMLBody": "html_body", "ID": "id", "already_snake": "already_snake", "Code2FA": "code2_fa"} {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewSMTPRefusesBadConfig(t *testing.T) {
	for uri, want := range map[string]string{
		"http://host/":                          "scheme",
		"smtp:///":                              "no host",
		"smtp://h:99999/":                       "port",
		"smtp://h/?disable_starttls=maybe":      "disable_starttls",
		"smtps://u:secret@h/?skip_ssl_verify=x": "skip_ssl_verify",
	} {
		_, err := NewSMTP(SMTPConfig{ConnectionURI: uri, FromAddress: "a@b.c"})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: %v; want an error about %s", uri, err, want)
		}
	}
	if _, err := NewSMTP(SMTPConfig{ConnectionURI: "smtp://h/"}); err == nil || !strings.Contains(err.Error(), "from_address") {
		t.Errorf("no from address: %v", err)
	}
	s, err := NewSMTP(SMTPConfig{ConnectionURI: "smtps://user:pa%24s@mail.example.com/", FromAddress: "a@b.c"})
	if err != nil || strings.Contains(s.String(), "pa") && strings.Contains(s.String(), "$s") {
		t.Errorf("NewSMTP = %v, %v", s, err)
	}
	if got := scrub("535 auth failed for pa$s and pa%24s", s.secrets); strings.Contains(got, "pa$s") || strings.Contains(got, "pa%24s") {
		t.Errorf("scrub = %q", got)
	}
}

func TestHTTPChannelRequest(t *testing.T) {
	body := `function(ctx) { to: ctx.recipient, text: ctx.body, subject: ctx.subject, type: ctx.template_type, kind: ctx.message_type, code: ctx.template_data.recovery_code }`
	h, err := newHTTPChannel("courier.channels[0]", Channel{ID: "email", Type: "http", RequestConfig: RequestConfig{
		URL: "https://gw.example.com/send?key=q-secret", Method: "put", Headers: map[string]string{"Authorization": "Bearer tok-secret"},
		Body: "base64://" + b64(body)}})
	if err != nil {
		t.Fatal(err)
	}
	m := &model.CourierMessage{ID: uuid.New(), Via: model.ViaEmail, Recipient: "a@b.c", Subject: "S", Body: "B",
		TemplateType: TemplateRecoveryCode, TemplateData: []byte(`{"recovery_code":"777"}`)}
	req, err := h.request(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(req.Body)
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"to": "a@b.c", "text": "B", "subject": "S", "type": "recovery_code_valid", "kind": "email", "code": "777"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if req.Method != http.MethodPut || req.Header.Get("Authorization") != "Bearer tok-secret" {
		t.Errorf("request %s %v", req.Method, req.Header)
	}
	if h.where != "PUT https://gw.example.com/send" {
		t.Errorf("where = %q", h.where)
	}
	if got := scrub("failed: Bearer tok-secret ?key=q-secret", h.secrets); strings.Contains(got, "secret") {
		t.Errorf("scrub = %q", got)
	}

	for _, c := range []struct {
		rc   RequestConfig
		want string
	}{
		{RequestConfig{URL: "ftp://x/", Body: "base64://" + b64("{}")}, "url"},
		{RequestConfig{URL: "https://x/"}, "body"},
		{RequestConfig{URL: "https://x/", Body: "base64://" + b64("function(ctx) {")}, "not valid Jsonnet"},
		{RequestConfig{URL: "https://x/", Body: "file:///does/not/exist.jsonnet"}, "exist.jsonnet"},
		{RequestConfig{URL: "https://x/", Body: "base64://" + b64("{}"), Auth: AuthConfig{Type: "oauth"}}, "auth.type"},
		{RequestConfig{URL: "https://x/", Body: "base64://" + b64("{}"), Headers: map[string]string{"Content-Type": "text/plain"}}, "Content-Type"},
	} {
		if _, err := newHTTPChannel("courier.channels[0]", Channel{ID: "sms", Type: "http", RequestConfig: c.rc}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want an error about %s", c.rc, err, c.want)
		}
	}
	// Imports would read the server's files.
	h, err = newHTTPChannel("c", Channel{ID: "sms", Type: "http", RequestConfig: RequestConfig{URL: "https://x/", Body: "base64://" + b64(`function(ctx) import "/etc/passwd"`)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.request(context.Background(), m); err == nil || !strings.Contains(err.Error(), "imports are not allowed") {
		t.Errorf("import: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	w := &Worker{cfg: WorkerConfig{RetryBackoff: time.Second, MaxBackoff: 5 * time.Second}}
	for attempts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := w.backoff(attempts); got != want {
			t.Errorf("backoff(%d) = %s, want %s", attempts, got, want)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
