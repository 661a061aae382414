// Package identity holds the identity rules: admin create, update, patch,
// delete and import, listing, the owner's own trait updates, and password
// authentication. Every write validates traits against the identity's schema
// and is stored in one transaction.
package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/mfa"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// MaxImport is the most identities one importIdentities call may carry.
const MaxImport = 1000

// Service applies the identity rules. It is safe for concurrent use.
type Service struct {
	store   *db.DB
	schemas *schemas.Registry
	hasher  *password.Hasher
	policy  password.Policy
	now     func() time.Time
	// mail sends codes with writes (see SendCodesWith).
	mail Mail
	// secondFactors seal imported TOTP keys and hash imported lookup
	// secrets (see SecondFactorsWith).
	secondFactors *mfa.Secrets
	totpIssuer    string
}

// SecondFactorsWith lets writes import second factors: TOTP keys sealed with
// secrets' cipher (labelled issuer when given as a bare secret), lookup
// secrets hashed. Without it an import of either is refused.
func (s *Service) SecondFactorsWith(secrets *mfa.Secrets, issuer string) {
	s.secondFactors, s.totpIssuer = secrets, issuer
}

// New returns a Service. now is injected so tests control time.
func New(store *db.DB, reg *schemas.Registry, hasher *password.Hasher, policy password.Policy, now func() time.Time) *Service {
	return &Service{store: store, schemas: reg, hasher: hasher, policy: policy, now: now}
}

// clock returns the current time at the precision both databases keep.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Get returns an identity with every relation, or NOT_FOUND.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*model.Identity, error) {
	return s.GetWith(ctx, id, model.AllRelations)
}

// GetWith returns an identity with the relations rels loaded in the same
// read, or NOT_FOUND. The others still load on demand (Credentials,
// VerifiableAddresses, RecoveryAddresses): rels is what the caller's answer
// will show, so nothing is read twice and nothing is read for nothing.
func (s *Service) GetWith(ctx context.Context, id uuid.UUID, rels model.Relations) (*model.Identity, error) {
	return s.store.GetIdentity(ctx, id, rels)
}

// Create validates and stores a new identity, and returns it as stored,
// with every relation. A cleartext password must pass the password policy:
// this is sign-up's way in (Register). Admins create through AdminCreate.
func (s *Service) Create(ctx context.Context, in *model.CreateIdentityInput) (*model.Identity, error) {
	return s.create(ctx, in, true)
}

// AdminCreate is Create for an admin: a cleartext password is hashed
// without the password policy, as Kratos does on purpose (admins import the
// passwords that exist, and their owners must keep signing in with them).
func (s *Service) AdminCreate(ctx context.Context, in *model.CreateIdentityInput) (*model.Identity, error) {
	return s.create(ctx, in, false)
}

func (s *Service) create(ctx context.Context, in *model.CreateIdentityInput, checkPolicy bool) (*model.Identity, error) {
	w, err := s.prepareCreateAs(ctx, in, checkPolicy)
	if err != nil {
		return nil, err
	}
	if err := s.verifyNew(w, in); err != nil {
		return nil, err
	}
	// Sign-up (the policy applies) is the identity's own doing; an admin's
	// create is the admin's.
	s.addEvent(ctx, w, model.EventIdentityCreated, checkPolicy)
	return s.store.CreateIdentity(ctx, w)
}

// addEvent adds an event of type typ about w's identity to w, written in
// the same transaction; self when the identity itself acts (a sign-up).
func (s *Service) addEvent(ctx context.Context, w *db.IdentityWrite, typ string, self bool) *model.Event {
	e := model.NewEvent(ctx, typ, w.Identity.ID, self, w.Identity.CreatedAt)
	w.Events = append(w.Events, e)
	return e
}

// prepareCreate turns a create input into a complete write, or every problem
// with it at once. A cleartext password skips the password policy: the
// callers are admins' writes and sign-ups without a password.
func (s *Service) prepareCreate(ctx context.Context, in *model.CreateIdentityInput) (*db.IdentityWrite, error) {
	return s.prepareCreateAs(ctx, in, false)
}

// prepareCreateAs is prepareCreate that holds a cleartext password to the
// password policy when checkPolicy is set (self-service).
func (s *Service) prepareCreateAs(ctx context.Context, in *model.CreateIdentityInput, checkPolicy bool) (*db.IdentityWrite, error) {
	return s.prepareCreateWithID(ctx, in, checkPolicy, uuid.Must(uuid.NewV7()))
}

