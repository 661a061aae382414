package passkey

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// handleAlphabet is what user handles are made of: Kratos makes them of 64
// random alphanumerics, so its identifier rows hold them as text.
const handleAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newUserHandle makes a user handle: 64 characters of handleAlphabet from
// random (about 381 bits), the most WebAuthn allows.
func newUserHandle(random io.Reader) ([]byte, error) {
	out := make([]byte, 0, 64)
	buf := make([]byte, 96)
	for len(out) < 64 {
		if _, err := io.ReadFull(random, buf); err != nil {
			return nil, fmt.Errorf("passkey user handle: %w", err)
		}
		for _, b := range buf {
			// 248 = 4·62: rejecting the rest keeps every character equally
			// likely.
			if b < 248 && len(out) < 64 {
				out = append(out, handleAlphabet[b%62])
			}
		}
	}
	return out, nil
}

// BeginRegistration begins registering a passkey for sess's identity. It
// needs a session allowed to change how its identity signs in (see
// session.Service.RequireManage). The options exclude the identity's
// passkeys, so an authenticator that holds one says so instead of making a
// second.
func (s *Service) BeginRegistration(ctx context.Context, sess *model.Session) (*Challenge, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	if err := s.sessions.RequireManage(sess, ""); err != nil {
		return nil, err
	}
	cred, err := s.store.PasskeyCredentialOf(ctx, sess.IdentityID)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(cred.Config)
	if err != nil {
		return nil, err
	}
	if len(cfg.Credentials) >= MaxPasskeys {
		return nil, &model.Error{Code: model.CodeValidationFailed,
			Message: fmt.Sprintf("an account holds at most %d passkeys: remove one first", MaxPasskeys)}
	}
	// The handle is stable once a passkey holds it; the first registration
	// makes one, stored when it finishes.
	handle := cfg.UserHandle
	if len(handle) == 0 {
		if handle, err = newUserHandle(s.random); err != nil {
			return nil, err
		}
	}
	name, err := s.userName(ctx, sess, handle)
	if err != nil {
		return nil, err
	}
	u := &user{handle: handle, name: name, credentials: cfg.webauthnCredentials()}
	exclude := make([]protocol.CredentialDescriptor, len(u.credentials))
	for i := range u.credentials {
		exclude[i] = u.credentials[i].Descriptor()
	}
	creation, data, err := s.web.BeginRegistration(u,
		webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		// credProps tells whether the authenticator made a discoverable
		// credential; asked for, so a browser that reports it is expected.
		func(o *protocol.PublicKeyCredentialCreationOptions) error {
			o.Extensions.CredProps = true
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("passkey registration: %w", err)
	}
	id := sess.IdentityID
	return s.putChallenge(ctx, db.PasskeyRegistration, &id, "", data, creation.Response, openRegistrations)
}

// userName is what a passkey manager lists the passkey under: a trait the
// schema marks as the passkey display name, else a login identifier, else
// the identity's id.
func (s *Service) userName(ctx context.Context, sess *model.Session, handle []byte) (string, error) {
	ids, err := s.store.PasskeyUserNames(ctx, sess.IdentityID)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		if id.Value != string(handle) {
			return id.Value, nil
		}
	}
	return sess.IdentityID.String(), nil
}

