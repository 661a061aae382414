// Package courier is the outbox of emails and SMS: messages composed from
// templates (built in, overridable in Kratos's directory layout), queued in
// the same transaction as the change that causes them, and delivered by a
// worker over SMTP or HTTP.
package courier

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/Masterminds/sprig/v3"
	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// Template types, in Kratos's names: the folder of each template.
const (
	TemplateVerificationCode = "verification_code"
	TemplateRecoveryCode     = "recovery_code"
	TemplateInvitation       = "invitation"
	// TemplateLoginCode carries a sign-in code (passwordless): Kratos's
	// login_code, whose data has LoginCode.
	TemplateLoginCode = "login_code"
)

// templateTypes are the types with built-in templates.
var templateTypes = []string{TemplateVerificationCode, TemplateRecoveryCode, TemplateInvitation, TemplateLoginCode}

//go:embed templates
var builtin embed.FS

// Courier composes messages. It is safe for concurrent use.
type Courier struct {
	// text and html hold every template, keyed "type/valid/file" (e.g.
	// "verification_code/valid/email.subject.gotmpl"), parsed once at
	// start so that a broken override stops the start, not a request.
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// templateFiles are the files of one template type, in Kratos's layout.
var templateFiles = []string{"email.subject.gotmpl", "email.body.gotmpl", "email.body.plaintext.gotmpl", "sms.body.gotmpl"}

// Option adjusts New.
type Option func(*options)

type options struct {
	overrideDir string
}

// WithTemplateOverrides reads templates from dir first
// (courier.template_override_path): any file of Kratos's layout found there,
// such as verification_code/valid/email.body.gotmpl, replaces the built-in
// one; the others stay built in. Empty: built-in templates only.
func WithTemplateOverrides(dir string) Option {
	return func(o *options) { o.overrideDir = dir }
}

// New parses every template: the built-in ones and the overrides. A template
// that does not parse is an error that names its file.
func New(opts ...Option) (*Courier, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var overrides fs.FS
	if o.overrideDir != "" {
		st, err := os.Stat(o.overrideDir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("courier.template_override_path: %s is not a folder", o.overrideDir)
		}
		overrides = os.DirFS(o.overrideDir)
	}
	c := &Courier{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, typ := range templateTypes {
		for _, f := range templateFiles {
			if err := c.load(typ+"/valid/"+f, overrides, o.overrideDir); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// load parses one template, from the overrides when the file is there. As
// in Kratos, an override is parsed together with its siblings whose names
// start like it (email.body*), so it may define and use partials.
func (c *Courier) load(name string, overrides fs.FS, dir string) error {
	fsys, where, patterns := fs.FS(builtin), "built-in template "+name, []string{"templates/" + name}
	if overrides != nil {
		if _, err := fs.Stat(overrides, name); err == nil {
			stem := strings.TrimSuffix(path.Base(name), ".gotmpl")
			fsys, where = overrides, "courier template "+filepath.Join(dir, filepath.FromSlash(name))
			patterns = []string{name, path.Join(path.Dir(name), stem+"*")}
		}
	}
	base := path.Base(name)
	var err error
	if base == "email.body.gotmpl" {
		var t *htmltemplate.Template
		t, err = htmltemplate.New(base).Option("missingkey=error").Funcs(htmlFuncs).ParseFS(fsys, patterns...)
		c.html[name] = t
	} else {
		var t *texttemplate.Template
		t, err = texttemplate.New(base).Option("missingkey=error").Funcs(textFuncs).ParseFS(fsys, patterns...)
		c.text[name] = t
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// Templates get sprig's functions, as Kratos's do, so that Kratos users'
// templates load unchanged; but not env and expandenv, which would let a
// template print the server's environment (its secrets) into a mail.
var (
	textFuncs = withoutEnv(sprig.TxtFuncMap())
	htmlFuncs = htmltemplate.FuncMap(withoutEnv(sprig.HtmlFuncMap()))
)

func withoutEnv[M ~map[string]any](m M) M {
	delete(m, "env")
	delete(m, "expandenv")
	return m
}

// Compose renders the message of templateType for one address: email
// (subject, plain-text and HTML bodies) or SMS (a text body), by via. data
// is what the template sees (Kratos's fields: To, VerificationCode,
// RecoveryCode, …); it is also kept with the message as JSON with Kratos's
// snake_case keys (to, verification_code, …), which an HTTP channel's
// Jsonnet body reads as ctx.template_data. The message is ready for the
// outbox, stamped now.
func (c *Courier) Compose(via, to, templateType string, data any, now time.Time) (*model.CourierMessage, error) {
	m := &model.CourierMessage{ID: uuid.Must(uuid.NewV7()), Via: via, Recipient: to, TemplateType: templateType,
		CreatedAt: now, UpdatedAt: now}
	base := templateType + "/valid/"
	var err error
	switch via {
	case model.ViaEmail:
		if m.Subject, err = c.renderText(base+"email.subject.gotmpl", data); err != nil {
			return nil, err
		}
		m.Subject = strings.TrimSpace(m.Subject)
		if m.Body, err = c.renderText(base+"email.body.plaintext.gotmpl", data); err != nil {
			return nil, err
		}
		var b bytes.Buffer
		t, ok := c.html[base+"email.body.gotmpl"]
		if !ok {
			return nil, fmt.Errorf("courier: no template %semail.body.gotmpl", base)
		}
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("courier: render %semail.body.gotmpl: %w", base, err)
		}
		m.HTMLBody = b.String()
	case model.ViaSMS:
		if m.Body, err = c.renderText(base+"sms.body.gotmpl", data); err != nil {
			return nil, err
		}
		m.Body = strings.TrimSpace(m.Body)
	default:
		return nil, fmt.Errorf("courier: unknown channel %q", via)
	}
	if m.TemplateData, err = templateData(data); err != nil {
		return nil, fmt.Errorf("courier: template data of %s: %w", templateType, err)
	}
	return m, nil
}

func (c *Courier) renderText(name string, data any) (string, error) {
	t, ok := c.text[name]
	if !ok {
		return "", fmt.Errorf("courier: no template %s", name)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("courier: render %s: %w", name, err)
	}
	return b.String(), nil
}

// templateData is data as a JSON object whose top-level keys are in
// Kratos's snake_case (VerificationCode → verification_code, RequestURL →
// request_url), whatever Go names the caller used: a Kratos user's Jsonnet
// reads ctx.template_data.verification_code. Nested keys (traits) stay as
// they are. Data that is not an object is kept under "data".
func templateData(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return json.Marshal(map[string]json.RawMessage{"data": raw})
		}
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(obj))
	for k, v := range obj {
		out[snakeCase(k)] = v
	}
	return json.Marshal(out)
}

// snakeCase turns a Go name into Kratos's JSON name: an underscore before
// each word, acronyms kept whole (RequestURL → request_url).
func snakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) {
			prevLower := i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]))
			acronymEnd := i > 0 && unicode.IsUpper(r[i-1]) && i+1 < len(r) && unicode.IsLower(r[i+1])
			if prevLower || acronymEnd {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
