// Package passkey is signing in with passkeys (WebAuthn discoverable
// credentials), on go-webauthn/webauthn: the maintained Go WebAuthn library,
// which passes the FIDO conformance tests and which Kratos itself uses.
//
// A ceremony's go-webauthn session data is kept server-side, in
// passkey_challenges, for 5 minutes, and taken (deleted) by the request that
// finishes it, so each challenge is answered once. An identity's passkeys
// are its "passkey" credential in Kratos's layout, and the user handle is
// that credential's identifier, so a discoverable sign-in finds the identity
// from what the authenticator returns.
package passkey

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
)

// Limits on what a client can make the service hold or work through.
const (
	// ChallengeLifespan is how long a ceremony may take.
	ChallengeLifespan = 5 * time.Minute
	// MaxCredentialBytes bounds the browser's answer: a registration with a
	// full attestation certificate chain (TPM) is under 16 KiB as JSON.
	MaxCredentialBytes = 32 << 10
	// MaxDisplayName is the longest passkey name, in characters.
	MaxDisplayName = 64
	// MaxPasskeys is how many passkeys one identity may register.
	MaxPasskeys = 32
	// openRegistrations is how many registrations one identity may have
	// begun and not finished; the oldest beyond go.
	openRegistrations = 5
	// openLoginsPerClient is how many sign-ins one client address (an IPv6
	// address by its /64) may have begun and not finished; the oldest beyond
	// go. Sign-in pages that begin one on load (conditional mediation) behind
	// a shared address need room.
	openLoginsPerClient = 100
	// maxOpenChallenges caps every ceremony begun and not finished: past it,
	// sign-ins are refused (TOO_MANY_ATTEMPTS) until some finish or expire.
	maxOpenChallenges = 50_000
)

// Config is the relying party (selfservice.methods.passkey).
type Config struct {
	Enabled bool
	// RPID is the relying party id (rp.id): the domain passkeys are bound
	// to.
	RPID string
	// RPDisplayName is the name browsers show (rp.display_name); RPID when
	// empty.
	RPDisplayName string
	// Origins are the web origins allowed to use the passkeys (rp.origins).
	Origins []string
	// Secret keys the stand-in credential ids offered for an identifier
	// without passkeys, so they stay the same across requests and server
	// processes; a random key per process when empty.
	Secret []byte
}

// Service runs passkey registration and sign-in. It is safe for concurrent
// use.
type Service struct {
	store      *db.DB
	identities *identity.Service
	sessions   *session.Service
	cfg        Config
	web        *webauthn.WebAuthn
	fakeKey    []byte
	now        func() time.Time
	random     io.Reader
}

// Challenge is a ceremony begun: its id and the browser's publicKey
// options.
type Challenge struct {
	ID      uuid.UUID
	Options json.RawMessage
}

// New returns a Service; now and random are injected for repeatable tests.
// With the method enabled it checks the relying party and fails with an
// error naming the config key at fault.
func New(store *db.DB, identities *identity.Service, sessions *session.Service, cfg Config, now func() time.Time, random io.Reader) (*Service, error) {
	s := &Service{store: store, identities: identities, sessions: sessions, cfg: cfg, now: now, random: random}
	if !cfg.Enabled {
		return s, nil
	}
	origins, err := cfg.check()
	if err != nil {
		return nil, err
	}
	name := cfg.RPDisplayName
	if name == "" {
		name = cfg.RPID
	}
	s.web, err = webauthn.New(&webauthn.Config{
		RPID:          strings.ToLower(cfg.RPID),
		RPDisplayName: name,
		RPOrigins:     origins,
		// Passkeys: a discoverable credential, so that sign-in needs no
		// identifier; user verification when the authenticator can.
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		// The browser is told 5 minutes; the server enforces the same with
		// its own clock, through the challenge's expiry.
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: ChallengeLifespan, TimeoutUVD: ChallengeLifespan},
			Registration: webauthn.TimeoutConfig{Timeout: ChallengeLifespan, TimeoutUVD: ChallengeLifespan},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("selfservice.methods.passkey.config.rp: %w", err)
	}
	s.fakeKey = cfg.Secret
	if len(s.fakeKey) == 0 {
		s.fakeKey = make([]byte, 32)
		if _, err := io.ReadFull(random, s.fakeKey); err != nil {
			return nil, fmt.Errorf("passkey: stand-in key: %w", err)
		}
	}
	return s, nil
}

// check validates the relying party and returns the origins as go-webauthn
// compares them (scheme://host[:port]).
func (c Config) check() ([]string, error) {
	const key = "selfservice.methods.passkey.config.rp"
	rpID := strings.ToLower(c.RPID)
	if rpID == "" {
		return nil, fmt.Errorf("%s.id: must be set when selfservice.methods.passkey.enabled is true: the domain passkeys are bound to (example.com)", key)
	}
	if u, err := url.Parse("https://" + rpID); err != nil || u.Host != rpID || u.Port() != "" || strings.Trim(rpID, ".") != rpID {
		return nil, fmt.Errorf("%s.id: %q must be a bare domain (example.com), without scheme, port or path", key, c.RPID)
	}
	if _, err := netip.ParseAddr(rpID); err == nil {
		return nil, fmt.Errorf("%s.id: %q is an IP address: WebAuthn binds passkeys to a domain", key, c.RPID)
	}
	if err := protocol.ValidateRPID(rpID); err != nil {
		return nil, fmt.Errorf("%s.id: %q: %v", key, c.RPID, err)
	}
	if len(c.Origins) == 0 {
		return nil, fmt.Errorf("%s.origins: must list the web origins that use passkeys (https://%s)", key, rpID)
	}
	out := make([]string, len(c.Origins))
	for i, o := range c.Origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return nil, fmt.Errorf("%s.origins[%d]: %q must be an origin: scheme://host[:port], nothing after", key, i, o)
		}
		host := strings.ToLower(u.Hostname())
		if host != rpID && !strings.HasSuffix(host, "."+rpID) {
			return nil, fmt.Errorf("%s.origins[%d]: %q is not on %q or one of its subdomains, so browsers would refuse its passkeys", key, i, o, rpID)
		}
		// Browsers offer WebAuthn to secure contexts only: https, or
		// http on localhost.
		if u.Scheme == "http" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
			return nil, fmt.Errorf("%s.origins[%d]: %q: browsers offer passkeys to https origins only (and http://localhost)", key, i, o)
		}
		out[i] = u.Scheme + "://" + strings.ToLower(u.Host)
	}
	return out, nil
}

