package identity

import (
	"bytes"
	"context"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// List returns a page of identities in creation order after the cursor,
// with the relations rels loaded for the whole page at once (the others load
// on demand, one identity at a time: name every relation the answer shows),
// and the extras asked for, each a query of its own.
func (s *Service) List(ctx context.Context, first *int, after *string, f *model.IdentityFilter, rels model.Relations, extras model.PageExtras) (*model.Page[*model.Identity], error) {
	limit, cursor, err := model.PageArgs(first, after)
	if err != nil {
		return nil, err
	}
	var filter db.IdentityFilter
	if f != nil {
		filter.State = f.State
		filter.SchemaID = f.SchemaID
		filter.IDs = f.Ids
		filter.ExternalID = f.ExternalID
		if f.CredentialsIdentifier != nil {
			filter.Identifiers = schemas.LoginCandidates(*f.CredentialsIdentifier)
			if filter.Identifiers == nil {
				filter.Identifiers = []string{}
			}
			// OIDC identifiers (provider:subject) keep their case: look the
			// value up as given too, as credentials.identifiers shows it.
			// No stored identifier holds a NUL (PostgreSQL text cannot),
			// so such a value finds nothing rather than failing the query.
			if v := strings.TrimSpace(*f.CredentialsIdentifier); v != "" && !strings.ContainsRune(v, 0) && !slices.Contains(filter.Identifiers, v) {
				filter.Identifiers = append(filter.Identifiers, v)
			}
		}
	}
	ids, more, err := s.store.ListIdentities(ctx, filter, cursor, limit, rels)
	if err != nil {
		return nil, err
	}
	page := &model.Page[*model.Identity]{Items: ids, HasNext: more}
	err = page.AddExtras(extras,
		func() (bool, error) { return s.store.IdentitiesBefore(ctx, filter, cursor) },
		func(limit int) (int, error) { return s.store.CountIdentities(ctx, filter, limit) })
	if err != nil {
		return nil, err
	}
	return page, nil
}

// GetMany returns those of the identities ids that exist, by id, with the
// relations rels: one query, and one per relation, however many there are
// (at most model.MaxPageSize), for pages of records that point to
// identities (sessions).
func (s *Service) GetMany(ctx context.Context, ids []uuid.UUID, rels model.Relations) (map[uuid.UUID]*model.Identity, error) {
	if len(ids) == 0 {
		return map[uuid.UUID]*model.Identity{}, nil
	}
	distinct := slices.Compact(slices.SortedFunc(slices.Values(ids), func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }))
	found, _, err := s.store.ListIdentities(ctx, db.IdentityFilter{IDs: distinct}, uuid.Nil, len(distinct), rels)
	if err != nil {
		return nil, err
	}
	out := make(map[uuid.UUID]*model.Identity, len(found))
	for _, ident := range found {
		out[ident.ID] = ident
	}
	return out, nil
}
