package session

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/mfa"
	"github.com/identityd/identityd/model"
)

// MFAConfig is second factors: which methods may be set up, and the keys
// they are kept with.
type MFAConfig struct {
	// TOTPEnabled lets identities set up an authenticator app.
	TOTPEnabled bool
	// TOTPIssuer names this service in authenticator apps.
	TOTPIssuer string
	// LookupEnabled lets identities generate lookup secrets.
	LookupEnabled bool
	// Secrets seal TOTP keys and hash lookup secrets.
	Secrets *mfa.Secrets
}

// A switched-off method stops new set-ups only: second factors set up
// before keep working, so that switching a method off never locks anyone
// out of an account that requires AAL2.

// TOTPSetup is an authenticator app key being set up, shown once.
type TOTPSetup struct {
	Secret    string
	URL       string
	QRCodePNG string
}

// secondFactorKeys are the counters of second-factor codes, per identity:
// a session that holds the password guesses against them.
func (s *Service) secondFactorKeys(identityID uuid.UUID, c Client) throttleKeys {
	return s.keys("second factor", identityID.String(), c)
}

// errAAL2Required refuses a session that has not used its identity's
// second factor.
func errAAL2Required() error {
	return &model.Error{Code: model.CodeSessionAAL2Required,
		Message: "this account has a second factor and this session has not used it: finish signing in with loginSecondFactor"}
}

// canManage checks that sess may change its identity's second factors: an
// AAL2 session when the identity has a second factor (a stolen password
// alone must not remove or replace it), signed in recently.
func (s *Service) canManage(sess *model.Session, path string) error {
	if sess.NeedsAAL2() {
		return errAAL2Required()
	}
	if !s.privileged(sess) {
		return &model.Error{Code: model.CodeReauthenticationRequired, Path: path,
			Message: fmt.Sprintf("how this account signs in can be changed only within %s of signing in: sign in again, then retry", s.cfg.PrivilegedFor)}
	}
	return nil
}

// lift is the change that takes sess to AAL2 by method, at now.
func lift(sess *model.Session, method model.CredentialType, now time.Time) *db.SessionLift {
	methods := append(slices.Clone(sess.AuthenticationMethods),
		&model.AuthenticationMethod{Method: method, AAL: model.AuthenticatorAssuranceLevelAal2, CompletedAt: now})
	return &db.SessionLift{SessionID: sess.ID, IdentityID: sess.IdentityID, Methods: methods, AuthenticatedAt: now}
}

// lifted is sess as a lift leaves it.
func lifted(sess *model.Session, l *db.SessionLift) *model.Session {
	out := *sess
	out.AAL = model.AuthenticatorAssuranceLevelAal2
	out.AuthenticationMethods = l.Methods
	out.AuthenticatedAt = l.AuthenticatedAt
	if sess.Identity != nil {
		ident := *sess.Identity
		ident.AvailableAAL = model.AuthenticatorAssuranceLevelAal2
		out.Identity = &ident
	}
	return &out
}

// secondFactor finds the identity's credential of typ among factors.
func secondFactor(factors []db.StoredSecondFactor, typ string) (db.StoredSecondFactor, bool) {
	for _, f := range factors {
		if f.Type == typ {
			return f, true
		}
	}
	return db.StoredSecondFactor{}, false
}

// SetupTOTP makes a new authenticator app key for sess's identity and keeps
// it, sealed, until ConfirmTOTP or the privileged window's length passes.
func (s *Service) SetupTOTP(ctx context.Context, sess *model.Session) (*TOTPSetup, error) {
	if !s.cfg.MFA.TOTPEnabled {
		return nil, &model.Error{Code: model.CodeMethodDisabled, Message: "authenticator apps (TOTP) are switched off here (selfservice.methods.totp.enabled)"}
	}
	if err := s.canManage(sess, ""); err != nil {
		return nil, err
	}
	factors, err := s.store.SecondFactors(ctx, sess.IdentityID)
	if err != nil {
		return nil, err
	}
	if _, ok := secondFactor(factors, db.CredentialTOTP); ok {
		return nil, &model.Error{Code: model.CodeConflict, Message: "an authenticator app is set up already: remove it first (removeTotp)"}
	}
	secret, url, err := mfa.NewTOTP(s.cfg.MFA.TOTPIssuer, s.identities.TOTPAccountName(sess.Identity), s.random)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	sealed, err := s.cfg.MFA.Secrets.SealTOTP(sess.IdentityID, url)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	now := s.clock()
	if err := s.store.PutTOTPSetup(ctx, sess.IdentityID, sealed, now.Add(s.cfg.PrivilegedFor), now); err != nil {
		return nil, err
	}
	qr, err := mfa.QRCodePNG(url)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	return &TOTPSetup{Secret: secret, URL: url, QRCodePNG: qr}, nil
}

