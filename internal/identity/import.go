package identity

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// ImportResult is the outcome of one imported identity: the identity, or why
// it was refused.
type ImportResult struct {
	Identity *model.Identity
	Err      error
}

// Import creates up to MaxImport identities, as an admin: a cleartext
// password skips the password policy (admins import what exists). Items are
// checked on their own and written in one transaction with a savepoint
// each, so a bad item fails only itself and nothing of it is written; a nil
// item (GraphQL's null) is refused alone. Each identity comes back as
// stored, with every relation, built from what was written: nothing is read
// back.
func (s *Service) Import(ctx context.Context, ins []*model.CreateIdentityInput) ([]ImportResult, error) {
	if len(ins) > MaxImport {
		return nil, model.Errorf(model.CodeBadUserInput, "at most %d identities can be imported per call, got %d", MaxImport, len(ins))
	}
	results, writes := s.prepareImport(ctx, ins, false)
	return s.writeImport(ctx, ins, results, writes, s.store.CreateIdentities)
}

// writeImport writes the prepared items of an import that passed their
// checks with write, each with its verification codes (when asked) and its
// identity.imported event, and fills results.
func (s *Service) writeImport(ctx context.Context, ins []*model.CreateIdentityInput, results []ImportResult, writes []*db.IdentityWrite,
	write func(context.Context, []*db.IdentityWrite) ([]db.Created, error)) ([]ImportResult, error) {
	var batch []*db.IdentityWrite
	var at []int
	for i, w := range writes {
		if results[i].Err == nil {
			if err := s.verifyNew(w, ins[i]); err != nil {
				return nil, err
			}
			s.addEvent(ctx, w, model.EventIdentityImported, false)
			batch = append(batch, w)
			at = append(at, i)
		}
	}
	created, err := write(ctx, batch)
	if err != nil {
		return nil, err
	}
	for k, c := range created {
		results[at[k]] = ImportResult{Identity: c.Identity, Err: c.Err}
	}
	return results, nil
}

// Verifiable and recovery addresses given explicitly, as Kratos's admin API
// takes them (its export writes them): the schema derives an identity's
// addresses from its traits, and an import brings what the old system knew
// about them. An entry whose channel and value (normalised as the traits'
// are) match an address of the traits gives that address its state; any
// other is an address of its own, kept until the traits next change.

// applyAddresses merges a write's explicit addresses into w, whose
// addresses are the schema's by now, and returns every problem with them at
// once, each at its input path (/verifiableAddresses/2/status). now is when
// an address given as verified without a time was verified.
func applyAddresses(w *db.IdentityWrite, verifiable []*model.VerifiableAddressInput, recovery []*model.RecoveryAddressInput, now time.Time) error {
	var errs model.Errors
	for i, in := range verifiable {
		base := fmt.Sprintf("/verifiableAddresses/%d", i)
		if in == nil {
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base, Message: "the address is null"})
			continue
		}
		value, valid, bad := addressValue(in.Value, in.Via, base)
		state, badState := addressState(in, base, now)
		if bad = append(bad, badState...); len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		j := slices.IndexFunc(w.VerifiableAddresses, func(a db.Address) bool { return a.Via == in.Via && a.Value == value })
		switch {
		case j >= 0 && w.VerifiableAddresses[j].State != nil:
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base + "/value",
				Message: "this address is listed twice (values are compared normalised: emails lower-cased, phone numbers in E.164)"})
		case j >= 0:
			w.VerifiableAddresses[j].State = state
		case !valid:
			errs = append(errs, notAnAddress(in.Via, base))
		default:
			w.VerifiableAddresses = append(w.VerifiableAddresses, db.Address{Via: in.Via, Value: value, Path: base + "/value", State: state})
		}
	}
	for i, in := range recovery {
		base := fmt.Sprintf("/recoveryAddresses/%d", i)
		if in == nil {
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base, Message: "the address is null"})
			continue
		}
		value, valid, bad := addressValue(in.Value, in.Via, base)
		if len(bad) > 0 {
			errs = append(errs, bad...)
			continue
		}
		// One already there (from the traits, or listed before) is the
		// same address: nothing to add.
		if slices.ContainsFunc(w.RecoveryAddresses, func(a db.Address) bool { return a.Via == in.Via && a.Value == value }) {
			continue
		}
		if !valid {
			errs = append(errs, notAnAddress(in.Via, base))
			continue
		}
		w.RecoveryAddresses = append(w.RecoveryAddresses, db.Address{Via: in.Via, Value: value, Path: base + "/value"})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// addressValue checks an address entry's channel and value and returns the
