package schemas

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/identityd/identityd/model"
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

		// One look, one form: width, compatibility characters, composition
		// and spaces map to a single stored form.
		{"\uff41lice", "", "alice"}, // fullwidth a
		{"\uff21\uff2c\uff29\uff23\uff25", "", "alice"},
		{"ren\u00e9", "", "ren\u00e9"},  // NFC
		{"rene\u0301", "", "ren\u00e9"}, // NFD
		{"\ufb01sh", "", "fish"},        // ligature
		{"x\u00b2", "", "x2"},
		{"\u210cello", "", "hello"},
		{"Ada  Lovelace", "", "ada lovelace"}, // inner spaces kept, runs made one
		{"Ada\u00a0\u3000Lovelace", "", "ada lovelace"},
		{"+1\u00a0415 555 2671", "", "+1 415 555 2671"},
		{"ΟΔΟΣ", "", "οδοσ"},
		{"日本語abc", "", "日本語abc"}, // Han with Latin: a UTS #39 combination
		{"ひらがなカタカナ漢字", "", "ひらがなカタカナ漢字"},
		{"한국어漢字", "", "한국어漢字"},
		{"l·l", "", "l·l"}, // a middle dot between two l's, as Catalan writes it
		{"\uff26oo@Bar.COM", "email", "foo@bar.com"},
		{"rene\u0301@example.com", "email", "ren\u00e9@example.com"},
		{"ivan@пример.рф", "email", "ivan@пример.рф"}, // scripts count per part of an address
		{"\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11", "tel", "+14155552671"},
	}
	for _, tt := range tests {
		if got := NormalizeIdentifier(tt.value, tt.format); got != tt.want {
			t.Errorf("NormalizeIdentifier(%q, %q) = %q, want %q", tt.value, tt.format, got, tt.want)
		}
	}
}

// Refused identifiers: what cannot be stored, cannot be seen, or passes for
// another identifier. The message follows the trait's name in a form.
func TestCanonicalIdentifierRefuses(t *testing.T) {
	tests := []struct{ value, format, want string }{
		{"alice\u200b", "", "must not contain invisible characters (U+200B at character 6)"},
		{"al\u200dice", "", "must not contain invisible characters (U+200D at character 3)"},
		{"al\u2060ice", "", "must not contain invisible characters (U+2060 at character 3)"},
		{"\ufeffalice", "", "must not contain invisible characters (U+FEFF at character 1)"},
		{"alice\u202e", "", "must not contain invisible characters (U+202E at character 6)"}, // bidi override
		{"al\u00adice", "", "must not contain invisible characters (U+00AD at character 3)"}, // soft hyphen
		{"alice\ufe0f", "", "must not contain invisible characters (U+FE0F at character 6)"}, // variation selector
		{"\u3164", "", "must not contain invisible characters (U+3164 at character 1)"},      // Hangul filler
		{"alice\x00", "", "must not contain control characters (U+0000 at character 6)"},
		{"ali\tce", "", "must not contain control characters (U+0009 at character 4)"},
		{"a\x7fb", "", "must not contain control characters (U+007F at character 2)"},
		{"a\u2028b", "", "must not contain line breaks (U+2028 at character 2)"},
		{"a\ue000", "", "must not contain unassigned, private-use or replacement characters (U+E000 at character 2)"},
		{"a\ufffd", "", "must not contain unassigned, private-use or replacement characters (U+FFFD '\ufffd' at character 2)"},
		{"a\U000e0fff", "", "must not contain invisible characters (U+E0FFF at character 2)"},
		{"a\xffb", "", "must be valid UTF-8"},
		{strings.Repeat("a", 513), "", "must be at most 512 bytes long (got 513)"},
		{strings.Repeat("\ufdfa", 100), "", "must be at most 512 bytes long once normalised (got 3300)"},
		{"p\u0430ypal", "", "mixes letters from different scripts (Latin, Cyrillic): letters that look alike across scripts could pass for another identifier"},
		{"\u03b1lpha", "", "mixes letters from different scripts (Greek, Latin): letters that look alike across scripts could pass for another identifier"},
		{"ひらがな한국어", "", "mixes letters from different scripts (Hiragana, Hangul): letters that look alike across scripts could pass for another identifier"},
		{"O\u2019Brien", "", "must not contain U+2019 '\u2019': only letters, digits, ASCII punctuation and symbols, and spaces between words are allowed"},
		{"a\u2215b", "", "must not contain U+2215 '\u2215': only letters, digits, ASCII punctuation and symbols, and spaces between words are allowed"},
		{"abc\u05e9\u05dc\u05d5\u05dd", "", "mixes right-to-left and left-to-right text in a way that can display misleadingly"},
		{"p\u0430ypal@example.com", "email", "the local part mixes letters from different scripts (Latin, Cyrillic): letters that look alike across scripts could pass for another identifier"},
		{"paypal@ex\u0430mple.com", "email", "a domain label mixes letters from different scripts (Latin, Cyrillic): letters that look alike across scripts could pass for another identifier"},
		{"foo\u200b@bar.com", "email", "must not contain invisible characters (U+200B at character 4)"},
		{"+1 415 555 2671\u200b", "tel", "must not contain invisible characters (U+200B at character 16)"},
		{"+1 415 555 2671\x00", "tel", "must not contain control characters (U+0000 at character 16)"},
	}
	for _, tt := range tests {
		got, err := CanonicalIdentifier(tt.value, tt.format)
		if err == nil || err.Error() != tt.want {
			t.Errorf("CanonicalIdentifier(%q, %q) = %q, %v; want error %q", tt.value, tt.format, got, err, tt.want)
		}
		if n := NormalizeIdentifier(tt.value, tt.format); n != "" {
			t.Errorf("NormalizeIdentifier(%q, %q) = %q, want \"\" for a refused value", tt.value, tt.format, n)
		}
	}
}