// ConfirmTOTP activates the key being set up with a code from the app, and
// lifts sess to AAL2: it has just used both factors. Codes are throttled
// as loginSecondFactor's are.
func (s *Service) ConfirmTOTP(ctx context.Context, sess *model.Session, code string, c Client) (*model.Identity, error) {
	if !s.cfg.MFA.TOTPEnabled {
		return nil, &model.Error{Code: model.CodeMethodDisabled, Message: "authenticator apps (TOTP) are switched off here (selfservice.methods.totp.enabled)"}
	}
	if sess.NeedsAAL2() {
		return nil, errAAL2Required()
	}
	keys := s.secondFactorKeys(sess.IdentityID, c)
	if err := s.reserve(ctx, keys); err != nil {
		return nil, err
	}
	now := s.clock()
	sealed, err := s.store.TOTPSetup(ctx, sess.IdentityID, now)
	if err != nil {
		s.settleOrLog(ctx, keys)
		if model.ErrorCodeOf(err) == model.CodeNotFound {
			return nil, &model.Error{Code: model.CodeNotFound,
				Message: "no authenticator app is being set up (or its setup expired): call setupTotp first"}
		}
		return nil, err
	}
	url, _, err := s.cfg.MFA.Secrets.OpenTOTP(sess.IdentityID, sealed)
	if err != nil {
		return nil, fmt.Errorf("totp setup: %w", err)
	}
	step, ok, err := mfa.CheckTOTP(url, code, now, 0)
	if err != nil {
		return nil, fmt.Errorf("totp setup: %w", err)
	}
	if !ok {
		return nil, &model.Error{Code: model.CodeInvalidCode, Path: "/code",
			Message: "wrong code: type the code the app shows now (check that the device's clock is right)"}
	}
	s.settleOrLog(ctx, keys)
	config, err := s.cfg.MFA.Secrets.TOTPCredential(sess.IdentityID, url, step, now)
	if err != nil {
		return nil, fmt.Errorf("totp: %w", err)
	}
	if err := s.store.PutSecondFactor(ctx, sess.IdentityID, db.SecondFactor{Type: db.CredentialTOTP, Config: config}, true,
		lift(sess, model.CredentialTypeTotp, now), now); err != nil {
		return nil, err
	}
	return s.identities.Get(ctx, sess.IdentityID)
}

// RemoveTOTP removes sess's identity's authenticator app.
func (s *Service) RemoveTOTP(ctx context.Context, sess *model.Session) (*model.Identity, error) {
	return s.removeSecondFactor(ctx, sess, db.CredentialTOTP, "no authenticator app is set up")
}

// RemoveLookupSecrets removes sess's identity's lookup secrets.
func (s *Service) RemoveLookupSecrets(ctx context.Context, sess *model.Session) (*model.Identity, error) {
	return s.removeSecondFactor(ctx, sess, db.CredentialLookupSecret, "no lookup secrets are set up")
}

func (s *Service) removeSecondFactor(ctx context.Context, sess *model.Session, typ, none string) (*model.Identity, error) {
	if err := s.canManage(sess, ""); err != nil {
		return nil, err
	}
	if _, err := s.store.DeleteSecondFactor(ctx, sess.IdentityID, typ, false, s.clock()); err != nil {
		if model.ErrorCodeOf(err) == model.CodeNotFound {
			return nil, &model.Error{Code: model.CodeNotFound, Message: none}
		}
		return nil, err
	}
	return s.identities.Get(ctx, sess.IdentityID)
}

