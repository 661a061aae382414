package identity

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// errInvalidCredentials is the one answer for an unknown identifier and a
// wrong password alike, so a caller cannot tell which it was.
func errInvalidCredentials() *model.Error {
	return &model.Error{Code: model.CodeInvalidCredentials, Message: "the identifier or the password is wrong"}
}

// Authenticate checks a password login. An unknown identifier costs a dummy
// hash comparison, so it answers in about the time a wrong password does;
// so does one that no identity can hold (too long, control characters …),
// which never reaches the database. An inactive identity is only told apart
// after its password matched. A hash that is imported or made with weaker
// parameters is replaced with a current one on success. The identity comes
// alone, in one read: its relations load on demand, as the answer asks for
// them.
func (s *Service) Authenticate(ctx context.Context, identifier, pw string) (*model.Identity, error) {
	cred, err := s.store.FindPasswordCredential(ctx, lookupForms(identifier))
	if model.ErrorCodeOf(err) == model.CodeNotFound || (err == nil && cred.Hash == "") {
		s.hasher.CompareDummy(ctx, pw)
		return nil, s.loginFailed(ctx, uuid.Nil, identifier, "unknown_identifier", errInvalidCredentials())
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.hasher.Compare(ctx, pw, cred.Hash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, s.loginFailed(ctx, cred.IdentityID, identifier, "wrong_password", errInvalidCredentials())
	}
	if cred.State != model.IdentityStateActive {
		return nil, s.loginFailed(ctx, cred.IdentityID, identifier, "account_disabled",
			&model.Error{Code: model.CodeAccountDisabled, Message: "account is disabled"})
	}
	if s.hasher.NeedsRehash(cred.Hash) {
		s.rehash(ctx, cred.IdentityID, cred.Hash, pw)
	}
	return s.store.GetIdentity(ctx, cred.IdentityID, 0)
}

// loginFailed records a login.failed event (the identity, when the
// identifier is known; the identifier normalised, never the password) and
// returns answer, the error the caller gets. Known and unknown identifiers
// cost the same one insert. The actor is SYSTEM: whoever tried is not known
// to be the identity. Failing to record is logged, and the answer stays.
func (s *Service) loginFailed(ctx context.Context, id uuid.UUID, identifier, reason string, answer error) error {
	norm := strings.TrimSpace(identifier)
	if forms := schemas.LoginCandidates(identifier); len(forms) > 0 {
		norm = forms[len(forms)-1]
	}
	if len(norm) > 256 {
		norm = norm[:256]
	}
	// What was typed may hold anything: control characters (NUL, which
	// PostgreSQL's JSONB refuses) become U+FFFD, broken UTF-8 is dropped.
	norm = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return unicode.ReplacementChar
		}
		return r
	}, strings.ToValidUTF8(norm, ""))
	e := model.NewEvent(ctx, model.EventLoginFailed, id, false, s.clock())
	e.Data = eventData(map[string]any{"identifier": norm, "reason": reason})
	if err := s.store.RecordEvents(ctx, e); err != nil {
		slog.WarnContext(ctx, "recording a failed login failed", "error", err)
	}
	return answer
}

// rehash upgrades a stored hash. Failing to is not the user's problem: the
// old hash still works, so it is logged and the login goes on.
func (s *Service) rehash(ctx context.Context, id uuid.UUID, old, pw string) {
	hash, err := s.hasher.Hash(ctx, pw)
	if err == nil {
		_, err = s.store.ReplacePasswordHash(ctx, id, old, hash, s.clock())
	}
	if err != nil {
		slog.WarnContext(ctx, "password rehash failed", "identity_id", id, "error", err)
	}
}

// lookupForms lists the stored forms a login identifier may match, in the
// order they are tried: the canonical ones (see schemas.LoginCandidates),
// then the legacy one. Identifiers stored before normalisation went beyond
// trim and lower case (a fullwidth or decomposed "rené", a mixed-script
// name) keep signing in this way until their identity is written again; it
// comes last, so a canonical match always wins.
func lookupForms(identifier string) []string {
	forms := schemas.LoginCandidates(identifier)
	if legacy := schemas.LegacyIdentifier(identifier); legacy != "" && !slices.Contains(forms, legacy) {
		forms = append(forms, legacy)
	}
	return forms
}
