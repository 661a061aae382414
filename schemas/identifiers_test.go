package schemas

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

const identifiersSchema = "file://testdata/identifiers.schema.json"

// Validate refuses, at the trait's pointer, every marked value that cannot
// be an identifier, and U+0000 anywhere: every write path validates, so none
// can store a look-alike or a value the database refuses.
func TestValidateRefusesIdentifiers(t *testing.T) {
	const mixed = `mixes letters from different scripts (Latin, Cyrillic): letters that look alike across scripts could pass for another identifier`
	tests := []struct {
		name   string
		schema string
		traits string
		want   []string // "path: message"; none means valid
	}{
		{"fullwidth", "preset://username", `{"username":"\uff41lice"}`, nil},
		{"decomposed", "preset://username", `{"username":"rene\u0301"}`, nil},
		{"inner spaces", "preset://username", `{"username":"+1 415 555 2671"}`, nil},
		{"zero-width space", "preset://username", `{"username":"alice\u200b"}`, []string{
			`/traits/username: must not contain invisible characters (U+200B at character 6)`}},
		{"joiner", "preset://username", `{"username":"al\u200dice"}`, []string{
			`/traits/username: must not contain invisible characters (U+200D at character 3)`}},
		{"bidi control", "preset://username", `{"username":"\u202ealice"}`, []string{
			`/traits/username: must not contain invisible characters (U+202E at character 1)`}},
		{"NUL", "preset://username", `{"username":"alice\u0000"}`, []string{
			`/traits/username: must not contain control characters (U+0000 at character 6)`}},
		{"mixed scripts", "preset://username", `{"username":"p\u0430ypal"}`, []string{`/traits/username: ` + mixed}},
		{"schema and identifier", "preset://username", `{"username":"p\u0430","x":1}`, []string{
			`/traits/username: ` + mixed,
			`/traits/username: must be at least 3 characters long (got 2)`,
			`/traits/x: property "x" is not allowed`,
		}},
		{"email quoted local part", "preset://email", `{"email":"\"p\u0430ypal\"@example.com"}`, []string{`/traits/email: the local part ` + mixed}},
		{"phone", "preset://sms", `{"phone_number":"+1 415 555 2671\u2060"}`, []string{
			`/traits/phone_number: must not contain invisible characters (U+2060 at character 16)`}},
		{"array item", identifiersSchema, `{"username":"ada","aliases":["bob","b\u043eb"]}`, []string{`/traits/aliases/1: ` + mixed}},
		{"names may mix scripts", identifiersSchema, `{"username":"ada","display_name":"Zo\u00eb \u041f\u0435\u0442\u0440\u043e\u0432\u0430 \ud83c\udf89"}`, nil},
		{"names may not hide", identifiersSchema, `{"username":"ada","display_name":"Zo\u00eb\u200b"}`, []string{
			`/traits/display_name: must not contain invisible characters (U+200B at character 4)`}},
		{"anyOf branch", identifiersSchema, `{"username":"ada","contact":"\"a\u00adb\"@example.com"}`, []string{
			`/traits/contact: must not contain invisible characters (U+00AD at character 3)`}},

		// U+0000 anywhere, not only in identifiers
		{"NUL in a plain trait", identifiersSchema, `{"username":"ada","profile":{"bio":"a\u0000b"}}`, []string{
			`/traits/profile/bio: must not contain the character U+0000`}},
		{"NUL deep", "preset://blank", `{"a":{"b":[1,{"c~/":"\u0000"}]}}`, []string{
			`/traits/a/b/1/c~0~1: must not contain the character U+0000`}},
		{"NUL in a name", "preset://blank", `{"a":{"b\u0000":true}}`, []string{
			"/traits/a/b\x00: a property name must not contain the character U+0000"}},
		{"other controls in a plain trait", identifiersSchema, `{"username":"ada","profile":{"bio":"line\nline\u0001"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := schemaAt(t, tt.schema)
			var got []string
			for _, v := range violationsIn(t, s.Validate(json.RawMessage(tt.traits))) {
				got = append(got, v.Path+": "+v.Message)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate(%s)\ngot:  %q\nwant: %q", tt.traits, got, tt.want)
			}
		})
	}
}

// Facts refuses what Validate refuses about identifiers, with the same
// errors, so a caller that skipped Validate still cannot store one.
func TestFactsRefusesWhatValidateRefuses(t *testing.T) {
	s := schemaAt(t, identifiersSchema)
	traits := json.RawMessage(`{"username":"p\u0430ypal","email":"\"a\u200b\"@example.com","aliases":["ok"]}`)
	_, err := s.Facts(traits)
	got := violationsIn(t, err)
	want := violationsIn(t, s.Validate(traits))
	if len(got) != 2 || !reflect.DeepEqual(got, want) {
		t.Errorf("Facts errors\n%v\nwant Validate's\n%v", got, want)
	}
}

// Values that look the same are stored the same, so the second is taken.
func TestFactsOneFormPerLook(t *testing.T) {
	s := schemaAt(t, "preset://username")
	var values []string
	for _, typed := range []string{"alice", "ALICE", "\uff41lice", " Alice ", "ren\u00e9", "Rene\u0301", "\uff32\uff25\uff2e\uff25\u0301"} {
		traits, _ := json.Marshal(map[string]string{"username": typed})
		if err := s.Validate(traits); err != nil {
			t.Fatalf("Validate(%s): %v", traits, err)
		}
		f, err := s.Facts(traits)
		if err != nil || len(f.Identifiers) != 1 {
			t.Fatalf("Facts(%s) = %+v, %v", traits, f, err)
		}
		values = append(values, f.Identifiers[0].Value)
	}
	want := []string{"alice", "alice", "alice", "alice", "ren\u00e9", "ren\u00e9", "ren\u00e9"}
	if !slices.Equal(values, want) {
		t.Errorf("stored %q, want %q", values, want)
	}
}