// value normalised for its channel, and whether it is a valid address of
// that channel (one the traits hold may not be: a "no-validate" trait).
func addressValue(value, via, base string) (string, bool, model.Errors) {
	if via != "email" && via != "sms" {
		return "", false, model.Errors{{Code: model.CodeValidationFailed, Path: base + "/via",
			Message: fmt.Sprintf(`via must be "email" or "sms" (got %q)`, via)}}
	}
	out, valid, err := schemas.NormalizeAddress(value, via)
	if err != nil {
		return "", false, model.Errors{{Code: model.CodeValidationFailed, Path: base + "/value", Message: "the address " + err.Error()}}
	}
	return out, valid, nil
}

// notAnAddress refuses an address the traits do not hold that is not one of
// its channel.
func notAnAddress(via, base string) *model.Error {
	msg := "not a valid email address"
	if via == "sms" {
		msg = "not a valid phone number (give it with + and the country code)"
	}
	return &model.Error{Code: model.CodeValidationFailed, Path: base + "/value",
		Message: msg + "; an address the traits do not hold must be a valid one of its channel"}
}

// addressState checks an entry's verification state, which must hang
// together: verifiedAt only with verified, status completed exactly when
// verified. Absent fields follow verified: completed and verified now, or
// pending.
func addressState(in *model.VerifiableAddressInput, base string, now time.Time) (*db.AddressState, model.Errors) {
	var errs model.Errors
	st := &db.AddressState{Verified: in.Verified != nil && *in.Verified, Status: model.VerificationPending}
	if st.Verified {
		st.Status = model.VerificationCompleted
		at := now
		if in.VerifiedAt != nil {
			// Both databases keep microseconds.
			at = in.VerifiedAt.UTC().Truncate(time.Microsecond)
		}
		st.VerifiedAt = &at
	} else if in.VerifiedAt != nil {
		errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base + "/verifiedAt",
			Message: "verifiedAt is only for a verified address: set verified to true, or leave verifiedAt out"})
	}
	if in.Status != nil {
		switch s := *in.Status; {
		case s != model.VerificationPending && s != model.VerificationSent && s != model.VerificationCompleted:
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base + "/status",
				Message: fmt.Sprintf(`status must be "pending", "sent" or "completed" (got %q)`, s)})
		case st.Verified && s != model.VerificationCompleted:
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base + "/status",
				Message: `a verified address's status is "completed"`})
		case !st.Verified && s == model.VerificationCompleted:
			errs = append(errs, &model.Error{Code: model.CodeValidationFailed, Path: base + "/status",
				Message: `status "completed" is only for a verified address: set verified to true too`})
		default:
			st.Status = s
		}
	}
	return st, errs
}

// keepExtraAddresses adds to w the addresses of cur that w lacks: those an
// admin gave beyond the traits', which stay until the traits change.
func keepExtraAddresses(w *db.IdentityWrite, cur *model.Identity) {
	for _, a := range cur.VerifiableAddresses {
		if !slices.ContainsFunc(w.VerifiableAddresses, func(b db.Address) bool { return b.Via == a.Via && b.Value == a.Value }) {
			w.VerifiableAddresses = append(w.VerifiableAddresses, db.Address{Via: a.Via, Value: a.Value, Path: "/verifiableAddresses"})
		}
	}
	for _, a := range cur.RecoveryAddresses {
		if !slices.ContainsFunc(w.RecoveryAddresses, func(b db.Address) bool { return b.Via == a.Via && b.Value == a.Value }) {
			w.RecoveryAddresses = append(w.RecoveryAddresses, db.Address{Via: a.Via, Value: a.Value, Path: "/recoveryAddresses"})
		}
	}
}
