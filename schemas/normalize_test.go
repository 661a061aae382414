package schemas

import (
	"slices"
	"testing"
)

func TestNormalizeIdentifier(t *testing.T) {
	tests := []struct{ value, format, want string }{
		{" Foo@Bar.COM ", "email", "foo@bar.com"},
		{" Foo@Bar.COM ", "", "foo@bar.com"},
		{"  Some.User ", "", "some.user"},
		{"Straße", "", "straße"},
		{"+1 415 555 2671", "tel", "+14155552671"},
		{"+1 (415) 555-2671", "tel", "+14155552671"},
		{" +44 20 7946 0958 ", "tel", "+442079460958"},
		{"+14155552671", "tel", "+14155552671"},
		{"0123", "tel", "0123"}, // not a phone number: kept as typed, trimmed
		{"+999", "tel", "+999"},
		{"+1 415 555 2671", "", "+1 415 555 2671"}, // only tel traits become E.164
		{"Foo", "uri", "foo"},
	}
	for _, tt := range tests {
		if got := NormalizeIdentifier(tt.value, tt.format); got != tt.want {
			t.Errorf("NormalizeIdentifier(%q, %q) = %q, want %q", tt.value, tt.format, got, tt.want)
		}
	}
}

func TestLoginCandidates(t *testing.T) {
	tests := []struct {
		identifier string
		want       []string
	}{
		{" Foo@Bar.COM ", []string{"foo@bar.com"}},
		{"Some.User", []string{"some.user"}},
		{"+1 415 555 2671", []string{"+1 415 555 2671", "+14155552671"}},
		{"+14155552671", []string{"+14155552671"}},
		{" +14155552671 ", []string{"+14155552671"}},
		{"4155552671", []string{"4155552671"}}, // no +: no guessing the country
		{"+999", []string{"+999"}},
		{"", nil},
		{"   ", nil},
	}
	for _, tt := range tests {
		if got := LoginCandidates(tt.identifier); !slices.Equal(got, tt.want) {
			t.Errorf("LoginCandidates(%q) = %q, want %q", tt.identifier, got, tt.want)
		}
	}
}

// What login looks up must find what Facts stored.
func TestLoginCandidatesFindStoredIdentifiers(t *testing.T) {
	s := schemaAt(t, "file://testdata/customer.schema.json")
	facts, err := s.Facts([]byte(`{"email":"Foo@Bar.com","phone":"+1 415-555-2671"}`))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, id := range facts.Identifiers {
		stored[id.Value] = true
	}
	for _, typed := range []string{"foo@bar.com", " FOO@bar.com", "+14155552671", "+1 (415) 555 2671"} {
		found := false
		for _, c := range LoginCandidates(typed) {
			found = found || stored[c]
		}
		if !found {
			t.Errorf("login with %q finds none of %v", typed, facts.Identifiers)
		}
	}
}
