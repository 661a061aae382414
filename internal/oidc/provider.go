package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Provider kinds (Kratos's names).
const (
	KindGeneric   = "generic"
	KindGoogle    = "google"
	KindGitHub    = "github"
	KindMicrosoft = "microsoft"
	KindApple     = "apple"
)

// Well-known endpoints of the providers that have fixed ones.
const (
	googleIssuer    = "https://accounts.google.com"
	appleIssuer     = "https://appleid.apple.com"
	microsoftHost   = "https://login.microsoftonline.com"
	githubAuthURL   = "https://github.com/login/oauth/authorize"
	githubTokenURL  = "https://github.com/login/oauth/access_token"
	githubAPIBase   = "https://api.github.com"
	maxProviderBody = 1 << 20
)

// Claims are what a provider says about the account, in the shape Kratos
// gives its Jsonnet mappers as std.extVar('claims'), so that Kratos mappers
// run unchanged. RawClaims carries every claim of the ID token (GitHub:
// the user document).
type Claims struct {
	Issuer              string         `json:"iss,omitempty"`
	Subject             string         `json:"sub,omitempty"`
	Object              string         `json:"oid,omitempty"`
	Name                string         `json:"name,omitempty"`
	GivenName           string         `json:"given_name,omitempty"`
	FamilyName          string         `json:"family_name,omitempty"`
	LastName            string         `json:"last_name,omitempty"`
	MiddleName          string         `json:"middle_name,omitempty"`
	Nickname            string         `json:"nickname,omitempty"`
	PreferredUsername   string         `json:"preferred_username,omitempty"`
	Profile             string         `json:"profile,omitempty"`
	Picture             string         `json:"picture,omitempty"`
	Website             string         `json:"website,omitempty"`
	Email               string         `json:"email,omitempty"`
	EmailVerified       looseBool      `json:"email_verified,omitempty"`
	Gender              string         `json:"gender,omitempty"`
	Birthdate           string         `json:"birthdate,omitempty"`
	Zoneinfo            string         `json:"zoneinfo,omitempty"`
	Locale              looseString    `json:"locale,omitempty"`
	PhoneNumber         string         `json:"phone_number,omitempty"`
	PhoneNumberVerified looseBool      `json:"phone_number_verified,omitempty"`
	UpdatedAt           int64          `json:"updated_at,omitempty"`
	HD                  string         `json:"hd,omitempty"`
	Team                string         `json:"team,omitempty"`
	Nonce               string         `json:"nonce,omitempty"`
	NonceSupported      bool           `json:"nonce_supported,omitempty"`
	RawClaims           map[string]any `json:"raw_claims,omitempty"`
}

// looseBool reads true, "true" and the like: Apple sends email_verified as
// a string.
type looseBool bool

func (b *looseBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case bool:
		*b = looseBool(x)
	case string:
		p, _ := strconv.ParseBool(x)
		*b = looseBool(p)
	}
	return nil
}

// looseString keeps a claim that should be a string and drops it when it is
// not (some providers send locale as an object).
type looseString string

func (s *looseString) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if x, ok := v.(string); ok {
		*s = looseString(x)
	}
	return nil
}

// claimsFromToken reads the claims of a verified ID token.
func claimsFromToken(tok *gooidc.IDToken) (*Claims, error) {
	c := &Claims{}
	if err := tok.Claims(c); err != nil {
		return nil, fmt.Errorf("read id token claims: %w", err)
	}
	if err := tok.Claims(&c.RawClaims); err != nil {
		return nil, fmt.Errorf("read id token claims: %w", err)
	}
	c.Issuer, c.Subject = tok.Issuer, tok.Subject
	return c, nil
}

// provider is one configured provider and what it fetched: the discovery
// document and key set of an OpenID provider are read on first use (a
// provider that is down at start-up does not keep the service from
// starting) and kept; a failed discovery is tried again next time.
type provider struct {
	cfg    Provider
	mapper *mapper
	client *http.Client

	mu       sync.Mutex
	op       *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
}

// openID tells whether the provider speaks OpenID Connect (ID tokens);
// GitHub speaks plain OAuth 2.0.
func (p *provider) openID() bool { return p.cfg.Kind != KindGitHub }

