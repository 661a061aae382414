package passkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// Failed sign-ins from one client address (see clientKey) are limited as
// password logins are: loginFree failures, then waits doubling from 1s up to
// loginMaxWait; failures are forgotten loginWindow after the last. A good
// sign-in gives its attempt back.
const (
	loginFree    = 20
	loginMaxWait = 15 * time.Minute
	loginWindow  = time.Hour
	// useRetries is how often a sign-in reads the passkeys again when
	// another write changed them between its read and its write.
	useRetries = 3
)

// errInvalid is the one answer for an answer that does not verify, whatever
// the reason: a client learns nothing about which accounts or passkeys
// exist.
func errInvalid() *model.Error {
	return &model.Error{Code: model.CodeInvalidCredentials, Message: "the passkey could not be verified"}
}

// BeginLogin begins a sign-in. With an identifier, the options allow that
// identity's passkeys; for an identifier without an account (or without
// passkeys) they allow one stand-in credential id derived from the
// identifier, so that the answer has the same shape and stays the same when
// asked again. Without one, they allow any discoverable passkey of this
// relying party, and the browser lets the user pick. The identity's state
// is not looked at here: a disabled account is told apart only after its
// passkey verified.
func (s *Service) BeginLogin(ctx context.Context, in *model.BeginPasskeyLoginInput, c session.Client) (*Challenge, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	open, err := s.store.OpenPasskeyChallenges(ctx, maxOpenChallenges)
	if err != nil {
		return nil, err
	}
	if open >= maxOpenChallenges {
		return nil, &model.Error{Code: model.CodeTooManyAttempts, RetryAfter: 30 * time.Second,
			Message: "too many passkey sign-ins are waiting to finish: try again in 30 seconds"}
	}
	key := clientKey(c)
	if in.Identifier == nil || strings.TrimSpace(*in.Identifier) == "" {
		assertion, data, err := s.web.BeginDiscoverableLogin()
		if err != nil {
			return nil, fmt.Errorf("passkey sign-in: %w", err)
		}
		return s.putChallenge(ctx, db.PasskeyLogin, nil, key, data, assertion.Response, openLoginsPerClient)
	}
	u, identityID, err := s.userByIdentifier(ctx, *in.Identifier)
	if err != nil {
		return nil, err
	}
	var assertion *protocol.CredentialAssertion
	var data *webauthn.SessionData
	if u != nil {
		assertion, data, err = s.web.BeginLogin(u)
	} else {
		stand := protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType,
			CredentialID: s.fakeCredentialID(canonicalIdentifier(*in.Identifier)),
			Transport:    []protocol.AuthenticatorTransport{protocol.Hybrid, protocol.Internal}}
		assertion, data, err = s.web.BeginDiscoverableLogin(webauthn.WithAllowedCredentials([]protocol.CredentialDescriptor{stand}))
	}
	if err != nil {
		return nil, fmt.Errorf("passkey sign-in: %w", err)
	}
	return s.putChallenge(ctx, db.PasskeyLogin, identityID, key, data, assertion.Response, openLoginsPerClient)
}

