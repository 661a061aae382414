// Package oidc is social sign-in with OpenID Connect providers, on
// coreos/go-oidc and golang.org/x/oauth2, with Kratos's Jsonnet claim
// mappers.
//
// A browser flow begins with Begin (beginOidcSignIn, linkOidcProvider),
// which stores the flow (state, nonce, PKCE verifier, provider, where to go
// afterwards) and binds it to the browser with a cookie whose hash is kept;
// the provider sends the browser back to Callback, which takes the flow
// once, checks the cookie, exchanges the code, verifies the ID token and
// signs in (or registers, or links). Native apps sign in with an ID token
// they got themselves (LoginWithIDToken).
package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/session"
	"github.com/identityd/identityd/model"
)

// Provider is one configured provider (selfservice.methods.oidc.config.providers).
type Provider struct {
	ID, Kind, Label        string
	ClientID, ClientSecret string
	// IssuerURL is the OpenID issuer whose discovery document is read: a
	// generic provider's must be set; for google, microsoft and apple it
	// overrides the well-known one. For github it is the REST API's base
	// (GitHub Enterprise Server: https://HOST/api/v3).
	IssuerURL string
	// AuthURL and TokenURL override the endpoints discovery (or GitHub's
	// defaults) gives.
	AuthURL, TokenURL string
	Scope             []string
	MapperURL         string
	MicrosoftTenant   string
	// AppleTeamID, AppleKeyID and AppleKey would make Apple's client
	// secret for the browser flow, which is not supported yet: apple
	// serves LoginWithIDToken only.
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
	// Browser is what the callback, a plain HTTP handler outside the
	// GraphQL transport, needs of it: cookies and who the client is.
	Browser Browser
	// HTTPClient talks to the providers (discovery, keys, tokens, GitHub's
	// API); one with a 10-second timeout when nil.
	HTTPClient *http.Client
}

// Browser is the transport's side of the callback: the transport (graph)
// owns the cookies' names and attributes and knows which proxies to
// believe about the client.
type Browser struct {
	// BindingCookie names the cookie that binds a flow to the browser
	// (graph.OIDCBindingCookieSuffix after the session cookie's name).
	BindingCookie string
	// SetSession sets the session cookies for token, as login does.
	SetSession func(w http.ResponseWriter, r *http.Request, token string, expires time.Time)
	// ClearBinding removes the binding cookie, which is used once.
	ClearBinding func(w http.ResponseWriter, r *http.Request)
	// Client tells who sent r (kept with the session).
	Client func(r *http.Request) session.Client
}

// CallbackPath is where providers send the browser back, before the
// provider's id.
const CallbackPath = "/self-service/oidc/callback/"

// FlowLifespan is how long a browser has to come back from the provider;
// the binding cookie lives as long.
const FlowLifespan = 10 * time.Minute

// pruneEvery is how often beginning a flow also deletes expired ones.
const pruneEvery = time.Minute

// Codes the callback puts in the error parameter of its redirect, beyond
// the model's.
const (
	// ErrInvalidState: the state is unknown (never begun, used already, or
	// pruned), or the browser is not the one that began the flow (the
	// binding cookie is missing or another).
	ErrInvalidState = "INVALID_STATE"
	// ErrFlowExpired: the browser came back after FlowLifespan.
	ErrFlowExpired = "FLOW_EXPIRED"
	// ErrProvider: the provider answered with an error (the person
	// cancelled, or the client is misconfigured there).
	ErrProvider = "PROVIDER_ERROR"
	// ErrAccountExists: the mapped traits hold a login identifier or
	// address of another identity. Nothing is merged: sign in to that
	// account, then link the provider.
	ErrAccountExists = "ACCOUNT_EXISTS"
)

// Service runs the OpenID Connect flows. It is safe for concurrent use.
type Service struct {
	store      *db.DB
	identities *identity.Service
	sessions   *session.Service
	cfg        Config
	now        func() time.Time
	random     io.Reader
	log        *slog.Logger

	providers map[string]*provider
	order     []*provider
	returns   returnPolicy
	lastPrune atomic.Int64
}

var providerIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// New returns a Service; now and random are injected for repeatable tests.
// When the method is on, it checks every provider and reads its mapper, and
// an error names the config key at fault.
func New(store *db.DB, identities *identity.Service, sessions *session.Service, cfg Config, now func() time.Time, random io.Reader, log *slog.Logger) (*Service, error) {
	s := &Service{store: store, identities: identities, sessions: sessions, cfg: cfg, now: now, random: random, log: log,
		providers: map[string]*provider{}}
	if !cfg.Enabled {
		return s, nil
	}
	if s.cfg.HTTPClient == nil {
		s.cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	const key = "config: selfservice.methods.oidc"
	if len(cfg.Providers) == 0 {
		return nil, fmt.Errorf("%s.config.providers: the method is enabled but has no provider", key)
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("config: serve.base_url: %q: want the server's public http(s) URL (callbacks come back to it)", cfg.BaseURL)
	}
	if s.returns, err = newReturnPolicy(cfg.AllowedReturnURLs, cfg.DefaultReturnURL); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	slots := make(chan struct{}, mapperParallel)
	for i, pc := range cfg.Providers {
		at := fmt.Sprintf("%s.config.providers[%d]", key, i)
		switch {
		case pc.ID == "":
			return nil, fmt.Errorf("%s.id: required", at)
		case !providerIDPattern.MatchString(pc.ID):
			return nil, fmt.Errorf("%s.id: %q: use letters, digits, '.', '_' and '-' only (it goes into the callback URL and into identifiers as id:subject)", at, pc.ID)
		case s.providers[pc.ID] != nil:
			return nil, fmt.Errorf("%s.id: %q is used by another provider already", at, pc.ID)
		}
		switch pc.Kind {
		case KindGeneric, KindGoogle, KindGitHub, KindMicrosoft, KindApple:
		case "":
			return nil, fmt.Errorf("%s.provider: required: one of generic, google, github, microsoft, apple", at)
		default:
			return nil, fmt.Errorf("%s.provider: %q is not a known provider: want one of generic, google, github, microsoft, apple", at, pc.Kind)
		}
		if pc.ClientID == "" {
			return nil, fmt.Errorf("%s.client_id: required", at)
		}
		if pc.Kind == KindGeneric && pc.IssuerURL == "" {
			return nil, fmt.Errorf("%s.issuer_url: required for a generic provider (its discovery document is read from there)", at)
		}
		for _, u := range []struct{ name, value string }{{"issuer_url", pc.IssuerURL}, {"auth_url", pc.AuthURL}, {"token_url", pc.TokenURL}} {
			if u.value == "" {
				continue
			}
			if p, err := url.Parse(u.value); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return nil, fmt.Errorf("%s.%s: %q: want an absolute http(s) URL", at, u.name, u.value)
			}
		}
		if pc.MapperURL == "" {
			return nil, fmt.Errorf("%s.mapper_url: required: the Jsonnet that maps the provider's claims to traits (file://, base64:// or http(s)://)", at)
		}
		m, err := loadMapper(context.Background(), pc.MapperURL, s.cfg.HTTPClient, slots)
		if err != nil {
			return nil, fmt.Errorf("%s.mapper_url: %s: %w", at, mapperName(pc.MapperURL), err)
		}
		p := &provider{cfg: pc, mapper: m, client: s.cfg.HTTPClient}
		s.providers[pc.ID] = p
		s.order = append(s.order, p)
	}
	return s, nil
}

