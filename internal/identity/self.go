package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/internal/code"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// Register creates an identity for self-service sign-up: traits validated
// against the schema, a password that meets the policy, no metadata (an
// owner can never set it). Every verifiable address gets a verification
// code, queued in the same transaction (see SendCodesWith). Errors point
// into the register input ("/traits/email", "/password", "/schemaId").
func (s *Service) Register(ctx context.Context, schemaID *string, traits model.JSON, pw string) (*model.Identity, error) {
	send := true // every new address gets a verification code
	ident, err := s.Create(ctx, &model.CreateIdentityInput{
		SchemaID:         schemaID,
		Traits:           traits,
		Credentials:      &model.CredentialsInput{Password: &model.PasswordCredentialInput{Password: &pw}},
		SendVerification: &send,
	})
	return ident, repath(err, "/credentials/password/password", "/password")
}

// RegisterPasswordless creates an identity for self-service sign-up without
// a password (Kratos's passwordless registration): traits validated as
// Register does, no credential secret at all, and, in the same transaction,
// a login code valid for lifespan queued to the address it signs in with
// (db.LoginCodeAddress: a `code` identifier, else a login identifier that is
// also a verifiable or recovery address). That code proves the address when
// used, so it gets no verification code; every other verifiable address
// does, as on Register. Traits with no such address are VALIDATION_FAILED
// at /traits: the identity could never sign in.
func (s *Service) RegisterPasswordless(ctx context.Context, schemaID *string, traits model.JSON, lifespan time.Duration) (*model.Identity, error) {
	if s.mail.Codes == nil {
		return nil, errors.New("passwordless registration needs the code service")
	}
	w, err := s.prepareCreate(ctx, &model.CreateIdentityInput{SchemaID: schemaID, Traits: traits})
	if err != nil {
		return nil, err
	}
	to, ok := db.LoginCodeAddress(w)
	if !ok {
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: "/traits",
			Message: "no trait is an address to send a sign-in code to, so nobody could sign in without a password: the schema must mark an email or phone trait " +
				"(\"ory.sh/kratos\": {\"credentials\": {\"code\": {\"identifier\": true, \"via\": \"email\"}}}, or a password identifier that is also a verification or recovery address) and the traits must set it"}
	}
	err = s.attachVerification(w, func(a db.Address) bool { return a.Via != to.Via || a.Value != to.Value })
	if err != nil {
		return nil, err
	}
	t := code.Target{IdentityID: w.Identity.ID, Via: to.Via, Address: to.Value}
	now := s.clock()
	plain, row, err := s.mail.Codes.Short(db.PurposeLogin, t, lifespan, now)
	if err != nil {
		return nil, err
	}
	msg, err := code.Message(s.mail.Courier, db.PurposeLogin, t, plain, lifespan, w.Identity, now)
	if err != nil {
		return nil, err
	}
	w.Codes = append(w.Codes, row)
	w.Messages = append(w.Messages, msg)
	s.addEvent(ctx, w, model.EventIdentityCreated, true)
	return s.store.CreateIdentity(ctx, w)
}

// UpdateTraits replaces the owner's traits, validated against their schema;
// identifiers and addresses follow. Nothing else can change this way. Unless
// privileged (a recent sign-in), a change to any login identifier or any
// verifiable or recovery address is refused with REAUTHENTICATION_REQUIRED,
// one error per trait: those decide who can sign in and recover the
// account, so an old session, perhaps stolen, must not change them. Other
// traits may change either way; invalid traits are reported first. A
// verifiable address that is new gets a verification code in the same
// transaction.
func (s *Service) UpdateTraits(ctx context.Context, id uuid.UUID, traits model.JSON, privileged bool) (*model.Identity, error) {
	return s.store.UpdateIdentity(ctx, id, func(cur *model.Identity) (*db.IdentityWrite, error) {
		next := *cur
		next.Traits = traits
		w, err := s.prepareUpdate(ctx, cur, &next, nil)
		if err != nil {
			return nil, err
		}
		if !privileged {
			if err := s.checkUnprivileged(cur, &next); err != nil {
				return nil, err
			}
		}
		// An address added or changed gets a code; one that stays does
		// not, verified or not (requestVerificationCode sends another).
		held, _ := addressesOf(cur.VerifiableAddresses)
		if err := s.attachVerification(w, func(a db.Address) bool { return !held[[2]string{a.Via, a.Value}] }); err != nil {
			return nil, err
		}
		return w, nil
	})
}

