package identity

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/model"
)

func ptr[T any](v T) *T { return &v }

// errorsAt renders errors as "CODE path".
func errorsAt(err error) []string {
	var out []string
	for _, e := range model.UserErrors(err) {
		out = append(out, string(e.Code)+" "+e.Path)
	}
	return out
}

func TestAddressState(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	tests := []struct {
		name string
		in   model.VerifiableAddressInput
		want string // "verified status verifiedAt", or the error paths
	}{
		{"nothing", model.VerifiableAddressInput{}, "false pending -"},
		{"verified", model.VerifiableAddressInput{Verified: ptr(true)}, "true completed 2026-01-02T03:04:05Z"},
		{"verified at", model.VerifiableAddressInput{Verified: ptr(true), VerifiedAt: &at}, "true completed 2024-05-06T07:08:09.123456Z"},
		{"verified, completed", model.VerifiableAddressInput{Verified: ptr(true), Status: ptr("completed")}, "true completed 2026-01-02T03:04:05Z"},
		{"sent", model.VerifiableAddressInput{Status: ptr("sent")}, "false sent -"},
		{"unverified, pending", model.VerifiableAddressInput{Verified: ptr(false), Status: ptr("pending")}, "false pending -"},
		{"verifiedAt alone", model.VerifiableAddressInput{VerifiedAt: &at}, "/a/verifiedAt"},
		{"verified, sent", model.VerifiableAddressInput{Verified: ptr(true), Status: ptr("sent")}, "/a/status"},
		{"unverified, completed", model.VerifiableAddressInput{Status: ptr("completed")}, "/a/status"},
		{"unknown status", model.VerifiableAddressInput{Status: ptr("Completed")}, "/a/status"},
		{"two problems", model.VerifiableAddressInput{VerifiedAt: &at, Status: ptr("completed")}, "/a/verifiedAt /a/status"},
	}
	for _, tc := range tests {
		st, errs := addressState(&tc.in, "/a", now)
		var got string
		if len(errs) > 0 {
			var paths []string
			for _, e := range errs {
				paths = append(paths, e.Path)
				if e.Code != model.CodeValidationFailed || e.Message == "" {
					t.Errorf("%s: error %+v", tc.name, e)
				}
			}
			got = strings.Join(paths, " ")
		} else {
			vat := "-"
			if st.VerifiedAt != nil {
				vat = st.VerifiedAt.Format(time.RFC3339Nano)
			}
			got = fmt.Sprintf("%v %s %s", st.Verified, st.Status, vat)
		}
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestApplyAddresses(t *testing.T) {
	now := time.Now().UTC()
	base := func() *db.IdentityWrite {
		return &db.IdentityWrite{
			VerifiableAddresses: []db.Address{{Via: "email", Value: "a@example.com", Path: "/traits/email"}, {Via: "sms", Value: "not a number", Path: "/traits/phone"}},
			RecoveryAddresses:   []db.Address{{Via: "email", Value: "a@example.com", Path: "/traits/email"}},
		}
	}
	w := base()
	err := applyAddresses(w, []*model.VerifiableAddressInput{
		{Value: "A@Example.COM ", Via: "email", Verified: ptr(true)},
		{Value: "not a number", Via: "sms", Status: ptr("sent")}, // a no-validate trait's: merged, not checked
		{Value: "+44 20 7946 0958", Via: "sms"},
	}, []*model.RecoveryAddressInput{
		{Value: "a@example.com", Via: "email"},
		{Value: "B@example.com", Via: "email"},
		{Value: "b@example.com", Via: "email"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range w.VerifiableAddresses {
		s := a.Via + ":" + a.Value + "@" + a.Path
		if a.State != nil {
			s += fmt.Sprintf(" %v/%s", a.State.Verified, a.State.Status)
		}
		got = append(got, s)
	}
	for _, a := range w.RecoveryAddresses {
		got = append(got, "recovery "+a.Via+":"+a.Value+"@"+a.Path)
	}
	want := []string{
		"email:a@example.com@/traits/email true/completed",
		"sms:not a number@/traits/phone false/sent",
		"sms:+442079460958@/verifiableAddresses/2/value false/pending",
		"recovery email:a@example.com@/traits/email",
		"recovery email:b@example.com@/recoveryAddresses/1/value",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	err = applyAddresses(base(), []*model.VerifiableAddressInput{
		{Value: "a@example.com", Via: "email"},
		{Value: "A@example.com", Via: "email"},
		{Value: "nope", Via: "email"},
		{Value: "x@example.com", Via: "Email"},
		nil,
	}, []*model.RecoveryAddressInput{{Value: "nope", Via: "sms"}}, now)
	if got, want := errorsAt(err), []string{
		"VALIDATION_FAILED /verifiableAddresses/1/value", "VALIDATION_FAILED /verifiableAddresses/2/value",
		"VALIDATION_FAILED /verifiableAddresses/3/via", "VALIDATION_FAILED /verifiableAddresses/4",
		"VALIDATION_FAILED /recoveryAddresses/0/value",
	}; !slices.Equal(got, want) {
		t.Errorf("errors %v, want %v", got, want)
	}
}

func TestPatchedStates(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	other := at.Add(time.Hour)
	pending := patchAddress{ID: uuid.New(), Value: "a@example.com", Via: "email", Status: "pending", CreatedAt: at, UpdatedAt: at}
	verified := pending
	verified.Verified, verified.Status, verified.VerifiedAt = true, "completed", &at
	with := func(a patchAddress, f func(*patchAddress)) patchAddress { f(&a); return a }
	tests := []struct {
		name          string
		before, after patchAddress
		want          string // "verified status verifiedAt", "" for no change, or the error path
	}{
		{"nothing", pending, pending, ""},
		{"verify", pending, with(pending, func(a *patchAddress) { a.Verified = true }), "true completed 2026-01-02T03:04:05Z"},
		{"verify at", pending, with(pending, func(a *patchAddress) { a.Verified, a.VerifiedAt = true, &other }), "true completed 2024-01-01T01:00:00Z"},
		{"move verified_at", verified, with(verified, func(a *patchAddress) { a.VerifiedAt = &other }), "true completed 2024-01-01T01:00:00Z"},
		{"unverify", verified, with(verified, func(a *patchAddress) { a.Verified = false }), "false pending -"},
		{"unverify, sent", verified, with(verified, func(a *patchAddress) { a.Verified, a.Status = false, "sent" }), "false sent -"},
		{"sent", pending, with(pending, func(a *patchAddress) { a.Status = "sent" }), "false sent -"},
		{"completed, unverified", pending, with(pending, func(a *patchAddress) { a.Status = "completed" }), "/verifiable_addresses/0/status"},
		{"verified, sent", pending, with(pending, func(a *patchAddress) { a.Verified, a.Status = true, "sent" }), "/verifiable_addresses/0/status"},
		{"unknown status", pending, with(pending, func(a *patchAddress) { a.Status = "" }), "/verifiable_addresses/0/status"},
		{"verified_at, unverified", pending, with(pending, func(a *patchAddress) { a.VerifiedAt = &at }), "/verifiable_addresses/0/verified_at"},
		{"value", pending, with(pending, func(a *patchAddress) { a.Value = "b@example.com" }), "/verifiable_addresses/0/value"},
		{"via", pending, with(pending, func(a *patchAddress) { a.Via = "sms" }), "/verifiable_addresses/0/via"},
		{"id", pending, with(pending, func(a *patchAddress) { a.ID = uuid.New() }), "/verifiable_addresses/0/id"},
		{"created_at", pending, with(pending, func(a *patchAddress) { a.CreatedAt = other }), "/verifiable_addresses/0/created_at"},
		{"updated_at", pending, with(pending, func(a *patchAddress) { a.UpdatedAt = other }), "/verifiable_addresses/0/updated_at"},
	}
	for _, tc := range tests {
		states, err := patchedStates([]patchAddress{tc.before}, []patchAddress{tc.after}, now)
		var got string
		switch {
		case err != nil:
			es := model.UserErrors(err)
			if len(es) != 1 || es[0].Code != model.CodeInvalidPatch || es[0].Message == "" {
				t.Errorf("%s: error %v", tc.name, err)
				continue
			}
			got = es[0].Path
		case len(states) == 1:
			st := states[0].state
			vat := "-"
			if st.VerifiedAt != nil {
				vat = st.VerifiedAt.Format(time.RFC3339Nano)
			}
			got = fmt.Sprintf("%v %s %s", st.Verified, st.Status, vat)
			if states[0].via != tc.before.Via || states[0].value != tc.before.Value {
				t.Errorf("%s: state for %s:%s", tc.name, states[0].via, states[0].value)
			}
		}
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := patchedStates([]patchAddress{pending}, nil, now); model.ErrorCodeOf(err) != model.CodeInvalidPatch {
		t.Errorf("an address removed: %v", err)
	}
}

func TestMergeProviders(t *testing.T) {
	org1, org2 := uuid.NewString(), uuid.NewString()
	p := func(provider, subject, org string) db.OIDCProvider {
		return db.OIDCProvider{Provider: provider, Subject: subject, Organization: org}
	}
	tests := []struct {
		name       string
		cur, given []db.OIDCProvider
		want       []db.OIDCProvider
	}{
		{"into none", nil, []db.OIDCProvider{p("google", "1", org1)}, []db.OIDCProvider{p("google", "1", org1)}},
		{"nothing given", []db.OIDCProvider{p("google", "1", "")}, []db.OIDCProvider{}, []db.OIDCProvider{p("google", "1", "")}},
		{"none at all", nil, []db.OIDCProvider{}, []db.OIDCProvider{}},
		{"appended", []db.OIDCProvider{p("google", "1", "")}, []db.OIDCProvider{p("github", "2", "")},
			[]db.OIDCProvider{p("google", "1", ""), p("github", "2", "")}},
		{"same account keeps its place", []db.OIDCProvider{p("google", "1", org1), p("github", "2", "")},
			[]db.OIDCProvider{p("github", "2", org2), p("google", "1", "")},
			[]db.OIDCProvider{p("google", "1", org1), p("github", "2", org2)}},
		{"another subject at the same provider", []db.OIDCProvider{p("google", "1", "")}, []db.OIDCProvider{p("google", "2", "")},
			[]db.OIDCProvider{p("google", "1", ""), p("google", "2", "")}},
		{"subjects are case-sensitive", []db.OIDCProvider{p("google", "a", "")}, []db.OIDCProvider{p("google", "A", "")},
			[]db.OIDCProvider{p("google", "a", ""), p("google", "A", "")}},
	}
	for _, tc := range tests {
		cur := slices.Clone(tc.cur)
		if got := mergeProviders(tc.cur, tc.given); !slices.Equal(got, tc.want) || got == nil {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
		if !slices.Equal(cur, tc.cur) {
			t.Errorf("%s: the current list was changed", tc.name)
		}
	}
}

func TestExternalIDRules(t *testing.T) {
	tests := []struct {
		in   *string
		want string // the value kept, "<nil>", or "error"
	}{
		{nil, "<nil>"},
		{ptr(""), "<nil>"},
		{ptr("auth0|5f7c8ec7c33c6c004bbafe82"), "auth0|5f7c8ec7c33c6c004bbafe82"},
		{ptr(" spaced "), " spaced "},
		{ptr("Ünïcödé"), "Ünïcödé"},
		{ptr(strings.Repeat("x", MaxExternalIDBytes)), strings.Repeat("x", MaxExternalIDBytes)},
		{ptr(strings.Repeat("x", MaxExternalIDBytes+1)), "error"},
		{ptr("a\x00b"), "error"},
		{ptr("a\u0085b"), "error"},
		{ptr("\xff"), "error"},
	}
	for _, tc := range tests {
		got, err := externalID(tc.in, "/externalId")
		s := "<nil>"
		switch {
		case err != nil:
			s = "error"
			if es := model.UserErrors(err); len(es) != 1 || es[0].Path != "/externalId" || es[0].Code != model.CodeValidationFailed {
				t.Errorf("%q: error %v", *tc.in, err)
			}
		case got != nil:
			s = *got
		}
		if s != tc.want {
			t.Errorf("%v: %q, want %q", tc.in, s, tc.want)
		}
	}
}

func TestSameJSON(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, true},
		{`{"a":1}`, `{ "a" : 1 }`, true},
		{`{"a":1}`, `{"a":1.0}`, false},
		{`{"email":"A@example.com"}`, `{"email":"a@example.com"}`, false},
		{`{"n":9007199254740993}`, `{"n":9007199254740992}`, false},
		{`{}`, `not json`, false},
	} {
		if got := sameJSON(model.JSON(tc.a), model.JSON(tc.b)); got != tc.want {
			t.Errorf("sameJSON(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