func (s *Service) disabled() error {
	return &model.Error{Code: model.CodeMethodDisabled, Message: "OpenID Connect sign-in is switched off here (selfservice.methods.oidc.enabled)"}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Providers lists the configured providers (none when the method is off).
func (s *Service) Providers() []*model.OidcProvider {
	out := []*model.OidcProvider{}
	if !s.cfg.Enabled {
		return out
	}
	for _, p := range s.order {
		label := p.cfg.Label
		if label == "" {
			label = p.cfg.ID
		}
		out = append(out, &model.OidcProvider{ID: p.cfg.ID, Provider: p.cfg.Kind, Label: label})
	}
	return out
}

func (s *Service) provider(id string) (*provider, error) {
	p := s.providers[id]
	if p == nil {
		return nil, &model.Error{Code: model.CodeNotFound, Path: "/provider", Message: fmt.Sprintf("no OpenID Connect provider %q is configured (see oidcProviders)", id)}
	}
	return p, nil
}

func (s *Service) redirectURL(p *provider) string {
	return strings.TrimRight(s.cfg.BaseURL, "/") + CallbackPath + p.cfg.ID
}

// randomString is n random bytes, URL-safe base64 (a valid PKCE verifier
// for n = 32).
func (s *Service) randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.random, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hash(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// Begin starts a browser flow with provider: it returns the authorization
// URL and the value of the cookie that binds the flow to the browser. With
// link, the flow links the provider to link's identity instead of signing
// in.
func (s *Service) Begin(ctx context.Context, providerID string, returnTo *string, link *model.Session) (string, string, error) {
	if !s.cfg.Enabled {
		return "", "", s.disabled()
	}
	var errs model.Errors
	p, err := s.provider(providerID)
	if err != nil {
		errs = append(errs, err.(*model.Error))
	}
	target, rerr := s.returns.resolve(returnTo)
	if rerr != nil {
		errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: "/returnTo", Message: rerr.Error()})
	}
	if len(errs) > 0 {
		return "", "", errs
	}
	if p.cfg.Kind == KindApple {
		return "", "", &model.Error{Code: model.CodeValidationFailed, Path: "/provider",
			Message: "Sign in with Apple works here with loginWithIdToken (native apps), not in the browser yet"}
	}
	var linkID *uuid.UUID
	if link != nil {
		if err := s.sessions.RequireManage(link, ""); err != nil {
			return "", "", err
		}
		links, err := s.store.OIDCLinks(ctx, link.IdentityID)
		if err != nil {
			return "", "", err
		}
		if slices.ContainsFunc(links, func(l db.OIDCProvider) bool { return l.Provider == p.cfg.ID }) {
			return "", "", &model.Error{Code: model.CodeValidationFailed, Path: "/provider",
				Message: "this provider is linked to your account already: unlink it first to link another account there"}
		}
		id := link.IdentityID
		linkID = &id
	}
	oc, err := p.oauth2Config(ctx, s.redirectURL(p), s.now)
	if err != nil {
		return "", "", s.unreachable(ctx, p, err)
	}
	var state, nonce, verifier, binding string
	for _, v := range []*string{&state, &nonce, &verifier, &binding} {
		if *v, err = s.randomString(32); err != nil {
			return "", "", err
		}
	}
	now := s.clock()
	flow := &db.OIDCFlow{ID: uuid.Must(uuid.NewV7()), StateHash: hash(state), BindingHash: hash(binding),
		Provider: p.cfg.ID, Nonce: nonce, PKCEVerifier: verifier, ReturnTo: target, LinkIdentityID: linkID,
		ExpiresAt: now.Add(FlowLifespan), CreatedAt: now}
	if err := s.store.CreateOIDCFlow(ctx, flow); err != nil {
		return "", "", err
	}
	s.maybePrune(ctx, now)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if p.openID() {
		opts = append(opts, gooidc.Nonce(nonce))
	}
	return oc.AuthCodeURL(state, opts...), binding, nil
}

// maybePrune deletes expired flows, at most once a minute per process:
// flows nobody came back for would otherwise stay forever.
func (s *Service) maybePrune(ctx context.Context, now time.Time) {
	last := s.lastPrune.Load()
	if now.UnixNano()-last < int64(pruneEvery) || !s.lastPrune.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := s.store.PruneOIDCFlows(ctx, now); err != nil {
		s.log.Warn("pruning expired OpenID Connect flows failed", "error", err)
	}
}

// unreachable logs why a provider could not be asked and answers
// UNAVAILABLE.
func (s *Service) unreachable(ctx context.Context, p *provider, err error) error {
	s.log.WarnContext(ctx, "OpenID Connect provider unreachable", "provider", p.cfg.ID, "error", err)
	return model.Errorf(model.CodeUnavailable, "the provider %s cannot be reached just now, try again shortly", p.cfg.ID)
}

