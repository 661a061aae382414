package identity

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// Page sizes for List.
const (
	DefaultPageSize = 250
	MaxPageSize     = 1000
)

// Page is one page of identities.
type Page struct {
	Identities []*model.Identity
	HasNext    bool
	// HasPrevious is true when the page started after a cursor.
	HasPrevious bool
}

// Cursor returns the opaque cursor that points just past ident.
func Cursor(ident *model.Identity) string {
	return base64.RawURLEncoding.EncodeToString(ident.ID[:])
}

func parseCursor(c string) (uuid.UUID, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) != 16 {
		return uuid.Nil, &model.Error{Code: model.CodeBadUserInput, Path: "/after", Message: "after is not a cursor this API returned"}
	}
	return uuid.UUID(b), nil
}

// List returns a page of identities in creation order after the cursor,
// with the relations rels loaded for the whole page at once (the others load
// on demand, one identity at a time: name every relation the answer shows).
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.IdentityFilter, rels model.Relations) (*Page, error) {
	limit := DefaultPageSize
	if first != nil {
		if *first < 1 || *first > MaxPageSize {
			return nil, &model.Error{Code: model.CodeBadUserInput, Path: "/first", Message: "first must be between 1 and 1000"}
		}
		limit = *first
	}
	var cursor uuid.UUID
	if after != nil && *after != "" {
		var err error
		if cursor, err = parseCursor(*after); err != nil {
			return nil, err
		}
	}
	var filter db.IdentityFilter
	if f != nil {
		filter.State = f.State
		filter.SchemaID = f.SchemaID
		filter.IDs = f.Ids
		if f.CredentialsIdentifier != nil {
			filter.Identifiers = schemas.LoginCandidates(*f.CredentialsIdentifier)
			if filter.Identifiers == nil {
				filter.Identifiers = []string{}
			}
			// OIDC identifiers (provider:subject) keep their case: look the
			// value up as given too, as credentials.identifiers shows it.
			if v := strings.TrimSpace(*f.CredentialsIdentifier); v != "" && !slices.Contains(filter.Identifiers, v) {
				filter.Identifiers = append(filter.Identifiers, v)
			}
		}
	}
	ids, more, err := s.store.ListIdentities(ctx, filter, cursor, limit, rels)
	if err != nil {
		return nil, err
	}
	return &Page{Identities: ids, HasNext: more, HasPrevious: cursor != uuid.Nil}, nil
}