// Names (a passkey's display name) keep any letters and symbols.
func TestCanonicalName(t *testing.T) {
	tests := []struct{ value, want, err string }{
		{"Zo\u00eb  O\u2019Brien \U0001f389", "zo\u00eb o\u2019brien \U0001f389", ""},
		{"Ivan Петров", "ivan петров", ""},
		{"Ada\u200b", "", "must not contain invisible characters (U+200B at character 4)"},
		{"Ada\x00", "", "must not contain control characters (U+0000 at character 4)"},
	}
	for _, tt := range tests {
		got, err := canonicalName(tt.value, "")
		if got != tt.want || fmt.Sprint(err) != cmp.Or(tt.err, "<nil>") {
			t.Errorf("canonicalName(%q) = %q, %v; want %q, %q", tt.value, got, err, tt.want, tt.err)
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
		{"\uff41lice", []string{"alice"}},
		{"Rene\u0301", []string{"ren\u00e9"}},
		{"+1\u00a0415  555 2671", []string{"+1 415 555 2671", "+14155552671"}},
		{"ivan@пример.рф", []string{"ivan@пример.рф"}}, // an address, though no username
		{"\u0130stanbul@example.com", []string{"i\u0307stanbul@example.com", "istanbul@example.com"}}, // PRECIS lower-cases fully, emails as before
		// Nothing that cannot be stored is looked up.
		{"alice\x00", nil},
		{"alice\u200b", nil},
		{"p\u0430ypal", nil},
		{strings.Repeat("a", 513), nil},
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

// A huge login identifier is refused before any work is done on it.
func TestLoginCandidatesCapsFirst(t *testing.T) {
	huge := strings.Repeat("\uff21", 1<<20)
	if allocs := testing.AllocsPerRun(10, func() { _ = LoginCandidates(huge) }); allocs != 0 {
		t.Errorf("LoginCandidates of 3 MiB allocates %v times, want 0", allocs)
	}
	if got := LegacyIdentifier(huge); got != "" {
		t.Errorf("LegacyIdentifier of 3 MiB = %.20q…, want \"\"", got)
	}
}

func TestLegacyIdentifier(t *testing.T) {
	tests := []struct{ identifier, want string }{
		{" Alice ", "alice"},
		{"\uff41lice", "\uff41lice"},
		{"Rene\u0301", "rene\u0301"},
		{"p\u0430ypal", "p\u0430ypal"},
		{"alice\u200b", "alice\u200b"},
		{"alice\x00", ""},
		{"a\tb", ""},
		{strings.Repeat("a", 513), ""},
	}
	for _, tt := range tests {
		if got := LegacyIdentifier(tt.identifier); got != tt.want {
			t.Errorf("LegacyIdentifier(%q) = %q, want %q", tt.identifier, got, tt.want)
		}
	}
}

// TestNoValidate: a trait whose format is "no-validate" (or Kratos's
// "noformat") takes any value that can be stored and seen as its address,
// normalised for its channel all the same; a trait without stays checked.
func TestNoValidate(t *testing.T) {
	s := schemaAt(t, "file://testdata/novalidate.schema.json")
	tests := []struct {
		traits string
		want   []string // violations as "path: message", or nil
	}{
		{`{"email":"Legacy User","phone":"ext. 12"}`, nil},
		{`{"email":"Foo@Bar.COM","phone":"+1 415 555 2671"}`, nil},
		{`{"email":"a\u200bb"}`, []string{"/traits/email: must not contain invisible characters (U+200B at character 2)"}},
		{`{"phone":"tab\there"}`, []string{"/traits/phone: must not contain control characters (U+0009 at character 4)"}},
		{`{"checked":"ext. 12"}`, []string{"/traits/checked: 'ext. 12' is not valid tel: a phone number must start with + and the country code"}},
	}
	for _, tc := range tests {
		err := s.Validate(json.RawMessage(tc.traits))
		var got []string
		for _, e := range model.UserErrors(err) {
			got = append(got, e.Path+": "+e.Message)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.traits, got, tc.want)
		}
	}
	facts, err := s.Facts(json.RawMessage(`{"email":"Legacy User","phone":"+1 415 555 2671"}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range facts.VerifiableAddresses {
		got = append(got, "verifiable "+a.Via+":"+a.Value)
	}
	for _, a := range facts.RecoveryAddresses {
		got = append(got, "recovery "+a.Via+":"+a.Value)
	}
	for _, id := range facts.Identifiers {
		got = append(got, id.CredentialType+" "+id.Value)
	}
	want := []string{"verifiable email:legacy user", "verifiable sms:+14155552671", "recovery email:legacy user", "password legacy user", "code +14155552671"}
	if !slices.Equal(got, want) {
		t.Errorf("facts %q, want %q", got, want)
	}
}

func TestNormalizeAddress(t *testing.T) {
	tests := []struct {
		value, via string
		want       string // "value valid", or "error: message"
	}{
		{" Ada@Example.COM ", "email", "ada@example.com true"},
		{"+1 (415) 555-2671", "sms", "+14155552671 true"},
		{"Legacy User", "email", "legacy user false"},
		{"ext. 12", "sms", "ext. 12 false"},
		{"ada@example.com", "sms", "ada@example.com false"},
		{"+14155552671", "email", "+14155552671 false"},
		{"a@b@c", "email", "a@b@c false"},
		{"  ", "email", "error: must not be empty"},
		{"a\x00b@example.com", "email", "error: must not contain control characters (U+0000 at character 2)"},
		{"ada@example.com", "fax", `error: must be "email" or "sms" (got "fax")`},
	}
	for _, tc := range tests {
		out, valid, err := NormalizeAddress(tc.value, tc.via)
		got := fmt.Sprintf("%s %v", out, valid)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("NormalizeAddress(%q, %q) = %s, want %s", tc.value, tc.via, got, tc.want)
		}
	}
}