// LoginWithIDToken signs in with an ID token a native app got: verified
// against the provider's keys, issuer, audience (the client id) and expiry;
// its nonce claim must be the nonce given or that nonce's SHA-256 in hex
// (Apple's and Google's SDKs send the hash), and a token with a nonce needs
// one given. Then the identity is found or registered as in the browser
// flow.
func (s *Service) LoginWithIDToken(ctx context.Context, in *model.LoginWithIDTokenInput, c session.Client) (*session.Issued, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	p, err := s.provider(in.Provider)
	if err != nil {
		return nil, err
	}
	if !p.openID() {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/provider",
			Message: fmt.Sprintf("%s is an OAuth 2.0 provider without ID tokens: sign in with beginOidcSignIn", p.cfg.ID)}
	}
	tok, claims, err := p.verify(ctx, in.IDToken, s.now)
	var unreachable errUnreachable
	if errors.As(err, &unreachable) {
		return nil, s.unreachable(ctx, p, err)
	}
	if err != nil {
		s.log.InfoContext(ctx, "ID token refused", "provider", p.cfg.ID, "error", err)
		return nil, &model.Error{Code: model.CodeInvalidCredentials, Path: "/idToken", Message: tokenRefusal(err)}
	}
	if !nonceMatches(tok.Nonce, in.Nonce) {
		return nil, &model.Error{Code: model.CodeInvalidCredentials, Path: "/nonce",
			Message: "the ID token's nonce is not the nonce given (nor its SHA-256)"}
	}
	ident, err := s.signIn(ctx, p, claims)
	if err != nil {
		if isAccountExists(err) {
			return nil, &model.Error{Code: model.CodeIdentifierTaken,
				Message: "an account with this email (or another login identifier) exists already: sign in to it, then link this provider (linkOidcProvider)"}
		}
		return nil, err
	}
	return s.sessions.Issue(ctx, ident, model.CredentialTypeOidc, c)
}

// tokenRefusal says why a token was refused, as far as that helps the app's
// developer and tells an attacker nothing new.
func tokenRefusal(err error) string {
	var expired *gooidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return "the ID token has expired"
	case strings.Contains(msg, "audience"), strings.Contains(msg, "azp"):
		return "the ID token was not issued to this client (audience)"
	case strings.Contains(msg, "issued by"):
		return "the ID token was issued by another provider"
	default:
		return "the ID token does not verify (signature or format)"
	}
}

// nonceMatches: a token with a nonce needs the same nonce or its SHA-256
// in hex; a token without one needs none given.
func nonceMatches(claim string, given *string) bool {
	if given == nil || *given == "" {
		return claim == ""
	}
	sum := sha256.Sum256([]byte(*given))
	return claim != "" && (claim == *given || strings.EqualFold(claim, hex.EncodeToString(sum[:])))
}

// errAccountExists marks a registration refused because another identity
// holds one of the mapped identifiers or addresses.
type errAccountExists struct{ err error }

func (e errAccountExists) Error() string { return e.err.Error() }
func (e errAccountExists) Unwrap() error { return e.err }

func isAccountExists(err error) bool {
	var e errAccountExists
	return errors.As(err, &e)
}

// signIn finds the identity linked to the claims' subject at p, or
// registers one from the mapped claims. An identity whose identifiers are
// taken is not merged (errAccountExists); one that is disabled may not sign
// in (ACCOUNT_DISABLED).
func (s *Service) signIn(ctx context.Context, p *provider, c *Claims) (*model.Identity, error) {
	if c.Subject == "" {
		return nil, errors.New("the provider gave no subject")
	}
	ident, err := s.identities.FindByOIDC(ctx, p.cfg.ID, c.Subject)
	if model.ErrorCodeOf(err) == model.CodeNotFound {
		ident, err = s.register(ctx, p, c)
	}
	if err != nil {
		return nil, err
	}
	if ident.State != model.IdentityStateActive {
		return nil, &model.Error{Code: model.CodeAccountDisabled, Message: "account is disabled"}
	}
	return ident, nil
}

