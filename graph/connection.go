package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/identityd/identityd/model"
)

// selectedPageExtras tells which costly facts of the connection (a type
// name) that the current field returns its answer shows: totalCount or
// isTotalCountExact (a bounded count) and pageInfo.hasPreviousPage (a probe
// before the cursor). Each costs a query, so a console that shows neither
// pays for neither. Fields are collected as gqlgen executes them (aliases,
// fragments, @skip and @include), so what is asked is what runs.
func selectedPageExtras(ctx context.Context, connection string) model.PageExtras {
	return model.PageExtras{
		TotalCount:  selectsPath(ctx, connection, "totalCount") || selectsPath(ctx, connection, "isTotalCountExact"),
		HasPrevious: selectsPath(ctx, connection, "pageInfo", "PageInfo", "hasPreviousPage"),
	}
}

// pageInfo is the Relay page information of a page whose edges have the
// cursors first and last (empty: no edges).
// connectionParts builds what every Relay connection of ours shares from a
// page: one edge per item, its cursor made from the item's id, the page info
// and the bounded total count.
func connectionParts[T, E any](p *model.Page[T], id func(T) uuid.UUID, edge func(cursor string, node T) E) (edges []E, info *model.PageInfo, total *int, exact *bool) {
	edges = make([]E, len(p.Items))
	var first, last string
	for i, item := range p.Items {
		c := model.EncodeCursor(id(item))
		if i == 0 {
			first = c
		}
		last = c
		edges[i] = edge(c, item)
	}
	total, exact = totalCount(p)
	return edges, pageInfo(p, first, last), total, exact
}

func pageInfo[T any](p *model.Page[T], first, last string) *model.PageInfo {
	info := &model.PageInfo{HasNextPage: p.HasNext, HasPreviousPage: p.HasPrevious}
	if len(p.Items) > 0 {
		info.StartCursor, info.EndCursor = &first, &last
	}
	return info
}

// totalCount is a page's bounded count as the two connection fields show it;
// both nil when it was not asked for.
func totalCount[T any](p *model.Page[T]) (*int, *bool) {
	if p.Total == nil {
		return nil, nil
	}
	n, exact := p.Total.Count, p.Total.Exact
	return &n, &exact
}

// shareIdentities gives every session of ss its identity, all read in one
// query (and one per relation the query selects), when the query asks for
// them: the Session.identity resolver would otherwise read one identity per
// session, a thousand reads for a page of sessions. A session whose
// identity cannot be read now is left to that resolver, which reports it
// where it belongs.
func (r *queryResolver) shareIdentities(ctx context.Context, ss []*model.Session) error {
	if len(ss) == 0 || !selectsPath(ctx, "SessionConnection", "edges", "SessionEdge", "node", "Session", "identity") {
		return nil
	}
	ids := make([]uuid.UUID, len(ss))
	for i, s := range ss {
		ids[i] = s.IdentityID
	}
	found, err := r.IdentityService.GetMany(ctx, ids, selectedRelations(ctx))
	if err != nil {
		return err
	}
	for _, s := range ss {
		s.Identity = found[s.IdentityID]
	}
	return nil
}

// selectsPath tells whether the current field's selection asks for a field
// at the end of a path of (type, field) steps, through any fragment or
// alias: selectsPath(ctx, "SessionConnection", "edges", "SessionEdge",
// "node") asks whether any edge's node is selected. Without an operation it
// answers true.
func selectsPath(ctx context.Context, steps ...string) bool {
	if !graphql.HasOperationContext(ctx) || graphql.GetFieldContext(ctx) == nil {
		return true
	}
	op := graphql.GetOperationContext(ctx)
	fields := graphql.CollectFieldsCtx(ctx, []string{steps[0]})
	for i := 1; i < len(steps); i += 2 {
		var next []graphql.CollectedField
		for _, f := range fields {
			if f.Name != steps[i] {
				continue
			}
			if i+1 == len(steps) {
				return true
			}
			next = append(next, graphql.CollectFields(op, f.Selections, []string{steps[i+1]})...)
		}
		fields = next
	}
	return false
}