// issuer is the OpenID issuer to discover: issuer_url when set (a generic
// provider must set it; for the others it overrides the well-known one, for
// tests and sovereign clouds), else the kind's own.
func (p *provider) issuer() string {
	if p.cfg.IssuerURL != "" {
		return strings.TrimRight(p.cfg.IssuerURL, "/")
	}
	switch p.cfg.Kind {
	case KindGoogle:
		return googleIssuer
	case KindApple:
		return appleIssuer
	case KindMicrosoft:
		return microsoftHost + "/" + p.tenant() + "/v2.0"
	}
	return ""
}

func (p *provider) tenant() string {
	if p.cfg.MicrosoftTenant == "" {
		return "common"
	}
	return p.cfg.MicrosoftTenant
}

// multiTenant: a Microsoft provider for any tenant, whose discovery
// document names the issuer as a template ("…/{tenantid}/v2.0"); each token
// is then checked against the issuer of its own tenant (tid).
func (p *provider) multiTenant() bool {
	if p.cfg.Kind != KindMicrosoft || p.cfg.IssuerURL != "" {
		return false
	}
	switch p.tenant() {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

func (p *provider) context(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, p.client)
}

// discover returns the OpenID provider and an ID token verifier for this
// client (audience client_id, expiry checked against now).
func (p *provider) discover(ctx context.Context, now func() time.Time) (*gooidc.Provider, *gooidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.op != nil {
		return p.op, p.verifier, nil
	}
	dctx := p.context(ctx)
	if p.multiTenant() {
		dctx = gooidc.InsecureIssuerURLContext(dctx, microsoftHost+"/{tenantid}/v2.0")
	}
	op, err := gooidc.NewProvider(dctx, p.issuer())
	if err != nil {
		return nil, nil, fmt.Errorf("discover %s: %w", p.issuer(), err)
	}
	// The key set is fetched (and refetched on an unknown key id) with
	// the provider's client, never with the request's context, which
	// ends with the request.
	v := op.VerifierContext(gooidc.ClientContext(context.Background(), p.client), &gooidc.Config{
		ClientID: p.cfg.ClientID, Now: now, SkipIssuerCheck: p.multiTenant(),
	})
	p.op, p.verifier = op, v
	return op, v, nil
}

// verify checks a raw ID token: signature by the provider's keys, issuer,
// audience, expiry (the nonce is the caller's). A multi-tenant Microsoft
// token's issuer must be its own tenant's.
func (p *provider) verify(ctx context.Context, raw string, now func() time.Time) (*gooidc.IDToken, *Claims, error) {
	_, v, err := p.discover(ctx, now)
	if err != nil {
		return nil, nil, errUnreachable{err}
	}
	tok, err := v.Verify(p.context(ctx), raw)
	if err != nil {
		return nil, nil, err
	}
	c, err := claimsFromToken(tok)
	if err != nil {
		return nil, nil, err
	}
	if p.multiTenant() {
		tid, _ := c.RawClaims["tid"].(string)
		if tid == "" || tok.Issuer != microsoftHost+"/"+tid+"/v2.0" {
			return nil, nil, fmt.Errorf("oidc: id token issued by %q, not by the tenant it names (%q)", tok.Issuer, tid)
		}
	}
	if len(tok.Audience) > 1 {
		// Several audiences: the token must have been issued to this
		// client (OpenID Connect Core 3.1.3.7, azp).
		if azp, _ := c.RawClaims["azp"].(string); azp != p.cfg.ClientID {
			return nil, nil, fmt.Errorf("oidc: id token has several audiences and was issued to %q (azp)", azp)
		}
	}
	return tok, c, nil
}

// errUnreachable is a provider that could not be asked (discovery, keys):
// the user can do nothing about it but try again.
type errUnreachable struct{ err error }

func (e errUnreachable) Error() string { return e.err.Error() }
func (e errUnreachable) Unwrap() error { return e.err }

// oauth2Config is the OAuth 2.0 client for the browser flow, coming back
// to redirectURL.
func (p *provider) oauth2Config(ctx context.Context, redirectURL string, now func() time.Time) (*oauth2.Config, error) {
	c := &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, RedirectURL: redirectURL, Scopes: p.scopes()}
	if p.openID() {
		op, _, err := p.discover(ctx, now)
		if err != nil {
			return nil, errUnreachable{err}
		}
		c.Endpoint = op.Endpoint()
	} else {
		c.Endpoint = oauth2.Endpoint{AuthURL: githubAuthURL, TokenURL: githubTokenURL}
	}
	if p.cfg.AuthURL != "" {
		c.Endpoint.AuthURL = p.cfg.AuthURL
	}
	if p.cfg.TokenURL != "" {
		c.Endpoint.TokenURL = p.cfg.TokenURL
	}
	return c, nil
}

