package identity

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

// MaxExternalIDBytes caps an external id: ids of other systems are short
// (UUIDs, numbers, Auth0's "auth0|…"), and the value is indexed.
const MaxExternalIDBytes = 255

// GetByExternalID returns the identity whose external id is externalID,
// exactly (case-sensitive), with the relations rels; NOT_FOUND when there
// is none.
func (s *Service) GetByExternalID(ctx context.Context, externalID string, rels model.Relations) (*model.Identity, error) {
	found, _, err := s.store.ListIdentities(ctx, db.IdentityFilter{ExternalID: &externalID}, uuid.Nil, 1, rels)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, model.Errorf(model.CodeNotFound, "no identity has this external id")
	}
	return found[0], nil
}

// externalID checks an external id as a write gives it, at path: nil or
// empty means none. It is stored exactly as given (lookups are exact), so
// it must be valid UTF-8 of at most MaxExternalIDBytes with no control
// characters, which no form can show and PostgreSQL text cannot all hold.
func externalID(v *string, path string) (*string, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	x := *v
	switch {
	case len(x) > MaxExternalIDBytes:
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: path,
			Message: fmt.Sprintf("the external id must be at most %d bytes long (got %d)", MaxExternalIDBytes, len(x))}
	case !utf8.ValidString(x):
		return nil, &model.Error{Code: model.CodeValidationFailed, Path: path, Message: "the external id must be valid UTF-8"}
	}
	for i, r := range x {
		if unicode.IsControl(r) {
			return nil, &model.Error{Code: model.CodeValidationFailed, Path: path,
				Message: fmt.Sprintf("the external id must not contain control characters (U+%04X at byte %d)", r, i)}
		}
	}
	return &x, nil
}