func (s *Service) register(ctx context.Context, p *provider, c *Claims) (*model.Identity, error) {
	m, err := p.mapper.run(ctx, c, s.now())
	if err != nil {
		return nil, err
	}
	ident, err := s.identities.RegisterOIDC(ctx, &identity.OIDCRegistration{
		Traits: m.Traits, MetadataPublic: m.MetadataPublic, MetadataAdmin: m.MetadataAdmin,
		Provider: p.cfg.ID, Subject: c.Subject, Verified: m.Verified,
	})
	if model.ErrorCodeOf(err) != model.CodeIdentifierTaken {
		return ident, err
	}
	for _, e := range model.UserErrors(err) {
		if strings.HasPrefix(e.Path, "/credentials/oidc") {
			// The same account registered meanwhile (a double
			// click): it exists now, sign it in.
			return s.identities.FindByOIDC(ctx, p.cfg.ID, c.Subject)
		}
	}
	return nil, errAccountExists{err}
}

// Unlink removes provider's link from sess's identity (a privileged
// session); never the last way to sign in.
func (s *Service) Unlink(ctx context.Context, sess *model.Session, provider string) (*model.Identity, error) {
	if !s.cfg.Enabled {
		return nil, s.disabled()
	}
	if err := s.sessions.RequireManage(sess, ""); err != nil {
		return nil, err
	}
	return s.identities.UnlinkOIDC(ctx, sess.IdentityID, provider)
}

// Linked lists the ids of the providers linked to an identity.
func (s *Service) Linked(ctx context.Context, ident *model.Identity) ([]string, error) {
	return s.identities.OIDCProviders(ctx, ident)
}

// Callback is GET /self-service/oidc/callback/{provider}: it completes a
// browser flow and redirects to the flow's return URL, with error (one of
// the Err… codes or a model error code) and error_description on failure;
// without a flow to go back to, to selfservice.default_browser_return_url
// or, with none, an error page.
func (s *Service) Callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	ctx := r.Context()
	if !s.cfg.Enabled {
		s.fail(w, r, "", string(model.CodeMethodDisabled), "OpenID Connect sign-in is switched off here")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		s.fail(w, r, "", ErrInvalidState, "the provider sent no state back")
		return
	}
	flow, err := s.store.TakeOIDCFlow(ctx, hash(state))
	if model.ErrorCodeOf(err) == model.CodeNotFound {
		s.fail(w, r, "", ErrInvalidState, "this sign-in is unknown or was used already: start again")
		return
	}
	if err != nil {
		s.internal(w, r, "", "take flow", err)
		return
	}
	s.clearBinding(w, r)
	binding, cerr := r.Cookie(s.bindingCookie())
	switch {
	case cerr != nil || binding.Value == "" || !flow.BindingMatches(hash(binding.Value)):
		s.fail(w, r, flow.ReturnTo, ErrInvalidState, "this sign-in was started in another browser: start again")
		return
	case flow.Provider != r.PathValue("provider"):
		s.fail(w, r, flow.ReturnTo, ErrInvalidState, "this sign-in was started with another provider: start again")
		return
	case !s.now().Before(flow.ExpiresAt):
		s.fail(w, r, flow.ReturnTo, ErrFlowExpired, "this sign-in took too long: start again")
		return
	}
	p, err := s.provider(flow.Provider)
	if err != nil {
		s.fail(w, r, flow.ReturnTo, string(model.CodeNotFound), "this provider is no longer configured")
		return
	}
	if e := q.Get("error"); e != "" {
		s.fail(w, r, flow.ReturnTo, ErrProvider, "the provider said: "+e)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.fail(w, r, flow.ReturnTo, ErrProvider, "the provider sent no code back")
		return
	}
	oc, err := p.oauth2Config(ctx, s.redirectURL(p), s.now)
	if err != nil {
		_ = s.unreachable(ctx, p, err)
		s.fail(w, r, flow.ReturnTo, string(model.CodeUnavailable), "the provider cannot be reached just now, try again shortly")
		return
	}
	claims, err := p.exchange(ctx, oc, code, flow.PKCEVerifier, flow.Nonce, s.now)
	var unreachable errUnreachable
	if errors.As(err, &unreachable) {
		_ = s.unreachable(ctx, p, err)
		s.fail(w, r, flow.ReturnTo, string(model.CodeUnavailable), "the provider cannot be reached just now, try again shortly")
		return
	}
	if err != nil {
		s.log.WarnContext(ctx, "OpenID Connect callback refused", "provider", p.cfg.ID, "error", err)
		s.fail(w, r, flow.ReturnTo, string(model.CodeInvalidCredentials), "the provider's answer did not verify: start again")
		return
	}
	if flow.LinkIdentityID != nil {
		_, err := s.identities.LinkOIDC(ctx, *flow.LinkIdentityID, p.cfg.ID, claims.Subject)
		if err != nil {
			s.failWith(w, r, flow.ReturnTo, err)
			return
		}
		http.Redirect(w, r, flow.ReturnTo, http.StatusSeeOther)
		return
	}
	ident, err := s.signIn(ctx, p, claims)
	if err != nil {
		s.failWith(w, r, flow.ReturnTo, err)
		return
	}
	issued, err := s.sessions.Issue(ctx, ident, model.CredentialTypeOidc, s.client(r))
	if err != nil {
		s.failWith(w, r, flow.ReturnTo, err)
		return
	}
	if set := s.cfg.Browser.SetSession; set != nil {
		set(w, r, issued.Token, issued.Session.ExpiresAt)
	}
	http.Redirect(w, r, flow.ReturnTo, http.StatusSeeOther)
}