// FinishRegistration verifies the browser's answer to a registration begun
// by the same identity (origin, RP id, challenge, attestation) and adds the
// passkey.
func (s *Service) FinishRegistration(ctx context.Context, sess *model.Session, in *model.FinishPasskeyRegistrationInput) (*model.Identity, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	raw, err := credentialJSON(in.Credential)
	if err != nil {
		return nil, err
	}
	displayName, err := checkDisplayName(in.DisplayName)
	if err != nil {
		return nil, err
	}
	if err := s.sessions.RequireManage(sess, ""); err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBody(bytes.NewReader(raw))
	if err != nil {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/credential",
			Message: "the credential is not what navigator.credentials.create returns: " + verifyDetail(err)}
	}
	id := sess.IdentityID
	_, data, err := s.takeChallenge(ctx, in.ChallengeID, db.PasskeyRegistration, &id)
	if err != nil {
		return nil, err
	}
	created, err := s.web.CreateCredential(&user{handle: data.UserID}, *data, parsed)
	if err != nil {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/credential",
			Message: "the passkey does not verify: " + verifyDetail(err)}
	}
	now := s.clock()
	err = s.store.UpdatePasskeys(ctx, sess.IdentityID, now, func(cur *db.PasskeyCredential) (*db.PasskeyUpdate, error) {
		cfg, err := parseConfig(cur.Config)
		if err != nil {
			return nil, err
		}
		switch {
		case len(cfg.UserHandle) == 0 || len(cfg.Credentials) == 0:
			cfg.UserHandle = data.UserID
		case !bytes.Equal(cfg.UserHandle, data.UserID):
			// Another registration, begun at the same time, finished first
			// with a handle of its own: this passkey holds the other one.
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/challengeId",
				Message: "another passkey registration of this account finished meanwhile: begin again"}
		}
		if cfg.find(created.ID) >= 0 {
			return nil, &model.Error{Code: model.CodeConflict, Path: "/credential", Message: "this passkey is registered already"}
		}
		if len(cfg.Credentials) >= MaxPasskeys {
			return nil, &model.Error{Code: model.CodeValidationFailed,
				Message: fmt.Sprintf("an account holds at most %d passkeys: remove one first", MaxPasskeys)}
		}
		cfg.Credentials = append(cfg.Credentials, newStoredPasskey(created, displayName, now))
		b, err := cfg.encode()
		if err != nil {
			return nil, err
		}
		return &db.PasskeyUpdate{Config: b, UserHandle: string(cfg.UserHandle),
			Events: []*model.Event{passkeyEvent(ctx, model.EventCredentialAdded, sess.IdentityID, now)}}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.identities.Get(ctx, sess.IdentityID)
}

// checkDisplayName trims a passkey's name and checks it: at most
// MaxDisplayName characters, printable.
func checkDisplayName(p *string) (string, error) {
	if p == nil {
		return "", nil
	}
	if len(*p) > 4*MaxDisplayName || !utf8.ValidString(*p) {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: "/displayName",
			Message: fmt.Sprintf("the name must be at most %d characters", MaxDisplayName)}
	}
	name := strings.TrimSpace(*p)
	if utf8.RuneCountInString(name) > MaxDisplayName {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: "/displayName",
			Message: fmt.Sprintf("the name must be at most %d characters", MaxDisplayName)}
	}
	if strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return "", &model.Error{Code: model.CodeValidationFailed, Path: "/displayName",
			Message: "the name must not hold control or invisible characters"}
	}
	return name, nil
}

// Remove removes one of sess's identity's passkeys, by its id (base64url).
// It needs a session allowed to change how its identity signs in, and never
// removes the last way to sign in: without a password, an OpenID Connect
// link, another passkey (or a WebAuthn key or sign-in code credential), it
// is refused (VALIDATION_FAILED).
func (s *Service) Remove(ctx context.Context, sess *model.Session, id string) (*model.Identity, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	if err := s.sessions.RequireManage(sess, ""); err != nil {
		return nil, err
	}
	notFound := &model.Error{Code: model.CodeNotFound, Path: "/id", Message: "the account has no such passkey"}
	credID, ok := decodeID(id)
	if !ok {
		return nil, notFound
	}
	err := s.store.UpdatePasskeys(ctx, sess.IdentityID, s.clock(), func(cur *db.PasskeyCredential) (*db.PasskeyUpdate, error) {
		cfg, err := parseConfig(cur.Config)
		if err != nil {
			return nil, err
		}
		i := cfg.find(credID)
		if i < 0 {
			return nil, notFound
		}
		if len(cfg.Credentials) == 1 && len(cur.OtherSignIn) == 0 {
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/id",
				Message: "this passkey is the account's last way to sign in: set a password or add another passkey first"}
		}
		cfg.Credentials = append(cfg.Credentials[:i], cfg.Credentials[i+1:]...)
		b, err := cfg.encode()
		if err != nil {
			return nil, err
		}
		return &db.PasskeyUpdate{Config: b, UserHandle: string(cfg.UserHandle),
			Events: []*model.Event{passkeyEvent(ctx, model.EventCredentialRemoved, sess.IdentityID, s.clock())}}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.identities.Get(ctx, sess.IdentityID)
}

// decodeID reads a passkey id: base64url, padded or not.
func decodeID(id string) ([]byte, bool) {
	if len(id) > 1024 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(id, "="))
	return b, err == nil && len(b) > 0
}

// passkeyEvent is a credential.added or credential.removed event of a
// passkey of identityID, by the signed-in identity.
func passkeyEvent(ctx context.Context, typ string, identityID uuid.UUID, now time.Time) *model.Event {
	e := model.NewEvent(ctx, typ, identityID, true, now)
	e.Data = model.JSON(`{"credential_type":"` + db.CredentialPasskey + `"}`)
	return e
}