// checkUnprivileged compares what the schema derives from the old and the
// new traits (both valid by now) and refuses any change of a login
// identifier or an address, naming the traits that changed.
func (s *Service) checkUnprivileged(cur, next *model.Identity) error {
	oldSchema, err := s.schemas.Resolve(cur.SchemaID)
	if err != nil {
		return err
	}
	newSchema, err := s.schemas.Resolve(next.SchemaID)
	if err != nil {
		return err
	}
	before, err := oldSchema.Facts(json.RawMessage(cur.Traits))
	if err != nil {
		return fmt.Errorf("stored traits: %w", err)
	}
	after, err := newSchema.Facts(json.RawMessage(next.Traits))
	if err != nil {
		return err
	}
	paths := changedFactPaths(before, after)
	if len(paths) == 0 {
		return nil
	}
	errs := make(model.Errors, len(paths))
	for i, p := range paths {
		errs[i] = &model.Error{Code: model.CodeReauthenticationRequired, Path: p,
			Message: "changing a login identifier or an address needs a recent sign-in: sign in again, then retry"}
	}
	return errs
}

// changedFactPaths returns, sorted, the trait paths of every identifier and
// address that is in one of a and b but not the other. Values are compared
// normalised, so a change of case or spacing is no change.
func changedFactPaths(a, b schemas.Facts) []string {
	type fact struct{ kind, channel, value string }
	collect := func(f schemas.Facts) map[fact]string {
		m := map[fact]string{}
		for _, id := range f.Identifiers {
			m[fact{"identifier", id.CredentialType, id.Value}] = id.Path
		}
		for _, ad := range f.VerifiableAddresses {
			m[fact{"verifiable", ad.Via, ad.Value}] = ad.Path
		}
		for _, ad := range f.RecoveryAddresses {
			m[fact{"recovery", ad.Via, ad.Value}] = ad.Path
		}
		return m
	}
	am, bm := collect(a), collect(b)
	var paths []string
	for _, pair := range [][2]map[fact]string{{am, bm}, {bm, am}} {
		for f, p := range pair[0] {
			if _, ok := pair[1][f]; !ok && !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	slices.Sort(paths)
	return paths
}

// ChangePassword sets a new password for the owner. The new password must
// pass the policy first, before the current one is looked at, so that the
// answer never tells whether a guess was right. The current password must
// then be given and right unless recentLogin (a fresh sign-in) vouches for
// the caller; beforeCompare runs right before it is compared (the throttle
// charges the attempt there) and its error stops everything. When
// keepSession is not nil, every other session of the owner ends in the same
// transaction.
func (s *Service) ChangePassword(ctx context.Context, id uuid.UUID, current *string, next string, recentLogin bool, keepSession *uuid.UUID, beforeCompare func(context.Context) error) error {
	cred, err := s.store.PasswordCredentialOf(ctx, id)
	if err != nil {
		return err
	}
	if err := s.policy.Check(next, cred.Identifiers); err != nil {
		return repath(err, "/password", "/newPassword")
	}
	switch {
	case current != nil:
		if err := beforeCompare(ctx); err != nil {
			return err
		}
		if cred.Hash == "" {
			s.hasher.CompareDummy(ctx, *current)
			return &model.Error{Code: model.CodeInvalidCredentials, Path: "/currentPassword", Message: "the current password is wrong"}
		}
		ok, err := s.hasher.Compare(ctx, *current, cred.Hash)
		if err != nil {
			return err
		}
		if !ok {
			return &model.Error{Code: model.CodeInvalidCredentials, Path: "/currentPassword", Message: "the current password is wrong"}
		}
	case !recentLogin:
		return &model.Error{Code: model.CodeReauthenticationRequired, Path: "/currentPassword",
			Message: "give the current password, or sign in again to change it without"}
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

// NewPasswordHash checks a new password for identity id against the policy
// (with the identity's login identifiers) and hashes it: a recovery sets it
// in the transaction that uses its code up. Policy errors point at path.
func (s *Service) NewPasswordHash(ctx context.Context, id uuid.UUID, pw, path string) (string, error) {
	cred, err := s.store.PasswordCredentialOf(ctx, id)
	if err != nil {
		return "", err
	}
	if err := s.policy.Check(pw, cred.Identifiers); err != nil {
		return "", repath(err, "/password", path)
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return hash, nil
}