// GenerateLookupSecrets replaces sess's identity's lookup secrets with
// LookupCodeCount new ones, returned once. A session whose identity had no
// second factor is lifted to AAL2: it may set up the factor, and from now
// on the factor is required.
func (s *Service) GenerateLookupSecrets(ctx context.Context, sess *model.Session) ([]string, error) {
	if !s.cfg.MFA.LookupEnabled {
		return nil, &model.Error{Code: model.CodeMethodDisabled, Message: "lookup secrets are switched off here (selfservice.methods.lookup_secret.enabled)"}
	}
	if err := s.canManage(sess, ""); err != nil {
		return nil, err
	}
	codes, err := mfa.NewLookupCodes(s.random)
	if err != nil {
		return nil, fmt.Errorf("lookup secrets: %w", err)
	}
	now := s.clock()
	config, err := s.cfg.MFA.Secrets.LookupCredential(sess.IdentityID, codes, now)
	if err != nil {
		return nil, fmt.Errorf("lookup secrets: %w", err)
	}
	var l *db.SessionLift
	if sess.AAL != model.AuthenticatorAssuranceLevelAal2 {
		l = lift(sess, model.CredentialTypeLookupSecret, now)
	}
	if err := s.store.PutSecondFactor(ctx, sess.IdentityID, db.SecondFactor{Type: db.CredentialLookupSecret, Config: config}, false, l, now); err != nil {
		return nil, err
	}
	return codes, nil
}

// LoginSecondFactor checks a TOTP code or a lookup secret of sess's
// identity and lifts sess to AAL2, keeping its token. Each attempt is
// charged to the identity's second-factor counters before the check and
// handed back when right. A code is used up in the same transaction as the
// session is lifted, by a compare-and-set on the credential, so two
// requests with one code never both succeed.
func (s *Service) LoginSecondFactor(ctx context.Context, sess *model.Session, in *model.LoginSecondFactorInput, c Client) (*model.Session, error) {
	totpCode, lookupCode := deref(in.TotpCode), deref(in.LookupSecret)
	if (in.TotpCode == nil) == (in.LookupSecret == nil) {
		return nil, &model.Error{Code: model.CodeValidationFailed, Message: "give exactly one of totpCode and lookupSecret"}
	}
	typ, path := db.CredentialTOTP, "/totpCode"
	if in.LookupSecret != nil {
		typ, path = db.CredentialLookupSecret, "/lookupSecret"
	}
	if len(totpCode) > 16 || len(lookupCode) > 64 {
		return nil, &model.Error{Code: model.CodeInvalidCode, Path: path, Message: "wrong code"}
	}
	keys := s.secondFactorKeys(sess.IdentityID, c)
	if err := s.reserve(ctx, keys); err != nil {
		return nil, err
	}
	factors, err := s.store.SecondFactors(ctx, sess.IdentityID)
	if err != nil {
		return nil, err
	}
	f, ok := secondFactor(factors, typ)
	if !ok {
		s.settleOrLog(ctx, keys)
		what := "an authenticator app"
		if typ == db.CredentialLookupSecret {
			what = "lookup secrets"
		}
		return nil, &model.Error{Code: model.CodeNotFound, Path: path, Message: "this account has no " + what}
	}
	now := s.clock()
	var config []byte
	var method model.CredentialType
	if typ == db.CredentialTOTP {
		config, ok, err = s.useTOTP(sess.IdentityID, f, totpCode, now)
		method = model.CredentialTypeTotp
	} else {
		config, ok, err = s.useLookup(sess.IdentityID, f, lookupCode, now)
		method = model.CredentialTypeLookupSecret
	}
	if err != nil {
		return nil, err
	}
	wrong := &model.Error{Code: model.CodeInvalidCode, Path: path, Message: "wrong or already used code"}
	if !ok {
		return nil, wrong // a failed guess: it stays counted
	}
	l := lift(sess, method, now)
	won, err := s.store.UseSecondFactor(ctx, f, config, l, now)
	if err != nil {
		return nil, err
	}
	if !won {
		return nil, wrong // another request used the credential first
	}
	s.settleOrLog(ctx, keys)
	return lifted(sess, l), nil
}

