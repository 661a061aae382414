package model

import (
	"encoding/base64"

	"github.com/google/uuid"
)

// Listings are keyset-paginated on UUIDv7 ids, which sort in creation order:
// a cursor is the id of the last row of a page, so a page never shifts while
// rows are added or removed, and the cursor of a deleted row stays valid.
// Every connection shares these rules, so a client pages through any of them
// alike.

// Page sizes of every listing.
const (
	DefaultPageSize = 250
	MaxPageSize     = 1000
)

// TotalCountLimit bounds the rows a total count reads: a count visits every
// matching row, and a console asking for it on every page must not scan
// millions of them. Past the limit a count is reported as inexact.
const TotalCountLimit = 10_000

// PageSize checks a requested page size (first); nil is the default.
func PageSize(first *int) (int, error) {
	if first == nil {
		return DefaultPageSize, nil
	}
	if *first < 1 || *first > MaxPageSize {
		return 0, &Error{Code: CodeBadUserInput, Path: "/first", Message: "first must be between 1 and 1000"}
	}
	return *first, nil
}

// EncodeCursor is the opaque cursor that points just past the row id.
func EncodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// PageArgs reads a connection's first and after arguments: the page size
// (PageSize) and the keyset cursor (DecodeCursor).
func PageArgs(first *int, after *string) (limit int, cursor uuid.UUID, err error) {
	if limit, err = PageSize(first); err != nil {
		return 0, uuid.Nil, err
	}
	cursor, err = DecodeCursor(after)
	return limit, cursor, err
}

// DecodeCursor reads an after cursor; nil or empty is the start (uuid.Nil).
func DecodeCursor(after *string) (uuid.UUID, error) {
	if after == nil || *after == "" {
		return uuid.Nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*after)
	if err != nil || len(b) != 16 {
		return uuid.Nil, &Error{Code: CodeBadUserInput, Path: "/after", Message: "after is not a cursor this API returned"}
	}
	return uuid.UUID(b), nil
}

// PageExtras are the facts about a listing beyond its rows that each cost a
// query of their own: a caller names those its answer shows.
type PageExtras struct {
	// TotalCount counts the rows that match the filter, up to
	// TotalCountLimit.
	TotalCount bool
	// HasPrevious looks for a matching row at or before the cursor.
	HasPrevious bool
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T
	// HasNext: more rows match after the last one.
	HasNext bool
	// HasPrevious: the page started after a cursor and a matching row
	// precedes it. Only worked out when PageExtras.HasPrevious asked for
	// it; false otherwise.
	HasPrevious bool
	// Total is the number of matching rows, whatever the cursor; nil unless
	// PageExtras.TotalCount asked for it.
	Total *TotalCount
}

// AddExtras works out the extras asked for, each by its own query:
// previous tells whether a matching row precedes the page's cursor, count
// counts matching rows reading at most limit of them. Every listing
// (identities, sessions, messages) fills its connection's optional fields
// this way, so each costs a query only when the answer shows it.
func (p *Page[T]) AddExtras(extras PageExtras, previous func() (bool, error), count func(limit int) (int, error)) error {
	if extras.HasPrevious {
		var err error
		if p.HasPrevious, err = previous(); err != nil {
			return err
		}
	}
	if extras.TotalCount {
		n, err := count(TotalCountLimit + 1)
		if err != nil {
			return err
		}
		p.Total = NewTotalCount(n)
	}
	return nil
}

// TotalCount is a bounded count of the rows that match a filter.
type TotalCount struct {
	// Count is exact when Exact, and otherwise TotalCountLimit: more than
	// that many match.
	Count int
	Exact bool
}

// NewTotalCount reads a count of at most TotalCountLimit+1 rows.
func NewTotalCount(n int) *TotalCount {
	if n > TotalCountLimit {
		return &TotalCount{Count: TotalCountLimit}
	}
	return &TotalCount{Count: n, Exact: true}
}
