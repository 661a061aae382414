package identity

import (
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// OIDCRegistration is a sign-up through an OpenID Connect provider: what
// the provider's mapper made of the claims, and the account it vouches for.
type OIDCRegistration struct {
	// SchemaID is the identity schema; the default one when empty.
	SchemaID       string
	Traits         model.JSON
	MetadataPublic model.JSON
	MetadataAdmin  model.JSON
	// Provider and Subject are the account at the provider.
	Provider, Subject string
	// Verified are addresses the provider vouches for (Kratos's
	// verified_addresses): those the traits hold are stored verified, and
	// get no verification code.
	Verified []VerifiedAddress
}

// VerifiedAddress is an address a provider vouches for.
type VerifiedAddress struct {
	Via   string `json:"via"`
	Value string `json:"value"`
}

// RegisterOIDC creates an identity linked to an account at a provider, its
// traits validated against its schema. Verifiable addresses the provider
// vouched for are stored verified; the others get a verification code in
// the same transaction, as at any sign-up. A login identifier or address
// that another identity holds fails the whole write (IDENTIFIER_TAKEN at
// the trait): nothing is merged.
func (s *Service) RegisterOIDC(ctx context.Context, r *OIDCRegistration) (*model.Identity, error) {
	in := &model.CreateIdentityInput{
		Traits:         r.Traits,
		MetadataPublic: r.MetadataPublic,
		MetadataAdmin:  r.MetadataAdmin,
		Credentials: &model.CredentialsInput{Oidc: &model.OIDCCredentialInput{
			Providers: []*model.OIDCProviderInput{{Provider: r.Provider, Subject: r.Subject}},
		}},
	}
	if r.SchemaID != "" {
		in.SchemaID = &r.SchemaID
	}
	w, err := s.prepareCreate(ctx, in)
	if err != nil {
		return nil, err
	}
	var verified []db.Address
	vouched := func(a db.Address) bool {
		for _, v := range r.Verified {
			if strings.EqualFold(v.Via, a.Via) && sameAddress(a.Via, v.Value, a.Value) {
				return true
			}
		}
		return false
	}
	for _, a := range w.VerifiableAddresses {
		if vouched(a) {
			verified = append(verified, a)
		}
	}
	if err := s.attachVerification(w, func(a db.Address) bool { return !vouched(a) }); err != nil {
		return nil, err
	}
	s.addEvent(ctx, w, model.EventIdentityCreated, true)
	return s.store.CreateIdentityVerified(ctx, w, verified)
}

// sameAddress compares an address a provider sent with one the schema
// derived (normalised): emails case-insensitively, as Kratos lower-cases
// them, anything else trimmed.
func sameAddress(via, sent, stored string) bool {
	sent = strings.TrimSpace(sent)
	if via == "email" {
		return strings.EqualFold(sent, stored)
	}
	return sent == stored
}

// FindByOIDC returns the identity linked to subject at provider, alone (its
// relations load on demand); NOT_FOUND when none is.
func (s *Service) FindByOIDC(ctx context.Context, provider, subject string) (*model.Identity, error) {
	id, err := s.store.FindOIDCIdentity(ctx, provider, subject)
	if err != nil {
		return nil, err
	}
	return s.store.GetIdentity(ctx, id, 0)
}

// LinkOIDC links subject at provider to identity id and returns the
// identity with every relation. IDENTIFIER_TAKEN when another identity is
// linked to that account; VALIDATION_FAILED when id is linked to another
// account at provider.
func (s *Service) LinkOIDC(ctx context.Context, id uuid.UUID, provider, subject string) (*model.Identity, error) {
	if provider == "" || subject == "" {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/provider", Message: "provider and subject must not be empty"}
	}
	if err := s.store.LinkOIDC(ctx, id, db.OIDCProvider{Provider: provider, Subject: subject}, s.clock()); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// UnlinkOIDC removes provider's link from identity id and returns the
// identity with every relation. NOT_FOUND when it is not linked;
// VALIDATION_FAILED when the link is the last way to sign in.
func (s *Service) UnlinkOIDC(ctx context.Context, id uuid.UUID, provider string) (*model.Identity, error) {
	if err := s.store.UnlinkOIDC(ctx, id, provider, s.clock()); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// OIDCProviders lists the providers linked to ident, sorted, each once.
// An identity loaded with its credentials and none of type OIDC costs no
// query.
func (s *Service) OIDCProviders(ctx context.Context, ident *model.Identity) ([]string, error) {
	if ident.Loaded.Has(model.RelationCredentials) {
		has := false
		for _, c := range ident.Credentials {
			has = has || c.Type == model.CredentialTypeOidc
		}
		if !has {
			return []string{}, nil
		}
	}
	links, err := s.store.OIDCLinks(ctx, ident.ID)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		out = append(out, l.Provider)
	}
	// Byte order, as the schema promises.
	slices.Sort(out)
	return slices.Compact(out), nil
}