// useTOTP checks code against a TOTP credential and returns the config that
// records its use (resealed with the first key when an older one opened
// it), or ok false.
func (s *Service) useTOTP(identityID uuid.UUID, f db.StoredSecondFactor, code string, now time.Time) ([]byte, bool, error) {
	var cfg mfa.TOTPConfig
	if err := json.Unmarshal(f.Config, &cfg); err != nil {
		return nil, false, fmt.Errorf("totp credential of %s: %w", identityID, err)
	}
	url, stale, err := s.cfg.MFA.Secrets.OpenTOTP(identityID, cfg.SealedURL)
	if err != nil {
		return nil, false, fmt.Errorf("totp credential of %s: %w", identityID, err)
	}
	step, ok, err := mfa.CheckTOTP(url, code, now, cfg.LastStep)
	if err != nil || !ok {
		return nil, false, err
	}
	cfg.LastStep = step
	if stale {
		if cfg.SealedURL, err = s.cfg.MFA.Secrets.SealTOTP(identityID, url); err != nil {
			return nil, false, err
		}
	}
	out, err := json.Marshal(cfg)
	return out, err == nil, err
}

// useLookup checks code against the unused lookup secrets and returns the
// config with the one it matched marked used, or ok false.
func (s *Service) useLookup(identityID uuid.UUID, f db.StoredSecondFactor, code string, now time.Time) ([]byte, bool, error) {
	var cfg mfa.LookupConfig
	if err := json.Unmarshal(f.Config, &cfg); err != nil {
		return nil, false, fmt.Errorf("lookup secrets of %s: %w", identityID, err)
	}
	hashes := make([]string, len(cfg.Codes))
	for i, c := range cfg.Codes {
		if c.UsedAt == nil {
			hashes[i] = c.Hash
		}
	}
	i := s.cfg.MFA.Secrets.Lookup.Match(identityID, code, hashes)
	if i < 0 {
		return nil, false, nil
	}
	cfg.Codes[i].UsedAt = &now
	out, err := json.Marshal(cfg)
	return out, err == nil, err
}

// SecondFactors tells which second factors an identity has, without
// secrets.
func (s *Service) SecondFactors(ctx context.Context, identityID uuid.UUID) (*model.SecondFactors, error) {
	factors, err := s.store.SecondFactors(ctx, identityID)
	if err != nil {
		return nil, err
	}
	out := &model.SecondFactors{}
	for _, f := range factors {
		switch f.Type {
		case db.CredentialTOTP:
			var cfg mfa.TOTPConfig
			_ = json.Unmarshal(f.Config, &cfg)
			out.Totp = true
			at := f.CreatedAt
			if !cfg.SetUpAt.IsZero() {
				at = cfg.SetUpAt
			}
			out.TotpSetUpAt = &at
		case db.CredentialLookupSecret:
			var cfg mfa.LookupConfig
			_ = json.Unmarshal(f.Config, &cfg)
			n := cfg.Remaining()
			at := f.UpdatedAt
			if !cfg.GeneratedAt.IsZero() {
				at = cfg.GeneratedAt
			}
			out.LookupSecretsRemaining, out.LookupSecretsGeneratedAt = &n, &at
		}
	}
	return out, nil
}

// DeleteSecondFactor removes an identity's TOTP app or lookup secrets for
// an admin, and ends its AAL2 sessions: whoever holds the lost factor is
// signed out.
func (s *Service) DeleteSecondFactor(ctx context.Context, identityID uuid.UUID, typ model.CredentialType) (*model.Identity, error) {
	var stored string
	switch typ {
	case model.CredentialTypeTotp:
		stored = db.CredentialTOTP
	case model.CredentialTypeLookupSecret:
		stored = db.CredentialLookupSecret
	default:
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/type",
			Message: fmt.Sprintf("only second factors (TOTP, LOOKUP_SECRET) can be removed this way, not %s", typ)}
	}
	if _, err := s.identities.GetWith(ctx, identityID, 0); err != nil {
		return nil, err
	}
	if _, err := s.store.DeleteSecondFactor(ctx, identityID, stored, true, s.clock()); err != nil {
		return nil, err
	}
	return s.identities.Get(ctx, identityID)
}

// PruneTOTPSetups deletes TOTP setups nobody confirmed in time.
func (s *Service) PruneTOTPSetups(ctx context.Context) (int, error) {
	return s.store.PruneTOTPSetups(ctx, s.clock())
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