// prepareCreateWithID is prepareCreateAs for an id drawn by the caller: the
// id is final before the write is prepared, since second factors are sealed
// and hashed for it.
func (s *Service) prepareCreateWithID(ctx context.Context, in *model.CreateIdentityInput, checkPolicy bool, id uuid.UUID) (*db.IdentityWrite, error) {
	now := s.clock()
	ident := &model.Identity{
		ID:             id,
		SchemaID:       deref(in.SchemaID),
		State:          model.IdentityStateActive,
		Traits:         in.Traits,
		MetadataPublic: in.MetadataPublic,
		MetadataAdmin:  in.MetadataAdmin,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	// Absent traits are an empty object, as in Kratos; the schema decides
	// whether that is enough.
	if ident.Traits.IsNull() {
		ident.Traits = model.JSON("{}")
	}
	if in.State != nil {
		ident.State = *in.State
	}
	ident.StateChangedAt = &now
	return s.prepare(ctx, ident, writeOptions{
		creds: in.Credentials, verifiable: in.VerifiableAddresses, recovery: in.RecoveryAddresses,
		externalID: in.ExternalID, externalIDPath: "/externalId", checkPolicy: checkPolicy,
	})
}

// verifyNew adds verification codes to a new identity's write when the
// input asks for them, to each address not given as verified; the
// identity's id must be final.
func (s *Service) verifyNew(w *db.IdentityWrite, in *model.CreateIdentityInput) error {
	if in.SendVerification == nil || !*in.SendVerification {
		return nil
	}
	return s.attachVerification(w, func(a db.Address) bool { return a.State == nil || !a.State.Verified })
}

// writeOptions are what a write gives beyond the identity's own fields.
type writeOptions struct {
	creds      *model.CredentialsInput
	verifiable []*model.VerifiableAddressInput
	recovery   []*model.RecoveryAddressInput
	// externalID is the external id as the input gives it (nil or empty:
	// none), at externalIDPath.
	externalID     *string
	externalIDPath string
	// checkPolicy holds a cleartext password to the password policy
	// (self-service); admins' writes skip it.
	checkPolicy bool
	// update marks an update of an identity whose OIDC providers, as
	// stored, are links: the providers given are merged into them.
	update bool
	links  []db.OIDCProvider
}

// prepare validates ident's traits against its schema (the default one when
// SchemaID is empty), derives identifiers and addresses, applies the
// addresses and external id given, and hashes or checks the credentials
// given.
func (s *Service) prepare(ctx context.Context, ident *model.Identity, o writeOptions) (*db.IdentityWrite, error) {
	schema, err := s.schemas.Resolve(ident.SchemaID)
	if err != nil {
		return nil, err
	}
	ident.SchemaID = schema.ID
	// Every problem with the input at once: the external id's, the
	// traits', then (the traits being valid, so their addresses known) the
	// addresses'.
	var errs model.Errors
	if ident.ExternalID, err = externalID(o.externalID, o.externalIDPath); err != nil {
		errs = append(errs, model.UserErrors(err)...)
	}
	if err := schema.Validate(json.RawMessage(ident.Traits)); err != nil {
		bad := model.UserErrors(err)
		if len(bad) == 0 {
			return nil, err
		}
		return nil, append(errs, bad...)
	}
	facts, err := schema.Facts(json.RawMessage(ident.Traits))
	if err != nil {
		return nil, err
	}
	w := &db.IdentityWrite{Identity: ident, ExternalIDPath: o.externalIDPath}
	var passwordIdentifiers []string
	for _, id := range facts.Identifiers {
		w.Identifiers = append(w.Identifiers, db.Identifier{Type: id.CredentialType, Value: id.Value, Path: id.Path})
		if id.CredentialType == db.CredentialPassword {
			passwordIdentifiers = append(passwordIdentifiers, id.Value)
		}
	}
	for _, a := range facts.VerifiableAddresses {
		w.VerifiableAddresses = append(w.VerifiableAddresses, db.Address{Via: a.Via, Value: a.Value, Path: a.Path})
	}
	for _, a := range facts.RecoveryAddresses {
		w.RecoveryAddresses = append(w.RecoveryAddresses, db.Address{Via: a.Via, Value: a.Value, Path: a.Path})
	}
	if err := applyAddresses(w, o.verifiable, o.recovery, ident.UpdatedAt); err != nil {
		errs = append(errs, model.UserErrors(err)...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	creds := o.creds
	if creds == nil {
		return w, nil
	}
	if p := creds.Password; p != nil {
		// A password nobody can name an account for is a dead credential:
		// Kratos refuses it too.
		if len(passwordIdentifiers) == 0 {
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/traits",
				Message: "no trait is a login identifier for passwords, so nobody could sign in with this password: the schema must mark one (\"ory.sh/kratos\": {\"credentials\": {\"password\": {\"identifier\": true}}}) and the traits must set it"}
		}
		secret, err := s.passwordSecret(ctx, p, passwordIdentifiers, o.checkPolicy)
		if err != nil {
			return nil, err
		}
		w.Password = secret
	}
	if c := creds.Oidc; c != nil {
		given, err := oidcProviders(c)
		if err != nil {
			return nil, err
		}
		w.OIDC = given
		if o.update {
			w.OIDC = mergeProviders(o.links, given)
		}
		for _, l := range w.OIDC {
			// A provider given points at its entry; one kept from before
			// at the credential.
			path := "/credentials/oidc"
			if i := slices.IndexFunc(given, func(g db.OIDCProvider) bool { return sameLink(g, l) }); i >= 0 {
				path = fmt.Sprintf("/credentials/oidc/providers/%d", i)
			}
			w.Identifiers = append(w.Identifiers, db.Identifier{Type: db.CredentialOIDC, Value: l.Provider + ":" + l.Subject, Path: path})
		}
	}
	if err := s.importSecondFactors(w, creds); err != nil {
		return nil, err
	}
	return w, nil
}

// oidcProviders checks the OIDC providers an input gives.
func oidcProviders(o *model.OIDCCredentialInput) ([]db.OIDCProvider, error) {
	out := []db.OIDCProvider{}
	for i, p := range o.Providers {
		path := fmt.Sprintf("/credentials/oidc/providers/%d", i)
		if p == nil || p.Provider == "" || p.Subject == "" {
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "provider and subject must not be empty"}
		}
		link := db.OIDCProvider{Provider: p.Provider, Subject: p.Subject}
		if p.Organization != nil {
			link.Organization = p.Organization.String()
		}
		// A repeat would collide with itself in storage and read as
		// IDENTIFIER_TAKEN by nobody.
		if slices.ContainsFunc(out, func(l db.OIDCProvider) bool { return sameLink(l, link) }) {
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "this provider and subject are listed twice"}
		}
		out = append(out, link)
	}
	return out, nil
}

