// Package session is self-service and sessions: register, login, logout,
// whoami, the owner's settings, and session management. Session tokens come
// from crypto/rand and are stored only as their SHA-256.
package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/internal/courier"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/model"
)

// TokenPrefix marks session tokens, so a leaked one is recognisable (secret
// scanners) and is never mistaken for an admin key.
const TokenPrefix = "ids_st_"

// Config tunes sessions and brute-force limits.
type Config struct {
	// Lifespan is how long a session lives.
	Lifespan time.Duration
	// PrivilegedFor is how long after signing in a session may change the
	// password without giving the current one, or change a login identifier
	// or an address at all.
	PrivilegedFor time.Duration
	// Throttle limits password guessing (login, changeMyPassword).
	Throttle ThrottleConfig
	// RequireVerifiedAddress refuses a login (ADDRESS_NOT_VERIFIED) of an
	// identity none of whose addresses is verified.
	RequireVerifiedAddress bool
	// Codes is verification and recovery by code.
	Codes CodeConfig
	// CodeLogin is signing in with a one-time code (passwordless).
	CodeLogin CodeLoginConfig
	// MFA is second factors.
	MFA MFAConfig
}

// Service runs the self-service flows. It is safe for concurrent use.
type Service struct {
	store      *db.DB
	identities *identity.Service
	codes      *code.Codes
	courier    *courier.Courier
	cfg        Config
	now        func() time.Time
	random     io.Reader
	// wake tells the code request loop that a request is waiting.
	wake chan struct{}
}

// New returns a Service; now and random are injected for repeatable tests
// (time.Now and crypto/rand.Reader in production). codes and templates
// make and carry verification and recovery codes.
func New(store *db.DB, identities *identity.Service, codes *code.Codes, templates *courier.Courier, cfg Config, now func() time.Time, random io.Reader) *Service {
	if cfg.PrivilegedFor == 0 {
		cfg.PrivilegedFor = 15 * time.Minute
	}
	if cfg.Throttle == (ThrottleConfig{}) {
		cfg.Throttle = DefaultThrottle()
	}
	if cfg.Codes.Throttle == (ThrottleConfig{}) {
		cfg.Codes.Throttle = DefaultThrottle()
	}
	if cfg.CodeLogin.Lifespan == 0 {
		cfg.CodeLogin.Lifespan = DefaultLoginCodeLifespan
	}
	return &Service{store: store, identities: identities, codes: codes, courier: templates, cfg: cfg, now: now, random: random,
		wake: make(chan struct{}, 1)}
}

// Client is who is on the other end of a request, kept with the session so
// its owner can recognise it.
type Client struct {
	IP        string
	UserAgent string
}

// Issued is a new session and the token that proves it, shown once.
type Issued struct {
	Session *model.Session
	Token   string
	// CodeSent is set, with no session, when a sign-in code went out
	// instead (a passwordless registration).
	CodeSent bool
}