func (s *Service) disabled() error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "passkeys are switched off here (selfservice.methods.passkey.enabled)"}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// List returns an identity's passkeys, oldest first (whether or not the
// method is enabled: they exist).
func (s *Service) List(ctx context.Context, identityID uuid.UUID) ([]*model.Passkey, error) {
	cred, err := s.store.PasskeyCredentialOf(ctx, identityID)
	if err != nil {
		if model.ErrorCodeOf(err) == model.CodeNotFound {
			return []*model.Passkey{}, nil
		}
		return nil, err
	}
	cfg, err := parseConfig(cred.Config)
	if err != nil {
		return nil, err
	}
	out := make([]*model.Passkey, len(cfg.Credentials))
	for i := range cfg.Credentials {
		out[i] = cfg.Credentials[i].model()
	}
	return out, nil
}

// PruneChallenges deletes expired ceremonies, returning how many.
func (s *Service) PruneChallenges(ctx context.Context) (int, error) {
	return s.store.PrunePasskeyChallenges(ctx, s.clock())
}

// PruneJob is PruneChallenges as a background loop's step, logging what it
// did: for the runner in server.go.
func (s *Service) PruneJob(log *slog.Logger) func(context.Context) {
	return func(ctx context.Context) {
		if n, err := s.PruneChallenges(ctx); err != nil {
			log.Warn("pruning expired passkey challenges failed", "error", err)
		} else if n > 0 {
			log.Debug("pruned expired passkey challenges", "deleted", n)
		}
	}
}

// putChallenge stores a ceremony's session data for ChallengeLifespan.
func (s *Service) putChallenge(ctx context.Context, kind string, identityID *uuid.UUID, clientKey string, data *webauthn.SessionData, options any, keep int) (*Challenge, error) {
	sd, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("passkey session data: %w", err)
	}
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("passkey options: %w", err)
	}
	now := s.clock()
	c := &db.PasskeyChallenge{ID: uuid.Must(uuid.NewV7()), IdentityID: identityID, Kind: kind, SessionData: sd,
		ClientKey: clientKey, ExpiresAt: now.Add(ChallengeLifespan), CreatedAt: now}
	if err := s.store.PutPasskeyChallenge(ctx, c, keep); err != nil {
		return nil, err
	}
	return &Challenge{ID: c.ID, Options: opts}, nil
}

// takeChallenge takes (uses up) an unexpired ceremony; INVALID_CODE at
// /challengeId when there is none.
func (s *Service) takeChallenge(ctx context.Context, id uuid.UUID, kind string, identityID *uuid.UUID) (*db.PasskeyChallenge, *webauthn.SessionData, error) {
	c, err := s.store.TakePasskeyChallenge(ctx, id, kind, identityID, s.clock())
	if model.ErrorCodeOf(err) == model.CodeNotFound {
		return nil, nil, &model.Error{Code: model.CodeInvalidCode, Path: "/challengeId",
			Message: "the challenge is unknown, used or expired: begin again"}
	}
	if err != nil {
		return nil, nil, err
	}
	var data webauthn.SessionData
	if err := json.Unmarshal(c.SessionData, &data); err != nil {
		return nil, nil, fmt.Errorf("passkey session data: %w", err)
	}
	return c, &data, nil
}

// credentialJSON is the browser's answer as bytes, bounded before any work.
// A client that sent the JSON as a string (JSON.stringify'd) is understood
// too.
func credentialJSON(j model.JSON) ([]byte, error) {
	raw := []byte(j)
	if len(raw) > MaxCredentialBytes {
		return nil, &model.Error{Code: model.CodeBadUserInput, Path: "/credential",
			Message: fmt.Sprintf("the credential is larger than %d KiB", MaxCredentialBytes>>10)}
	}
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	return raw, nil
}

// fakeCredentialID is the stand-in credential id offered for an identifier
// without passkeys: derived from it under a key, so that asking twice gets
// the same answer, as for a real account.
func (s *Service) fakeCredentialID(identifier string) []byte {
	m := hmac.New(sha256.New, s.fakeKey)
	m.Write([]byte("identityd passkey stand-in\x00" + identifier))
	return m.Sum(nil)
}

// clientKey is the client address as sign-ins are counted: an IPv4 address
// as it is, an IPv6 address by its /64, which one subscriber usually holds
// whole.
func clientKey(c session.Client) string {
	if c.IP == "" {
		return ""
	}
	a, err := netip.ParseAddr(c.IP)
	if err != nil {
		return "passkey\x00" + c.IP
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "passkey\x00" + p.String()
	}
	return "passkey\x00" + a.String()
}

// verifyDetail is why go-webauthn refused an answer, for the user and the
// logs: its safe description and, when it has one, what it expected.
func verifyDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg := pe.Details
		if pe.DevInfo != "" {
			msg += ": " + pe.DevInfo
		}
		return msg
	}
	return err.Error()
}