// sameLink tells whether two providers are the same account: the same
// subject at the same provider.
func sameLink(a, b db.OIDCProvider) bool { return a.Provider == b.Provider && a.Subject == b.Subject }

// mergeProviders merges the providers an admin's update gives into those
// the identity has, as Kratos does: the identity's stay, in their order,
// and new ones follow. One it has already keeps its place and takes the
// organization given, if any. Removing a link is explicit (unlinking it, or
// deleting the credential), so no social sign-in is lost by an update that
// lists only some.
func mergeProviders(cur, given []db.OIDCProvider) []db.OIDCProvider {
	out := slices.Clone(cur)
	for _, g := range given {
		i := slices.IndexFunc(out, func(l db.OIDCProvider) bool { return sameLink(l, g) })
		switch {
		case i < 0:
			out = append(out, g)
		case g.Organization != "":
			out[i].Organization = g.Organization
		}
	}
	if out == nil {
		out = []db.OIDCProvider{}
	}
	return out
}

// importSecondFactors adds an input's TOTP key and lookup secrets to w,
// sealed and hashed for the identity (whose id is final here).
func (s *Service) importSecondFactors(w *db.IdentityWrite, creds *model.CredentialsInput) error {
	if creds.Totp == nil && creds.LookupSecret == nil {
		return nil
	}
	if s.secondFactors == nil {
		return &model.Error{Code: model.CodeValidationFailed, Path: "/credentials", Message: "second factors cannot be imported on this server"}
	}
	id, now := w.Identity.ID, w.Identity.UpdatedAt
	if t := creds.Totp; t != nil {
		const path = "/credentials/totp"
		var raw string
		switch {
		case (t.SecretURL == nil) == (t.Secret == nil):
			return &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "give exactly one of secretUrl and secret"}
		case t.SecretURL != nil:
			raw = *t.SecretURL
		default:
			raw = *t.Secret
		}
		url, err := mfa.ParseTOTP(raw, s.totpIssuer, s.TOTPAccountName(w.Identity))
		if err != nil {
			p := path + "/secret"
			if t.SecretURL != nil {
				p = path + "/secretUrl"
			}
			return &model.Error{Code: model.CodeValidationFailed, Path: p, Message: err.Error()}
		}
		config, err := s.secondFactors.TOTPCredential(id, url, 0, now)
		if err != nil {
			return fmt.Errorf("seal imported totp key: %w", err)
		}
		w.SecondFactors = append(w.SecondFactors, db.SecondFactor{Type: db.CredentialTOTP, Config: config})
	}
	if l := creds.LookupSecret; l != nil {
		config, err := s.secondFactors.LookupCredential(id, l.Codes, now)
		if err != nil {
			p := "/credentials/lookupSecret/codes"
			var ce *mfa.CodeError
			if errors.As(err, &ce) {
				p = fmt.Sprintf("%s/%d", p, ce.Index)
			}
			return &model.Error{Code: model.CodeValidationFailed, Path: p, Message: err.Error()}
		}
		w.SecondFactors = append(w.SecondFactors, db.SecondFactor{Type: db.CredentialLookupSecret, Config: config})
	}
	return nil
}