// userByIdentifier finds the identity a login identifier names and its
// passkeys; nil when it has none or there is no such identity. Both paths
// read the same tables, so they cost about the same. An identifier no
// identity can hold (longer than schemas.MaxIdentifierBytes, control
// characters) has no lookup forms and costs no identifier query.
func (s *Service) userByIdentifier(ctx context.Context, identifier string) (*user, *uuid.UUID, error) {
	id, err := s.store.FindLoginIdentity(ctx, lookupForms(identifier))
	if err != nil && model.ErrorCodeOf(err) != model.CodeNotFound {
		return nil, nil, err
	}
	cred, err := s.store.PasskeyCredentialOf(ctx, id) // uuid.Nil when unknown: NOT_FOUND
	if err != nil {
		if model.ErrorCodeOf(err) == model.CodeNotFound {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	cfg, err := parseConfig(cred.Config)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Credentials) == 0 || len(cfg.UserHandle) == 0 {
		return nil, nil, nil
	}
	return &user{handle: cfg.UserHandle, name: identifier, credentials: cfg.webauthnCredentials()}, &id, nil
}

// lookupForms lists the stored forms a login identifier may match, as a
// password login tries them (see internal/identity).
func lookupForms(identifier string) []string {
	forms := schemas.LoginCandidates(identifier)
	if legacy := schemas.LegacyIdentifier(identifier); legacy != "" && !slices.Contains(forms, legacy) {
		forms = append(forms, legacy)
	}
	return forms
}

// canonicalIdentifier is the one form every spelling of an identifier
// shares (its most normalised form), so that a stand-in id does not tell
// one spelling from another.
func canonicalIdentifier(identifier string) string {
	if forms := schemas.LoginCandidates(identifier); len(forms) > 0 {
		return forms[len(forms)-1]
	}
	return identifier
}

// FinishLogin verifies an assertion against the challenge it answers and
// the passkey it names (origin, RP id, challenge, signature, user presence,
// and a sign counter that moved forward), records the passkey's new
// counter with a compare-and-set, and signs its identity in with an AAL1
// session. Every failure of the assertion is INVALID_CREDENTIALS; an
// unknown, used or expired challenge is INVALID_CODE; a disabled account is
// ACCOUNT_DISABLED, told only after the passkey verified.
func (s *Service) FinishLogin(ctx context.Context, in *model.FinishPasskeyLoginInput, c session.Client) (*session.Issued, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	raw, err := credentialJSON(in.Credential)
	if err != nil {
		return nil, err
	}
	throttle := s.throttleKeys(c)
	if err := s.reserve(ctx, throttle); err != nil {
		return nil, err
	}
	identityID, err := s.verifyAssertion(ctx, in.ChallengeID, raw)
	if err != nil {
		return nil, err
	}
	// The passkey verified: whatever follows, this was no guess.
	s.settle(ctx, throttle)
	ident, err := s.identities.GetWith(ctx, identityID, 0)
	if err != nil {
		return nil, err
	}
	if ident.State != model.IdentityStateActive {
		return nil, &model.Error{Code: model.CodeAccountDisabled, Message: "account is disabled"}
	}
	return s.sessions.Issue(ctx, ident, model.CredentialTypePasskey, c)
}

// verifyAssertion takes the challenge, verifies the assertion raw and
// records the passkey's use; it returns the identity signed in.
func (s *Service) verifyAssertion(ctx context.Context, challengeID uuid.UUID, raw []byte) (uuid.UUID, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		slog.DebugContext(ctx, "passkey sign-in: unreadable assertion", "error", verifyDetail(err))
		return uuid.Nil, &model.Error{Code: model.CodeInvalidCredentials, Path: "/credential",
			Message: "the credential is not what navigator.credentials.get returns"}
	}
	ch, data, err := s.takeChallenge(ctx, challengeID, db.PasskeyLogin, nil)
	if err != nil {
		return uuid.Nil, err
	}
	if ch.IdentityID == nil && len(data.AllowedCredentialIDs) > 0 {
		return uuid.Nil, errInvalid() // a stand-in: no account behind it
	}
	for range useRetries {
		cur, cfg, cred, err := s.validate(ctx, ch, data, parsed)
		if err != nil {
			return uuid.Nil, err
		}
		entry := &cfg.Credentials[cfg.find(cred.ID)]
		now := s.clock()
		if cred.Authenticator.CloneWarning {
			// The counter did not move forward: two authenticators hold
			// this key. Flagged for good, so whichever holds the higher
			// count cannot go on either.
			if !entry.Authenticator.CloneWarning {
				entry.Authenticator.CloneWarning = true
				if b, err := cfg.encode(); err == nil {
					if _, err := s.store.UsePasskey(ctx, cur.IdentityID, cur.Version, b, now); err != nil {
						slog.WarnContext(ctx, "passkey sign-in: recording a clone warning failed", "error", err)
					}
				}
			}
			slog.WarnContext(ctx, "passkey sign-in refused: sign counter did not move forward (cloned authenticator?)",
				"identity_id", cur.IdentityID)
			return uuid.Nil, &model.Error{Code: model.CodeInvalidCredentials,
				Message: "this passkey's signature counter went backwards, the mark of a copied authenticator, so it no longer signs in: sign in another way, then remove it and register a new one"}
		}
		entry.Authenticator.SignCount = cred.Authenticator.SignCount
		entry.Flags = flagsOf(cred.Flags)
		entry.LastUsedAt = &now
		b, err := cfg.encode()
		if err != nil {
			return uuid.Nil, err
		}
		won, err := s.store.UsePasskey(ctx, cur.IdentityID, cur.Version, b, now)
		if err != nil {
			return uuid.Nil, err
		}
		if won {
			return cur.IdentityID, nil
		}
		// Another sign-in or a registration wrote meanwhile: check the
		// counter against what it left.
	}
	return uuid.Nil, &model.Error{Code: model.CodeInvalidCredentials, Message: "the passkey is in use by another sign-in right now: try again"}
}

