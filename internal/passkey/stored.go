package passkey

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/identityd/identityd/model"
)

// storedConfig is an identity's passkey credential config in Kratos's layout
// (identity.CredentialsWebAuthnConfig): a Kratos export imports as it is,
// and what is written here exports back. Binary fields are standard base64,
// as encoding/json writes []byte.
type storedConfig struct {
	Credentials []storedPasskey `json:"credentials"`
	UserHandle  []byte          `json:"user_handle"`
}

// storedPasskey is one passkey (Kratos's identity.CredentialWebAuthn). The
// fields after IsPasswordless are ours: Kratos ignores them on import, and
// a passkey imported without them gets them from its next sign-in.
type storedPasskey struct {
	ID              []byte              `json:"id"`
	PublicKey       []byte              `json:"public_key"`
	AttestationType string              `json:"attestation_type"`
	Authenticator   storedAuthenticator `json:"authenticator"`
	DisplayName     string              `json:"display_name"`
	AddedAt         time.Time           `json:"added_at"`
	IsPasswordless  bool                `json:"is_passwordless"`

	// Flags are the authenticator's flags as last seen; nil for a passkey
	// imported without them (its backup eligibility is then taken from its
	// first assertion).
	Flags             *storedFlags `json:"flags,omitempty"`
	Transports        []string     `json:"transports,omitempty"`
	AttestationFormat string       `json:"attestation_format,omitempty"`
	LastUsedAt        *time.Time   `json:"last_used_at,omitempty"`
}

type storedAuthenticator struct {
	AAGUID       []byte `json:"aaguid"`
	SignCount    uint32 `json:"sign_count"`
	CloneWarning bool   `json:"clone_warning"`
}

type storedFlags struct {
	UserPresent    bool `json:"user_present"`
	UserVerified   bool `json:"user_verified"`
	BackupEligible bool `json:"backup_eligible"`
	BackupState    bool `json:"backup_state"`
}

// parseConfig reads a stored config; nil and "{}" are no passkeys.
func parseConfig(raw []byte) (*storedConfig, error) {
	c := &storedConfig{}
	if len(raw) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("passkey credential config: %w", err)
	}
	return c, nil
}

// encode is the config as stored: "{}" when no passkey is left, the empty
// config every credential without a secret has.
func (c *storedConfig) encode() ([]byte, error) {
	if len(c.Credentials) == 0 {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("passkey credential config: %w", err)
	}
	return b, nil
}

// find returns the index of the passkey with credential id, or -1.
func (c *storedConfig) find(id []byte) int {
	return slices.IndexFunc(c.Credentials, func(p storedPasskey) bool { return string(p.ID) == string(id) })
}

// webauthnCredentials are the passkeys as go-webauthn checks them.
func (c *storedConfig) webauthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(c.Credentials))
	for i, p := range c.Credentials {
		out[i] = p.webauthn()
	}
	return out
}

func (p *storedPasskey) webauthn() webauthn.Credential {
	transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
	for i, t := range p.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	out := webauthn.Credential{
		ID:                p.ID,
		PublicKey:         p.PublicKey,
		AttestationType:   p.AttestationType,
		AttestationFormat: p.AttestationFormat,
		Transport:         transports,
		Authenticator: webauthn.Authenticator{
			AAGUID:       p.Authenticator.AAGUID,
			SignCount:    p.Authenticator.SignCount,
			CloneWarning: p.Authenticator.CloneWarning,
		},
	}
	if f := p.Flags; f != nil {
		var raw protocol.AuthenticatorFlags
		for _, b := range []struct {
			on   bool
			flag protocol.AuthenticatorFlags
		}{{f.UserPresent, protocol.FlagUserPresent}, {f.UserVerified, protocol.FlagUserVerified},
			{f.BackupEligible, protocol.FlagBackupEligible}, {f.BackupState, protocol.FlagBackupState}} {
			if b.on {
				raw |= b.flag
			}
		}
		out.Flags = webauthn.NewCredentialFlags(raw)
	}
	return out
}

// newStoredPasskey is a passkey just registered.
func newStoredPasskey(c *webauthn.Credential, displayName string, now time.Time) storedPasskey {
	transports := make([]string, len(c.Transport))
	for i, t := range c.Transport {
		transports[i] = string(t)
	}
	return storedPasskey{
		ID:              c.ID,
		PublicKey:       c.PublicKey,
		AttestationType: c.AttestationType,
		Authenticator: storedAuthenticator{
			AAGUID:    c.Authenticator.AAGUID,
			SignCount: c.Authenticator.SignCount,
		},
		DisplayName:       displayName,
		AddedAt:           now,
		IsPasswordless:    true,
		Flags:             flagsOf(c.Flags),
		Transports:        transports,
		AttestationFormat: c.AttestationFormat,
	}
}

func flagsOf(f webauthn.CredentialFlags) *storedFlags {
	return &storedFlags{UserPresent: f.UserPresent, UserVerified: f.UserVerified, BackupEligible: f.BackupEligible, BackupState: f.BackupState}
}

// model is the passkey as the API shows it: no key.
func (p *storedPasskey) model() *model.Passkey {
	out := &model.Passkey{ID: base64.RawURLEncoding.EncodeToString(p.ID), CreatedAt: p.AddedAt.UTC()}
	if p.DisplayName != "" {
		name := p.DisplayName
		out.DisplayName = &name
	}
	if p.LastUsedAt != nil {
		t := p.LastUsedAt.UTC()
		out.LastUsedAt = &t
	}
	return out
}

// user is an identity as go-webauthn sees it.
type user struct {
	handle      []byte
	name        string
	credentials []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.credentials }
