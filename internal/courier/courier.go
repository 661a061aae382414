// Package courier is the outbox of emails and SMS: messages composed from
// templates (built in, overridable in Kratos's directory layout), queued in
// the same transaction as the change that causes them, and delivered by a
// worker.
package courier

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// Template types, in Kratos's names: the folder of each template.
const (
	TemplateVerificationCode = "verification_code"
	TemplateRecoveryCode     = "recovery_code"
	TemplateInvitation       = "invitation"
)

//go:embed templates
var builtin embed.FS

// Courier composes messages. It is safe for concurrent use.
type Courier struct {
	files fs.FS
	// parsed holds every template, keyed "type/file" (e.g.
	// "verification_code/valid/email.subject.gotmpl"), parsed once at
	// start so that a broken override stops the start, not a request.
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// templateFiles are the files of one template type, in Kratos's layout.
var templateFiles = []string{"email.subject.gotmpl", "email.body.gotmpl", "email.body.plaintext.gotmpl", "sms.body.gotmpl"}

// New parses the built-in templates. Overrides come with the courier work
// (courier.template_override_path).
func New() (*Courier, error) {
	c := &Courier{files: builtin, text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	for _, typ := range []string{TemplateVerificationCode, TemplateRecoveryCode, TemplateInvitation} {
		for _, f := range templateFiles {
			name := typ + "/valid/" + f
			src, err := fs.ReadFile(builtin, "templates/"+name)
			if err != nil {
				return nil, fmt.Errorf("courier template %s: %w", name, err)
			}
			if f == "email.body.gotmpl" {
				t, err := htmltemplate.New(name).Option("missingkey=error").Parse(string(src))
				if err != nil {
					return nil, fmt.Errorf("courier template %s: %w", name, err)
				}
				c.html[name] = t
				continue
			}
			t, err := texttemplate.New(name).Option("missingkey=error").Parse(string(src))
			if err != nil {
				return nil, fmt.Errorf("courier template %s: %w", name, err)
			}
			c.text[name] = t
		}
	}
	return c, nil
}

// Compose renders the message of templateType for one address: email
// (subject, plain-text and HTML bodies) or SMS (a text body), by via. data
// is what the template sees (Kratos's fields: To, VerificationCode,
// RecoveryCode, …). The message is ready for the outbox, stamped now.
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