// passwordSecret hashes a plaintext password or checks an imported hash's
// format; exactly one of the two must be given. checkPolicy holds the
// plaintext to the password policy (self-service); an admin's is only
// bounded, so that hashing it costs what any other does.
func (s *Service) passwordSecret(ctx context.Context, p *model.PasswordCredentialInput, identifiers []string, checkPolicy bool) (*db.PasswordSecret, error) {
	const path = "/credentials/password"
	switch {
	case p.Password != nil && p.HashedPassword != nil:
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "give either password or hashedPassword, not both"}
	case p.Password != nil:
		if checkPolicy {
			if err := s.policy.Check(*p.Password, identifiers); err != nil {
				if e, ok := err.(*model.Error); ok {
					return nil, e.AtPath(path + "/password")
				}
				return nil, err
			}
		} else if err := s.boundPassword(*p.Password); err != nil {
			return nil, err.AtPath(path + "/password")
		}
		hash, err := s.hasher.Hash(ctx, *p.Password)
		if err != nil {
			return nil, fmt.Errorf("hash password: %w", err)
		}
		return &db.PasswordSecret{Hash: hash}, nil
	case p.HashedPassword != nil:
		if _, err := password.Recognise(*p.HashedPassword); err != nil {
			if e, ok := err.(*model.Error); ok {
				return nil, e.AtPath(path + "/hashedPassword")
			}
			return nil, err
		}
		return &db.PasswordSecret{Hash: *p.HashedPassword}, nil
	default:
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "give a password or a hashedPassword"}
	}
}

// boundPassword is what an admin's cleartext password must be: not empty
// (nobody could type it) and no longer than the policy's maximum.
func (s *Service) boundPassword(pw string) *model.Error {
	limit := s.policy.MaxLength
	if limit <= 0 {
		limit = password.DefaultPolicy().MaxLength
	}
	switch {
	case pw == "":
		return model.Errorf(model.CodeValidationFailed, "the password must not be empty")
	case len(pw) > limit:
		return model.Errorf(model.CodeValidationFailed, "the password must be at most %d bytes", limit)
	}
	return nil
}

// Update replaces an identity's traits, state, schema and metadata, sets
// its external id when given, and sets the credentials given (OIDC
// providers are merged into the identity's; a cleartext password skips the
// password policy, as for any admin write); setting a password ends the
// identity's sessions in the same transaction unless in.RevokeSessions is
// false. It returns the identity as stored, with every relation.
func (s *Service) Update(ctx context.Context, id uuid.UUID, in *model.UpdateIdentityInput) (*model.Identity, error) {
	return s.store.UpdateIdentityWithOIDC(ctx, id, func(cur *model.Identity, links []db.OIDCProvider) (*db.IdentityWrite, error) {
		next := *cur
		if in.SchemaID != nil {
			next.SchemaID = *in.SchemaID
		}
		next.Traits = in.Traits
		next.MetadataPublic = in.MetadataPublic
		next.MetadataAdmin = in.MetadataAdmin
		if in.State != nil {
			next.State = *in.State
		}
		o := writeOptions{creds: in.Credentials, verifiable: in.VerifiableAddresses, recovery: in.RecoveryAddresses,
			externalID: cur.ExternalID, externalIDPath: "/externalId", update: true, links: links}
		if in.ExternalID != nil {
			o.externalID = in.ExternalID
		}
		w, err := s.prepareUpdateWith(ctx, cur, &next, o)
		if err != nil {
			return nil, err
		}
		// A password reset signs out whoever holds the account (perhaps the
		// reason for the reset), unless the admin keeps the sessions.
		w.EndSessions = in.Credentials != nil && in.Credentials.Password != nil &&
			(in.RevokeSessions == nil || *in.RevokeSessions)
		if in.SendVerification != nil && *in.SendVerification {
			// Every address still to verify: new ones and those that
			// stay unverified, unless given as verified now.
			_, verified := addressesOf(cur.VerifiableAddresses)
			if err := s.attachVerification(w, func(a db.Address) bool {
				if a.State != nil {
					return !a.State.Verified
				}
				return !verified[[2]string{a.Via, a.Value}]
			}); err != nil {
				return nil, err
			}
		}
		return w, nil
	})
}

