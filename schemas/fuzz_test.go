package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/identityd/identityd/model"
)

// Seeds shared by the fuzz targets: the cases that were found by hand.
var identifierSeeds = []string{
	"alice", " Alice ", "\uff41lice", "alice\u200b", "al\u200dice", "\u2060alice", "\ufeffalice", "\u202ealice",
	"ren\u00e9", "rene\u0301", "Stra\u00dfe", "\u0130stanbul", "\u039f\u0394\u039f\u03a3", "\ufb01sh", "x\u00b2",
	"p\u0430ypal", "\u03b1lpha", "\u65e5\u672c\u8a9eabc", "\ud55c\uad6d\uc5b4\u6f22\u5b57",
	"+1 415 555 2671", "+14155552671", "+1 (415) 555-2671", "+14155552671 x5", "0123",
	"Foo@Bar.COM", "\"p\u0430ypal\"@example.com", "ivan@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
	"alice\x00", "a\tb", "a\xffb", "Ada  Lovelace", "l\u00b7l", "a\u00b7b", "abc\u05e9\u05dc\u05d5\u05dd",
	"O\u2019Brien", "john\U0001f389", "\u3164", "\ufdfa", "",
}

var fuzzFormats = []string{"", "email", "tel", "uri"}

// FuzzNormalizeIdentifier: the stored form is a fixed point, holds nothing
// invisible, and login finds it when typed as stored or as first typed.
func FuzzNormalizeIdentifier(f *testing.F) {
	for i, s := range identifierSeeds {
		f.Add(s, uint8(i))
	}
	f.Fuzz(func(t *testing.T, value string, which uint8) {
		format := fuzzFormats[int(which)%len(fuzzFormats)]
		out, err := CanonicalIdentifier(value, format)
		if err != nil {
			if out != "" {
				t.Fatalf("refused %q with %v yet returned %q", value, err, out)
			}
			return
		}
		if out == "" {
			if strings.TrimSpace(value) != "" {
				t.Fatalf("CanonicalIdentifier(%q, %q) is empty", value, format)
			}
			return
		}
		checkStoredForm(t, out)
		again, err := CanonicalIdentifier(out, format)
		if err != nil || again != out {
			t.Fatalf("not idempotent for %q: %q -> %q, %v", format, out, again, err)
		}
		if format == "email" && !strings.Contains(out, "@") {
			return // the email format refuses it: never stored, never looked up
		}
		if cands := LoginCandidates(out); !slices.Contains(cands, out) {
			t.Fatalf("LoginCandidates(%q) = %q: the stored form is not looked up", out, cands)
		}
		if cands := LoginCandidates(value); !slices.Contains(cands, out) {
			t.Fatalf("LoginCandidates(%q) = %q: login typed as at registration does not find %q (%q)", value, cands, out, format)
		}
	})
}

// checkStoredForm fails when s could not be stored or could hide.
func checkStoredForm(t *testing.T, s string) {
	t.Helper()
	switch {
	case !utf8.ValidString(s):
		t.Fatalf("stored form %q is not UTF-8", s)
	case len(s) > MaxIdentifierBytes:
		t.Fatalf("stored form of %d bytes", len(s))
	case !norm.NFC.IsNormalString(s):
		t.Fatalf("stored form %q is not NFC", s)
	case s != strings.TrimSpace(s):
		t.Fatalf("stored form %q is not trimmed", s)
	}
	for _, r := range s {
		if isInvisible(r) || r < 0x20 || (0x7f <= r && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			t.Fatalf("stored form %q holds U+%04X", s, r)
		}
	}
}

// fuzzSchemas are what FuzzValidateFacts validates against: the presets and
// richer test schemas (nesting, arrays, anyOf/oneOf, $ref, names).
var fuzzSchemas = []string{
	"preset://email", "preset://username", "preset://sms", "preset://basic", "preset://blank",
	identifiersSchema, "file://testdata/nested.schema.json", "file://testdata/customer.schema.json",
}

