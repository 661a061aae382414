package identity

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// Register creates an identity for self-service sign-up: traits validated
// against the schema, a password that meets the policy, no metadata (an
// owner can never set it). Errors point into the register input
// ("/traits/email", "/password", "/schemaId").
func (s *Service) Register(ctx context.Context, schemaID *string, traits model.JSON, pw string) (*model.Identity, error) {
	ident, err := s.Create(ctx, &model.CreateIdentityInput{
		SchemaID:    schemaID,
		Traits:      traits,
		Credentials: &model.CredentialsInput{Password: &model.PasswordCredentialInput{Password: &pw}},
	})
	return ident, repath(err, "/credentials/password/password", "/password")
}

// UpdateTraits replaces the owner's traits, validated against their schema;
// identifiers and addresses follow. Nothing else can change this way.
func (s *Service) UpdateTraits(ctx context.Context, id uuid.UUID, traits model.JSON) (*model.Identity, error) {
	return s.store.UpdateIdentity(ctx, id, func(cur *model.Identity) (*db.IdentityWrite, error) {
		next := *cur
		next.Traits = traits
		return s.prepareUpdate(ctx, cur, &next, nil)
	})
}

// ChangePassword sets a new password for the owner. The current password
// must be given and right unless recentLogin (a fresh sign-in) vouches for
// the caller. When keepSession is not nil, every other session of the owner
// ends in the same transaction.
func (s *Service) ChangePassword(ctx context.Context, id uuid.UUID, current *string, next string, recentLogin bool, keepSession *uuid.UUID) error {
	cred, err := s.store.PasswordCredentialOf(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case current != nil && cred.Hash != "":
		ok, err := s.hasher.Compare(ctx, *current, cred.Hash)
		if err != nil {
			return err
		}
		if !ok {
			return &model.Error{Code: model.CodeInvalidCredentials, Path: "/currentPassword", Message: "the current password is wrong"}
		}
	case current != nil:
		s.hasher.CompareDummy(ctx, *current)
		return &model.Error{Code: model.CodeInvalidCredentials, Path: "/currentPassword", Message: "the current password is wrong"}
	case !recentLogin:
		return &model.Error{Code: model.CodeInvalidCredentials, Path: "/currentPassword",
			Message: "give the current password, or sign in again to change it without"}
	}
	if err := s.policy.Check(next, cred.Identifiers); err != nil {
		return repath(err, "/password", "/newPassword")
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return s.store.SetPassword(ctx, id, hash, s.clock(), keepSession)
}

// repath moves the paths of application errors from one input shape to
// another: the same rule reports "/credentials/password/password" on the
// admin API and "/password" on register.
func repath(err error, from, to string) error {
	errs := model.UserErrors(err)
	if len(errs) == 0 {
		return err
	}
	out := make(model.Errors, len(errs))
	for i, e := range errs {
		c := *e
		if c.Path == from || strings.HasPrefix(c.Path, from+"/") {
			c.Path = to + strings.TrimPrefix(c.Path, from)
		}
		out[i] = &c
	}
	return out
}