// HashToken is how a token is stored and looked up.
func HashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CSRFToken is the anti-CSRF token that goes with a cookie session: derived
// from the session token, so nothing more is stored, and useless without it.
func CSRFToken(sessionToken string) string {
	sum := sha256.Sum256([]byte("identityd csrf\x00" + sessionToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Register creates an identity with a password and signs it in.
func (s *Service) Register(ctx context.Context, in *model.RegisterInput, c Client) (*Issued, error) {
	if in.Password == nil {
		return s.registerPasswordless(ctx, in, c)
	}
	ident, err := s.identities.Register(ctx, in.SchemaID, in.Traits, *in.Password)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, ident, c)
}

// Issue signs ident in by method (a first factor: AAL1) and returns the new
// session: for the other sign-in methods (passkeys, OpenID Connect).
func (s *Service) Issue(ctx context.Context, ident *model.Identity, method model.CredentialType, c Client) (*Issued, error) {
	if err := s.requireVerifiedAddress(ctx, ident.ID); err != nil {
		return nil, err
	}
	issued, row, err := s.newSession(ident.ID, c, method)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateSession(ctx, row); err != nil {
		return nil, err
	}
	issued.Session.Identity = ident
	return issued, nil
}

// Privileged tells whether sess signed in recently enough for sensitive
// changes (selfservice.flows.settings.privileged_session_max_age).
func (s *Service) Privileged(sess *model.Session) bool { return s.privileged(sess) }

// RequireManage checks that sess may change how its identity signs in: an
// AAL2 session when the identity has a second factor (top-level
// SESSION_AAL2_REQUIRED), signed in recently (REAUTHENTICATION_REQUIRED at
// path).
func (s *Service) RequireManage(sess *model.Session, path string) error {
	return s.canManage(sess, path)
}

// Login checks an identifier and password and issues a session. The
// attempt is charged to the throttle before the password is compared, and
// handed back unless the password was wrong (see ThrottleConfig).
func (s *Service) Login(ctx context.Context, in *model.LoginInput, c Client) (*Issued, error) {
	keys := s.loginKeys(in.Identifier, c)
	if err := s.reserve(ctx, keys); err != nil {
		return nil, err
	}
	ident, err := s.identities.Authenticate(ctx, in.Identifier, in.Password)
	if model.ErrorCodeOf(err) == model.CodeInvalidCredentials {
		return nil, err // a failed guess: it stays counted
	}
	s.settleOrLog(ctx, keys)
	if err != nil {
		return nil, err
	}
	// Told only after the password matched, like ACCOUNT_DISABLED: a guess
	// learns nothing from it.
	if err := s.requireVerifiedAddress(ctx, ident.ID); err != nil {
		return nil, err
	}
	return s.issue(ctx, ident, c)
}

// requireVerifiedAddress refuses (ADDRESS_NOT_VERIFIED) to sign in an
// identity none of whose addresses is verified, when
// selfservice.flows.login.require_verified_address is on. Callers ask only
// after the credential matched.
func (s *Service) requireVerifiedAddress(ctx context.Context, identityID uuid.UUID) error {
	if !s.cfg.RequireVerifiedAddress {
		return nil
	}
	ok, err := s.store.HasVerifiedAddress(ctx, identityID)
	if err != nil {
		return err
	}
	if !ok {
		return &model.Error{Code: model.CodeAddressNotVerified,
			Message: "verify an address of this account first: use the code sent to it, or ask for a new one with requestVerificationCode"}
	}
	return nil
}

// settleOrLog hands a reserved attempt back. Failing to only leaves a count
// too high for a while, so the request goes on and the failure is logged.
func (s *Service) settleOrLog(ctx context.Context, keys throttleKeys) {
	if err := s.settle(ctx, keys); err != nil {
		slog.WarnContext(ctx, "throttle: handing an attempt back failed", "error", err)
	}
}

// issue makes a session for ident.
func (s *Service) issue(ctx context.Context, ident *model.Identity, c Client) (*Issued, error) {
	issued, row, err := s.newSession(ident.ID, c, model.CredentialTypePassword)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateSession(ctx, row); err != nil {
		return nil, err
	}
	issued.Session.Identity = ident
	return issued, nil
}

// newSession makes a session of identityID, signed in now by method, and
// the row that stores it; the caller stores it and sets its Identity.
func (s *Service) newSession(identityID uuid.UUID, c Client, method model.CredentialType) (*Issued, *db.NewSession, error) {
	var raw [32]byte
	if _, err := io.ReadFull(s.random, raw[:]); err != nil {
		return nil, nil, fmt.Errorf("session token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.clock()
	sess := &model.Session{
		ID: uuid.Must(uuid.NewV7()), IdentityID: identityID, Active: true,
		IssuedAt: now, ExpiresAt: now.Add(s.cfg.Lifespan), AuthenticatedAt: now, AAL: model.AuthenticatorAssuranceLevelAal1,
		AuthenticationMethods: []*model.AuthenticationMethod{{Method: method, AAL: model.AuthenticatorAssuranceLevelAal1, CompletedAt: now}},
		IPAddress:             c.IP, UserAgent: truncate(c.UserAgent, 512),
	}
	row := &db.NewSession{Session: sess, TokenHash: HashToken(token), IPAddress: sess.IPAddress, UserAgent: sess.UserAgent}
	return &Issued{Session: sess, Token: token}, row, nil
}

// FromToken returns the active session a token proves, with its identity.
// A revoked session, or one whose identity was disabled, stops working at
// once on every server process: the store's session cache is emptied by
// every such change, whoever made it (see db.StartSessionCache).
func (s *Service) FromToken(ctx context.Context, token string) (*model.Session, error) {
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, model.Errorf(model.CodeUnauthenticated, "the bearer token is neither an admin key nor a valid session")
	}
	return s.store.ActiveSession(ctx, HashToken(token), s.clock())
}

// Logout ends sess.
func (s *Service) Logout(ctx context.Context, sess *model.Session) error {
	return s.store.RevokeSession(ctx, sess.IdentityID, sess.ID, s.clock())
}

// UpdateTraits replaces the owner's traits. A change to a login identifier
// or an address needs a privileged session (signed in within
// Config.PrivilegedFor): they decide who can sign in and recover the
// account, so an old session, perhaps stolen, must not change them.
func (s *Service) UpdateTraits(ctx context.Context, sess *model.Session, traits model.JSON) (*model.Identity, error) {
	return s.identities.UpdateTraits(ctx, sess.IdentityID, traits, s.privileged(sess))
}

// privileged tells whether sess signed in recently enough for sensitive
// changes.
func (s *Service) privileged(sess *model.Session) bool {
	return s.clock().Sub(sess.AuthenticatedAt) <= s.cfg.PrivilegedFor
}

// ChangePassword sets the owner's password and, when asked, ends every other
// session of theirs. The new password must pass the policy before the
// current one is looked at, so the answer never depends on whether a guess
// was right; a current password given is throttled as a login is (keyed by
// the identity, see ThrottleConfig), so a stolen session cannot guess it.
func (s *Service) ChangePassword(ctx context.Context, sess *model.Session, in *model.ChangePasswordInput, c Client) (*model.Identity, error) {
	var keep *uuid.UUID
	if in.RevokeOtherSessions == nil || *in.RevokeOtherSessions {
		keep = &sess.ID
	}
	keys := s.passwordChangeKeys(sess.IdentityID, c)
	reserved := false
	beforeCompare := func(ctx context.Context) error {
		if err := s.reserve(ctx, keys); err != nil {
			return err
		}
		reserved = true
		return nil
	}
	err := s.identities.ChangePassword(ctx, sess.IdentityID, in.CurrentPassword, in.NewPassword, s.privileged(sess), keep, beforeCompare)
	if reserved && model.ErrorCodeOf(err) != model.CodeInvalidCredentials {
		s.settleOrLog(ctx, keys)
	}
	if err != nil {
		return nil, err
	}
	return s.identities.Get(ctx, sess.IdentityID)
}

// Sessions lists an identity's sessions.
func (s *Service) Sessions(ctx context.Context, identityID uuid.UUID, activeOnly bool) ([]*model.Session, error) {
	return s.store.Sessions(ctx, identityID, activeOnly, s.clock())
}

// Get returns one session by id, whatever its state (admins); NOT_FOUND
// when there is none.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*model.Session, error) {
	return s.store.Session(ctx, id)
}

// List returns a page of every identity's sessions (admins), newest first,
// after the cursor, and the extras asked for, each a query of its own.
// Active in the filter means what Sessions' activeOnly does: not revoked and
// not expired now.
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.SessionFilter, extras model.PageExtras) (*model.Page[*model.Session], error) {
	limit, cursor, err := model.PageArgs(first, after)
	if err != nil {
		return nil, err
	}
	filter := db.SessionFilter{Now: s.clock()}
	if f != nil {
		filter.IdentityID, filter.Active = f.IdentityID, f.Active
	}
	ss, more, err := s.store.ListSessions(ctx, filter, cursor, limit)
	if err != nil {
		return nil, err
	}
	page := &model.Page[*model.Session]{Items: ss, HasNext: more}
	err = page.AddExtras(extras,
		func() (bool, error) { return s.store.SessionsBefore(ctx, filter, cursor) },
		func(limit int) (int, error) { return s.store.CountSessions(ctx, filter, limit) })
	if err != nil {
		return nil, err
	}
	return page, nil
}

// Revoke ends one session of identityID.
func (s *Service) Revoke(ctx context.Context, identityID, sessionID uuid.UUID) error {
	return s.store.RevokeSession(ctx, identityID, sessionID, s.clock())
}

// RevokeAny ends one session, whoever's it is (admins).
func (s *Service) RevokeAny(ctx context.Context, sessionID uuid.UUID) error {
	return s.store.RevokeSession(ctx, uuid.Nil, sessionID, s.clock())
}

// RevokeAll ends every session of identityID except keep (uuid.Nil: all).
func (s *Service) RevokeAll(ctx context.Context, identityID, keep uuid.UUID) (int, error) {
	return s.store.RevokeSessions(ctx, identityID, keep, s.clock())
}

// Extend moves an active session's expiry to a full lifespan from now.
func (s *Service) Extend(ctx context.Context, sessionID uuid.UUID) (*model.Session, error) {
	now := s.clock()
	return s.store.ExtendSession(ctx, sessionID, now.Add(s.cfg.Lifespan), now)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