// scopes are the configured scopes, else the kind's usual ones; an OpenID
// provider always gets "openid".
func (p *provider) scopes() []string {
	s := slices.Clone(p.cfg.Scope)
	if len(s) == 0 {
		switch p.cfg.Kind {
		case KindGitHub:
			return []string{"user:email"}
		default:
			s = []string{gooidc.ScopeOpenID, "email", "profile"}
		}
	}
	if p.openID() && !slices.Contains(s, gooidc.ScopeOpenID) {
		s = append([]string{gooidc.ScopeOpenID}, s...)
	}
	return s
}

// exchange trades the authorization code (with the PKCE verifier) for
// tokens and returns the account's claims: from the verified ID token,
// whose nonce must be the flow's, or from GitHub's API.
func (p *provider) exchange(ctx context.Context, c *oauth2.Config, code, verifier, nonce string, now func() time.Time) (*Claims, error) {
	tok, err := c.Exchange(p.context(ctx), code, oauth2.VerifierOption(verifier))
	var refused *oauth2.RetrieveError
	switch {
	case errors.As(err, &refused):
		// The provider refused the code (used, expired, wrong
		// verifier or client).
		return nil, fmt.Errorf("token exchange: %w", err)
	case err != nil:
		return nil, errUnreachable{fmt.Errorf("token exchange: %w", err)}
	}
	if !p.openID() {
		return p.githubClaims(ctx, c, tok)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the provider's token response has no id_token")
	}
	idt, claims, err := p.verify(ctx, raw, now)
	if err != nil {
		return nil, err
	}
	if idt.Nonce != nonce {
		return nil, errors.New("the id token's nonce is not the flow's")
	}
	return claims, nil
}

// githubAPI is the base of GitHub's REST API: issuer_url when set (GitHub
// Enterprise Server's https://HOST/api/v3, or a test's fake), else
// api.github.com.
func (p *provider) githubAPI() string {
	if p.cfg.IssuerURL != "" {
		return strings.TrimRight(p.cfg.IssuerURL, "/")
	}
	return githubAPIBase
}

// githubClaims reads the user, and with the user:email scope their primary
// email, as Kratos's github provider does; every scope asked for must have
// been granted.
func (p *provider) githubClaims(ctx context.Context, c *oauth2.Config, tok *oauth2.Token) (*Claims, error) {
	granted := strings.FieldsFunc(fmt.Sprint(tok.Extra("scope")), func(r rune) bool { return r == ',' || r == ' ' })
	for _, want := range c.Scopes {
		if !slices.Contains(granted, want) {
			return nil, fmt.Errorf("github did not grant the scope %q", want)
		}
	}
	client := c.Client(p.context(ctx), tok)
	var user map[string]any
	if err := githubGet(ctx, client, p.githubAPI()+"/user", &user); err != nil {
		return nil, err
	}
	id, ok := user["id"].(json.Number)
	if !ok || id == "" {
		return nil, errors.New("github: the user has no id")
	}
	str := func(k string) string { s, _ := user[k].(string); return s }
	claims := &Claims{
		Issuer: c.Endpoint.TokenURL, Subject: id.String(),
		Name: str("name"), Nickname: str("login"), Website: str("blog"),
		Picture: str("avatar_url"), Profile: str("html_url"), RawClaims: user,
	}
	if t, err := time.Parse(time.RFC3339, str("updated_at")); err == nil {
		claims.UpdatedAt = t.Unix()
	}
	if slices.Contains(granted, "user:email") || slices.Contains(granted, "user") {
		var emails []struct {
			Email    string `json:"email"`
			Primary  bool   `json:"primary"`
			Verified bool   `json:"verified"`
		}
		if err := githubGet(ctx, client, p.githubAPI()+"/user/emails", &emails); err != nil {
			return nil, err
		}
		for _, e := range emails {
			if e.Primary {
				claims.Email, claims.EmailVerified = e.Email, looseBool(e.Verified)
				break
			}
		}
	}
	return claims, nil
}

func githubGet(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProviderBody))
	if err != nil {
		return fmt.Errorf("github: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("github: GET %s: %s", redact(u), resp.Status)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("github: GET %s: %w", redact(u), err)
	}
	return nil
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(not a URL)"
	}
	u.RawQuery = ""
	return u.Redacted()
}
