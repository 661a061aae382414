package code

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/model"
)

// templates names the courier template that carries a code of each purpose,
// and the template field the code goes in (Kratos's names, so Kratos users'
// templates render unchanged).
var templates = map[string]struct{ typ, field string }{
	db.PurposeVerification: {courier.TemplateVerificationCode, "VerificationCode"},
	db.PurposeRecovery:     {courier.TemplateRecoveryCode, "RecoveryCode"},
	db.PurposeInvitation:   {courier.TemplateInvitation, "InvitationCode"},
	db.PurposeLogin:        {courier.TemplateLoginCode, "LoginCode"},
}

// Message composes the message that carries a code (plain, as made) of
// purpose to t's address, stamped now. ident is the identity it belongs to,
// for templates that greet by a trait; its fields are given as Kratos gives
// them (Identity.traits, Identity.id, …).
func Message(c *courier.Courier, purpose string, t Target, plain string, lifespan time.Duration, ident *model.Identity, now time.Time) (*model.CourierMessage, error) {
	tpl, ok := templates[purpose]
	if !ok {
		return nil, fmt.Errorf("code: no message for purpose %q", purpose)
	}
	data := map[string]any{
		"To":               t.Address,
		tpl.field:          plain,
		"ExpiresInMinutes": int(lifespan / time.Minute),
		"Identity":         identityData(ident),
		"RequestURL":       "",
		"TransientPayload": map[string]any{},
	}
	return c.Compose(t.Via, t.Address, tpl.typ, data, now)
}

// identityData is the identity as Kratos's templates see it: its JSON.
func identityData(ident *model.Identity) map[string]any {
	if ident == nil {
		return map[string]any{}
	}
	var traits, public any
	_ = json.Unmarshal(ident.Traits, &traits)
	if !ident.MetadataPublic.IsNull() {
		_ = json.Unmarshal(ident.MetadataPublic, &public)
	}
	state := model.StateActiveJSON
	if ident.State == model.IdentityStateInactive {
		state = model.StateInactiveJSON
	}
	return map[string]any{
		"id": ident.ID.String(), "schema_id": ident.SchemaID, "state": state,
		"traits": traits, "metadata_public": public,
	}
}
