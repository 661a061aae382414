// Package oidc is social sign-in with OpenID Connect providers, on
// coreos/go-oidc and golang.org/x/oauth2, with Kratos's Jsonnet claim
// mappers.
package oidc

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
)

// Provider is one configured provider (selfservice.methods.oidc.config.providers).
type Provider struct {
	ID, Kind, Label                   string
	ClientID, ClientSecret            string
	IssuerURL, AuthURL, TokenURL      string
	Scope                             []string
	MapperURL                         string
	MicrosoftTenant                   string
	AppleTeamID, AppleKeyID, AppleKey string
}

// Config is the method's settings.
type Config struct {
	Enabled   bool
	Providers []Provider
	// BaseURL is the server's public URL: callbacks come back to
	// BaseURL + /self-service/oidc/callback/{provider}.
	BaseURL string
	// AllowedReturnURLs and DefaultReturnURL decide where the browser goes
	// afterwards (selfservice.allowed_return_urls,
	// selfservice.default_browser_return_url).
	AllowedReturnURLs []string
	DefaultReturnURL  string
}

// Service runs the OpenID Connect flows. It is safe for concurrent use.
type Service struct {
	store      *db.DB
	identities *identity.Service
	sessions   *session.Service
	cfg        Config
	now        func() time.Time
	random     io.Reader
	log        *slog.Logger
}

// New returns a Service; now and random are injected for repeatable tests.
func New(store *db.DB, identities *identity.Service, sessions *session.Service, cfg Config, now func() time.Time, random io.Reader, log *slog.Logger) (*Service, error) {
	return &Service{store: store, identities: identities, sessions: sessions, cfg: cfg, now: now, random: random, log: log}, nil
}

func (s *Service) disabled() error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "OpenID Connect sign-in is switched off here (selfservice.methods.oidc.enabled)"}
}

// Providers lists the configured providers (none when the method is off).
func (s *Service) Providers() []*model.OidcProvider { return []*model.OidcProvider{} }

// Begin starts a browser flow with provider: it returns the authorization
// URL and the value of the cookie that binds the flow to the browser. With
// link, the flow links the provider to link's identity instead of signing
// in.
func (s *Service) Begin(ctx context.Context, provider string, returnTo *string, link *model.Session) (url string, binding string, err error) {
	return "", "", s.disabled()
}

// LoginWithIDToken signs in with an ID token a native app got.
func (s *Service) LoginWithIDToken(ctx context.Context, in *model.LoginWithIDTokenInput, c session.Client) (*session.Issued, error) {
	return nil, s.disabled()
}

// Unlink removes provider's link from sess's identity.
func (s *Service) Unlink(ctx context.Context, sess *model.Session, provider string) (*model.Identity, error) {
	return nil, s.disabled()
}

// Linked lists the ids of the providers linked to an identity.
func (s *Service) Linked(ctx context.Context, ident *model.Identity) ([]string, error) {
	return []string{}, nil
}

// Callback is GET /self-service/oidc/callback/{provider}: it completes a
// browser flow and redirects.
func (s *Service) Callback(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "OpenID Connect sign-in is switched off here", http.StatusNotFound)
}
