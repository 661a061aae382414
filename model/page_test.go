package model

import (
	"testing"

	"github.com/google/uuid"
)

func TestPageSize(t *testing.T) {
	for _, tc := range []struct {
		first    *int
		want     int
		wantCode ErrorCode
	}{
		{nil, DefaultPageSize, ""},
		{ptr(1), 1, ""},
		{ptr(MaxPageSize), MaxPageSize, ""},
		{ptr(0), 0, CodeBadUserInput},
		{ptr(MaxPageSize + 1), 0, CodeBadUserInput},
		{ptr(-1), 0, CodeBadUserInput},
	} {
		got, err := PageSize(tc.first)
		if got != tc.want || ErrorCodeOf(err) != tc.wantCode {
			t.Errorf("PageSize(%v) = %d, %v; want %d, %q", tc.first, got, err, tc.want, tc.wantCode)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	id := uuid.Must(uuid.NewV7())
	c := EncodeCursor(id)
	if got, err := DecodeCursor(&c); err != nil || got != id {
		t.Errorf("DecodeCursor(EncodeCursor(%s)) = %s, %v", id, got, err)
	}
	for _, bad := range []string{"not a cursor", "AAAA", c + "A"} {
		if _, err := DecodeCursor(&bad); ErrorCodeOf(err) != CodeBadUserInput {
			t.Errorf("DecodeCursor(%q): %v, want BAD_USER_INPUT", bad, err)
		}
	}
	empty := ""
	for _, start := range []*string{nil, &empty} {
		if got, err := DecodeCursor(start); err != nil || got != uuid.Nil {
			t.Errorf("DecodeCursor(%v) = %s, %v; want the start", start, got, err)
		}
	}
}

func TestNewTotalCount(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want TotalCount
	}{
		{0, TotalCount{0, true}},
		{TotalCountLimit, TotalCount{TotalCountLimit, true}},
		{TotalCountLimit + 1, TotalCount{TotalCountLimit, false}},
	} {
		if got := NewTotalCount(tc.n); *got != tc.want {
			t.Errorf("NewTotalCount(%d) = %+v, want %+v", tc.n, *got, tc.want)
		}
	}
}

func ptr(n int) *int { return &n }