// FuzzValidateFacts: arbitrary traits never panic; Validate and Facts
// agree; every path is a JSON pointer into the input; every stored value is
// a canonical identifier.
func FuzzValidateFacts(f *testing.F) {
	loaded := make([]*Schema, len(fuzzSchemas))
	for i, url := range fuzzSchemas {
		loaded[i] = schemaAt(f, url)
	}
	seeds := []string{
		`{"email":"Foo@Bar.COM"}`, `{"username":"alice"}`, `{"phone_number":"+1 415 555 2671"}`,
		`{"email":"foo@bar.com","name":{"first":"Foo"},"newsletter":true}`, `{}`, `[]`, `null`, `"x"`, `{"a":`,
		`{"username":"ada","email":"\"a\u200b\"@example.com","phone":"+14155552671","display_name":"Zo\u00eb","aliases":["b","B","\uff42"],"contact":"+1 415 555 2671","profile":{"bio":"a\u0000"}}`,
		`{"emails":["A@example.com","a@EXAMPLE.com"],"login":"Ada","contact":"ada@example.com","name":{"first":"Ada"},"a/b":1,"c~d":2}`,
		`{"a\u0000":{"b~/":["\u0000"]}}`, `{"username":"p\u0430ypal","x":[1,{"y":null}]}`,
	}
	for _, id := range identifierSeeds {
		if b, err := json.Marshal(map[string]any{"username": id, "email": id, "phone_number": id, "phone": id, "login": id}); err == nil {
			seeds = append(seeds, string(b))
		}
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i))
	}
	f.Fuzz(func(t *testing.T, traits []byte, which uint8) {
		s := loaded[int(which)%len(loaded)]
		verr := s.Validate(traits)
		facts, ferr := s.Facts(traits)

		doc, derr := decodeDocument(traits)
		if derr != nil {
			if !reflect.DeepEqual(verr, derr) || !reflect.DeepEqual(ferr, derr) {
				t.Fatalf("undecodable traits (%v): Validate %v, Facts %v", derr, verr, ferr)
			}
			return
		}
		var verrs model.Errors
		if verr != nil && !errors.As(verr, &verrs) {
			t.Fatalf("Validate gave %T %v, want model.Errors", verr, verr)
		}
		for _, e := range verrs {
			if e.Code != model.CodeValidationFailed {
				t.Fatalf("Validate gave code %s", e.Code)
			}
			checkPointer(t, doc, e.Path, strings.Contains(e.Message, "is missing"))
		}
		if ferr != nil {
			var ferrs model.Errors
			if !errors.As(ferr, &ferrs) {
				t.Fatalf("Facts gave %T %v, want model.Errors", ferr, ferr)
			}
			for _, e := range ferrs {
				if !slices.ContainsFunc(verrs, func(v *model.Error) bool { return *v == *e }) {
					t.Fatalf("Facts refused %+v, which Validate did not report (%v)", e, verrs)
				}
			}
			return
		}
		if verr != nil {
			return // Facts assumes valid traits: nothing more to agree on
		}
		for _, id := range facts.Identifiers {
			checkPointer(t, doc, id.Path, false)
			checkStoredForm(t, id.Value)
			if id.CredentialType == credentialPassword && !slices.Contains(LoginCandidates(id.Value), id.Value) {
				t.Fatalf("password identifier %q is not among its own login candidates", id.Value)
			}
		}
		for _, a := range slices.Concat(facts.VerifiableAddresses, facts.RecoveryAddresses) {
			checkPointer(t, doc, a.Path, false)
			checkStoredForm(t, a.Value)
		}
	})
}

// checkPointer fails unless p is an RFC 6901 pointer into doc; when missing,
// only its parent must exist (a required property that is not there).
func checkPointer(t *testing.T, doc any, p string, missing bool) {
	t.Helper()
	if !strings.HasPrefix(p, "/traits") {
		t.Fatalf("path %q is not under /traits", p)
	}
	tokens := strings.Split(p, "/")[1:]
	cur := doc
	for i, tok := range tokens {
		if strings.Contains(strings.NewReplacer("~0", "", "~1", "").Replace(tok), "~") {
			t.Fatalf("path %q: token %q is not escaped", p, tok)
		}
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		last := i == len(tokens)-1
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				if last && missing {
					return
				}
				t.Fatalf("path %q: no property %q", p, tok)
			}
			cur = next
		case []any:
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(v) || strconv.Itoa(n) != tok {
				t.Fatalf("path %q: no item %q", p, tok)
			}
			cur = v[n]
		default:
			t.Fatalf("path %q: %q goes into a scalar", p, tok)
		}
	}
}