// validate reads the passkeys the assertion may be from and has go-webauthn
// verify it. It returns the credential as stored (with its version), the
// config, and the passkey as the assertion leaves it (new counter, clone
// warning). Storage failures come back as they are; every refusal is
// errInvalid.
func (s *Service) validate(ctx context.Context, ch *db.PasskeyChallenge, data *webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData) (*db.PasskeyCredential, *storedConfig, *webauthn.Credential, error) {
	var cur *db.PasskeyCredential
	var cfg *storedConfig
	var lookupErr error
	load := func(find func() (*db.PasskeyCredential, error), handle []byte) (*user, error) {
		cur, lookupErr = find()
		if lookupErr != nil {
			return nil, lookupErr
		}
		if cfg, lookupErr = parseConfig(cur.Config); lookupErr != nil {
			return nil, lookupErr
		}
		if len(cfg.Credentials) == 0 || (handle != nil && !bytes.Equal(cfg.UserHandle, handle)) {
			return nil, errors.New("no passkey with this user handle")
		}
		return &user{handle: cfg.UserHandle, credentials: credentialsFor(cfg, parsed)}, nil
	}
	var cred *webauthn.Credential
	var err error
	if ch.IdentityID != nil {
		u, uerr := load(func() (*db.PasskeyCredential, error) { return s.store.PasskeyCredentialOf(ctx, *ch.IdentityID) }, nil)
		if uerr != nil {
			err = uerr
		} else {
			// The identity's passkeys may have changed since the challenge
			// was made: it answers for the ones it allowed, if still held.
			cred, err = s.web.ValidateLogin(u, *data, parsed)
		}
	} else {
		cred, err = s.web.ValidateDiscoverableLogin(func(_, handle []byte) (webauthn.User, error) {
			return load(func() (*db.PasskeyCredential, error) { return s.store.FindPasskeyCredential(ctx, handle) }, handle)
		}, *data, parsed)
	}
	if lookupErr != nil && model.ErrorCodeOf(lookupErr) != model.CodeNotFound {
		return nil, nil, nil, lookupErr
	}
	if err != nil {
		slog.DebugContext(ctx, "passkey sign-in refused", "error", verifyDetail(err))
		return nil, nil, nil, errInvalid()
	}
	if cfg.find(cred.ID) < 0 {
		return nil, nil, nil, errInvalid()
	}
	return cur, cfg, cred, nil
}

// credentialsFor is cfg's passkeys as go-webauthn checks them against the
// assertion parsed. A passkey imported without flags takes its backup
// eligibility from this assertion (go-webauthn refuses a change of it, and
// there is nothing to compare with yet).
func credentialsFor(cfg *storedConfig, parsed *protocol.ParsedCredentialAssertionData) []webauthn.Credential {
	creds := cfg.webauthnCredentials()
	seen := parsed.Response.AuthenticatorData.Flags & (protocol.FlagUserPresent | protocol.FlagBackupEligible | protocol.FlagBackupState)
	for i := range creds {
		if cfg.Credentials[i].Flags == nil {
			creds[i].Flags = webauthn.NewCredentialFlags(seen)
		}
	}
	return creds
}

// throttleKeys is the counter of failed sign-ins from c's address; none
// without one.
func (s *Service) throttleKeys(c session.Client) []db.ThrottleKey {
	key := clientKey(c)
	if key == "" {
		return nil
	}
	return []db.ThrottleKey{{Key: key + "\x00login", Free: loginFree, Cap: loginMaxWait}}
}

// reserve charges a sign-in to keys before any work, or refuses it
// (TOO_MANY_ATTEMPTS) while they are blocked.
func (s *Service) reserve(ctx context.Context, keys []db.ThrottleKey) error {
	now := s.clock()
	until, err := s.store.ReserveLoginAttempt(ctx, keys, now, loginWindow)
	if err != nil {
		return fmt.Errorf("passkey throttle: %w", err)
	}
	if until.IsZero() {
		return nil
	}
	wait := max(time.Duration(math.Ceil(until.Sub(now).Seconds()))*time.Second, time.Second)
	return &model.Error{Code: model.CodeTooManyAttempts, RetryAfter: wait,
		Message: fmt.Sprintf("too many failed passkey sign-ins from this address: try again in %d seconds", int(wait/time.Second))}
}

// settle gives a sign-in that verified its attempt back. Failing to only
// leaves a count too high for a while: logged, not the user's problem.
func (s *Service) settle(ctx context.Context, keys []db.ThrottleKey) {
	if err := s.store.SettleLoginAttempt(ctx, nil, keys); err != nil {
		slog.WarnContext(ctx, "passkey throttle: handing an attempt back failed", "error", err)
	}
}