func (s *Service) bindingCookie() string {
	if s.cfg.Browser.BindingCookie != "" {
		return s.cfg.Browser.BindingCookie
	}
	return "identityd_session_oidc"
}

func (s *Service) clearBinding(w http.ResponseWriter, r *http.Request) {
	if c := s.cfg.Browser.ClearBinding; c != nil {
		c(w, r)
	}
}

func (s *Service) client(r *http.Request) session.Client {
	if c := s.cfg.Browser.Client; c != nil {
		return c(r)
	}
	return session.Client{UserAgent: r.UserAgent()}
}

// failWith redirects with the code of err: ACCOUNT_EXISTS for identifiers
// of another identity, the model's code for other application errors, and
// INTERNAL_SERVER_ERROR (logged) for the rest.
func (s *Service) failWith(w http.ResponseWriter, r *http.Request, target string, err error) {
	var me errMapper
	switch {
	case isAccountExists(err):
		s.fail(w, r, target, ErrAccountExists, "an account with this email (or another login identifier) exists already: sign in to it, then link this provider in your settings")
	case errors.As(err, &me):
		s.internal(w, r, target, "claims mapper", err)
	case len(model.UserErrors(err)) > 0 && model.ErrorCodeOf(err) != model.CodeInternal:
		e := model.UserErrors(err)[0]
		msg := e.Message
		if e.Path != "" {
			msg += " (at " + e.Path + ")"
		}
		s.fail(w, r, target, string(e.Code), msg)
	default:
		s.internal(w, r, target, "callback", err)
	}
}

func (s *Service) internal(w http.ResponseWriter, r *http.Request, target, what string, err error) {
	s.log.ErrorContext(r.Context(), "OpenID Connect callback failed", "step", what, "error", err)
	s.fail(w, r, target, string(model.CodeInternal), "something went wrong on our side: try again")
}

// fail sends the browser to target (the flow's return URL, else the
// default return URL) with error and error_description, or shows an error
// page when there is nowhere to go. Never a session.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, target, code, desc string) {
	if target == "" {
		target = s.returns.fallback
	}
	if u, err := url.Parse(target); err == nil && target != "" {
		v := u.Query()
		v.Set("error", code)
		v.Set("error_description", desc)
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>Sign-in failed</title><h1>Sign-in failed</h1><p>error=%s</p><p>%s</p>\n",
		html.EscapeString(code), html.EscapeString(desc))
}
