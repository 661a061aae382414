package courier

import (
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/model"
)

func TestComposeBuiltins(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	data := map[string]any{"To": "a@example.com", "VerificationCode": "123456", "RecoveryCode": "654321", "InvitationCode": "999000", "ExpiresInMinutes": 60}
	for _, typ := range []string{TemplateVerificationCode, TemplateRecoveryCode, TemplateInvitation} {
		m, err := c.Compose(model.ViaEmail, "a@example.com", typ, data, now)
		if err != nil {
			t.Fatalf("%s email: %v", typ, err)
		}
		if m.Subject == "" || m.Body == "" || m.HTMLBody == "" || m.Recipient != "a@example.com" || m.TemplateType != typ || m.Via != model.ViaEmail {
			t.Errorf("%s email: %+v", typ, m)
		}
		s, err := c.Compose(model.ViaSMS, "+14155552671", typ, data, now)
		if err != nil {
			t.Fatalf("%s sms: %v", typ, err)
		}
		if s.Subject != "" || s.HTMLBody != "" || !strings.ContainsAny(s.Body, "0123456789") {
			t.Errorf("%s sms: %+v", typ, s)
		}
	}
	if _, err := c.Compose(model.ViaEmail, "a@example.com", TemplateVerificationCode, map[string]any{}, now); err == nil {
		t.Error("a template's missing field rendered")
	}
	if _, err := c.Compose("pigeon", "a", TemplateVerificationCode, data, now); err == nil {
		t.Error("an unknown channel composed")
	}
}