// prepareUpdate prepares the write of next, the new state of cur, that sets
// no credentials, addresses or external id of its own (the owner's own
// traits, say): the external id, the OIDC links and, while the traits stay
// the same, the addresses given beyond them are kept.
func (s *Service) prepareUpdate(ctx context.Context, cur, next *model.Identity, creds *model.CredentialsInput) (*db.IdentityWrite, error) {
	return s.prepareUpdateWith(ctx, cur, next, writeOptions{creds: creds, externalID: cur.ExternalID, externalIDPath: "/externalId", update: true})
}

// prepareUpdateWith prepares the write of next, the new state of cur, with
// what o gives.
func (s *Service) prepareUpdateWith(ctx context.Context, cur, next *model.Identity, o writeOptions) (*db.IdentityWrite, error) {
	now := s.clock()
	next.UpdatedAt = now
	if next.State != cur.State {
		next.StateChangedAt = &now
	}
	w, err := s.prepare(ctx, next, o)
	if err != nil {
		return nil, err
	}
	// Addresses an admin gave beyond the traits' stay until the traits
	// change.
	if sameJSON(cur.Traits, next.Traits) {
		keepExtraAddresses(w, cur)
	}
	// OIDC identifiers come from the credential, not from the traits: a write
	// that sets no OIDC providers keeps them (and keeps them unique).
	if o.creds == nil || o.creds.Oidc == nil {
		for _, c := range cur.Credentials {
			if c.Type != model.CredentialTypeOidc {
				continue
			}
			for _, v := range c.Identifiers {
				w.Identifiers = append(w.Identifiers, db.Identifier{Type: db.CredentialOIDC, Value: v, Path: "/credentials/oidc"})
			}
		}
	}
	return w, nil
}

// sameJSON tells whether two JSON documents hold the same value (numbers
// compared as written).
func sameJSON(a, b model.JSON) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	dx, dy := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	dx.UseNumber()
	dy.UseNumber()
	if dx.Decode(&x) != nil || dy.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Delete removes an identity with everything that hangs off it.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	return s.store.DeleteIdentity(ctx, id, s.clock())
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Credentials returns an identity's credentials: those it was loaded with,
// or else read now (whoami reads the identity alone, in one query).
func (s *Service) Credentials(ctx context.Context, ident *model.Identity) ([]*model.Credential, error) {
	if ident.Loaded.Has(model.RelationCredentials) {
		return ident.Credentials, nil
	}
	return s.store.Credentials(ctx, ident.ID)
}

// VerifiableAddresses returns an identity's verifiable addresses.
func (s *Service) VerifiableAddresses(ctx context.Context, ident *model.Identity) ([]*model.VerifiableAddress, error) {
	if ident.Loaded.Has(model.RelationVerifiableAddresses) {
		return ident.VerifiableAddresses, nil
	}
	return s.store.VerifiableAddresses(ctx, ident.ID)
}

// RecoveryAddresses returns an identity's recovery addresses.
func (s *Service) RecoveryAddresses(ctx context.Context, ident *model.Identity) ([]*model.RecoveryAddress, error) {
	if ident.Loaded.Has(model.RelationRecoveryAddresses) {
		return ident.RecoveryAddresses, nil
	}
	return s.store.RecoveryAddresses(ctx, ident.ID)
}

// TOTPAccountName is how an authenticator app labels ident's key: the trait
// its schema marks `totp.account_name`, else its first login identifier,
// else its id.
func (s *Service) TOTPAccountName(ident *model.Identity) string {
	if schema, err := s.schemas.Resolve(ident.SchemaID); err == nil {
		if facts, err := schema.Facts(json.RawMessage(ident.Traits)); err == nil {
			for _, typ := range []string{db.CredentialTOTP, db.CredentialPassword} {
				for _, id := range facts.Identifiers {
					if id.CredentialType == typ {
						return id.Value
					}
				}
			}
		}
	}
	return ident.ID.String()
}

// eventData is an event's details as JSON (never a secret).
func eventData(v map[string]any) model.JSON {
	b, _ := json.Marshal(v)
	return model.JSON(b)
}
