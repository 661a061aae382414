package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestValidate(t *testing.T) {
	const (
		email    = "preset://email"
		username = "preset://username"
		sms      = "preset://sms"
		basic    = "preset://basic"
		blank    = "preset://blank"
		customer = "file://testdata/customer.schema.json"
		kratos   = "file://testdata/kratos-full.schema.json"
		nested   = "file://testdata/nested.schema.json"
		formats  = "file://testdata/formats.schema.json"
		numbers  = "file://testdata/numbers.schema.json"
		channels = "file://testdata/channels.schema.json"
	)
	tests := []struct {
		name   string
		schema string
		traits string
		want   []string // "path: message"; none means valid
	}{
		// presets
		{"email valid", email, `{"email":"foo@bar.com"}`, nil},
		{"email missing", email, `{}`, []string{`/traits/email: property "email" is missing`}},
		{"email malformed", email, `{"email":"foo"}`, []string{`/traits/email: 'foo' is not valid email: missing @`}},
		{"email wrong type", email, `{"email":["foo@bar.com"]}`, []string{`/traits/email: got array, want string`}},
		{"email extra trait", email, `{"email":"foo@bar.com","name":"Foo"}`, []string{`/traits/name: property "name" is not allowed`}},
		{"username valid", username, `{"username":"some-username"}`, nil},
		{"username too short", username, `{"username":"ab"}`, []string{`/traits/username: must be at least 3 characters long (got 2)`}},
		{"username missing", username, `{"email":"foo@bar.com"}`, []string{`/traits/email: property "email" is not allowed`, `/traits/username: property "username" is missing`}},
		{"sms valid", sms, `{"phone_number":"+1 415 555 2671"}`, nil},
		{"sms local number", sms, `{"phone_number":"0123"}`, []string{`/traits/phone_number: '0123' is not valid tel: a phone number must start with + and the country code`}},
		{"sms missing", sms, `{}`, []string{`/traits/phone_number: property "phone_number" is missing`}},
		{"basic valid", basic, `{"email":"foo@bar.com","name":{"first":"Foo","last":"Bar"},"newsletter":true}`, nil},
		{"basic email only", basic, `{"email":"foo@bar.com"}`, nil},
		{"basic invalid", basic, `{"email":"foo@bar.com","name":{"first":1,"middle":"X"},"newsletter":"yes"}`, []string{
			`/traits/name/first: got number, want string`,
			`/traits/name/middle: property "middle" is not allowed`,
			`/traits/newsletter: got string, want boolean`,
		}},
		{"blank empty", blank, `{}`, nil},
		{"blank anything", blank, `{"anything":{"goes":[1,2]}}`, nil},

		// traits that are no JSON object
		{"array traits", email, `[]`, []string{`/traits: traits must be a JSON object, not an array`}},
		{"string traits", blank, `"x"`, []string{`/traits: traits must be a JSON object, not a string`}},
		{"null traits", blank, `null`, []string{`/traits: traits must be a JSON object, not null`}},
		{"number traits", blank, `1`, []string{`/traits: traits must be a JSON object, not a number`}},
		{"no traits", blank, ``, []string{`/traits: traits are not valid JSON`}},
		{"not JSON", blank, `{"a":`, []string{`/traits: traits are not valid JSON`}},
		{"trailing data", blank, `{} {}`, []string{`/traits: traits are not valid JSON`}},

		// the seed's customer: email and phone both identify
		{"customer email and phone", customer, `{"email":"foo@bar.com","phone":"+14155552671","name":{"first":"Aeneas","last":"Rekkas"},"favorite_animal":"Dog","accepted_tos":"yes"}`, nil},
		{"customer bad phone", customer, `{"email":"foo@bar.com","phone":"4155552671"}`, []string{`/traits/phone: '4155552671' is not valid tel: a phone number must start with + and the country code`}},
		{"kratos file", kratos, `{"email":"foo@bar.com","phone":"+14155552671","name":{"first":"A"}}`, nil},
		{"kratos file definitions ref", kratos, `{"email":"foo@bar.com","name":{"first":""}}`, []string{`/traits/name/first: must be at least 1 character long (got 0)`}},

		// nesting, arrays and pointer escaping
		{"nested valid", nested, `{"emails":["a@example.com","b@example.com"],"name":{"first":"A"},"login":"bob","contact":"a@example.com","a/b":1,"c~d":2}`, nil},
		{"nested required", nested, `{"name":{}}`, []string{`/traits/name/first: property "first" is missing`}},
		{"array item", nested, `{"emails":["a@example.com","nope"]}`, []string{`/traits/emails/1: 'nope' is not valid email: missing @`}},
		{"pointer escaping", nested, `{"a/b":"x","c~d":1.5,"e/f~g":true}`, []string{
			`/traits/a~1b: got string, want integer`,
			`/traits/c~0d: got number, want integer`,
			`/traits/e~1f~0g: property "e/f~g" is not allowed`,
		}},
		{"oneOf none", nested, `{"contact":"nope"}`, []string{
			`/traits/contact: 'nope' is not valid email: missing @`,
			`/traits/contact: 'nope' is not valid tel: a phone number must start with + and the country code`,
		}},

		// formats
		{"formats valid", formats, `{"email":"a.b+c@example.co.uk","tel":"+14155552671","date":"2024-02-29","date_time":"2024-01-02T03:04:05Z","uri":"https://example.com/x?y=1","ipv4":"192.168.0.1","uuid":"6e9d3d30-f93e-4630-901f-c2096953723d"}`, nil},
		{"email format", formats, `{"email":"a@b@c"}`, []string{`/traits/email: 'a@b@c' is not valid email: invalid character '@'`}},
		{"tel with spaces", formats, `{"tel":"+1 415 555 2671"}`, nil},
		{"tel local", formats, `{"tel":"0123"}`, []string{`/traits/tel: '0123' is not valid tel: a phone number must start with + and the country code`}},
		{"tel no country", formats, `{"tel":"+999"}`, []string{`/traits/tel: '+999' is not valid tel: not a phone number`}},
		{"tel too short", formats, `{"tel":"+1 555"}`, []string{`/traits/tel: '+1 555' is not valid tel: not a valid phone number`}},
		{"tel letters", formats, `{"tel":"call me"}`, []string{`/traits/tel: 'call me' is not valid tel: a phone number must start with + and the country code`}},
		{"date", formats, `{"date":"2023-02-29"}`, []string{`/traits/date: '2023-02-29' is not valid date: parsing time "2023-02-29": day out of range`}},
		{"date-time", formats, `{"date_time":"2024-01-02 03:04"}`, []string{`/traits/date_time: '2024-01-02 03:04' is not valid date-time: less than 20 characters long`}},
		{"uri", formats, `{"uri":"example.com"}`, []string{`/traits/uri: 'example.com' is not valid uri: relative url`}},
		{"ipv4", formats, `{"ipv4":"256.1.1.1"}`, []string{`/traits/ipv4: '256.1.1.1' is not valid ipv4: decimal must be between 0 and 255`}},
		{"uuid", formats, `{"uuid":"6e9d3d30"}`, []string{`/traits/uuid: '6e9d3d30' is not valid uuid: must have 5 elements`}},

		// exact numbers
		{"integer", numbers, `{"count":1}`, nil},
		{"integer written as 1.0", numbers, `{"count":1.0}`, nil},
		{"1.5 is no integer", numbers, `{"count":1.5}`, []string{`/traits/count: got number, want integer`}},
		{"at the maximum", numbers, `{"big":9007199254740992}`, nil},
		{"one past the maximum", numbers, `{"big":9007199254740993}`, []string{`/traits/big: must be at most 9007199254740992 (got 9007199254740993)`}},
		{"exact multipleOf", numbers, `{"price":0.07}`, nil},
		{"not a multiple", numbers, `{"price":0.015}`, []string{`/traits/price: must be a multiple of 0.01 (got 0.015)`}},

		// addresses must be deliverable on their channel, format or not
		{"channels valid", channels, `{"email":"a@example.com","mobile":"+14155552671"}`, nil},
		{"verification via email", channels, `{"email":"nope"}`, []string{`/traits/email: 'nope' is not valid email: missing @`}},
		{"code via sms", channels, `{"mobile":"0123"}`, []string{`/traits/mobile: '0123' is not valid tel: a phone number must start with + and the country code`}},
	}
	loaded := map[string]*Schema{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := loaded[tt.schema]
			if !ok {
				s = schemaAt(t, tt.schema)
				loaded[tt.schema] = s
			}
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

// Several violations come back at once, sorted, each pointing at its trait.
func TestValidateReportsEverything(t *testing.T) {
	tests := []struct{ name, schema, traits string }{
		{"customer", "file://testdata/customer.schema.json", `{"phone":"0123","name":{"first":1,"last":["x"]},"favorite_animal":null,"accepted_tos":true,"extra":1,"more":2}`},
		{"nested", "file://testdata/nested.schema.json", `{"emails":["nope",7,"a@example.com"],"name":{"last":1,"nick":"x"},"login":5,"contact":"x","a/b":"1","c~d":"2"}`},
		{"basic", "preset://basic", `{"email":"","name":"Foo Bar","newsletter":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := violationsIn(t, schemaAt(t, tt.schema).Validate(json.RawMessage(tt.traits)))
			if len(got) < 3 {
				t.Errorf("only %d violations: %v", len(got), got)
			}
			golden(t, "violations/"+tt.name, got)
		})
	}
}

// Validation shares the compiled schema between requests.
func TestValidateConcurrently(t *testing.T) {
	s := schemaAt(t, "file://testdata/nested.schema.json")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				traits := fmt.Sprintf(`{"emails":["u%d.%d@example.com"],"name":{"first":"A"}}`, i, j)
				if err := s.Validate(json.RawMessage(traits)); err != nil {
					t.Error(err)
					return
				}
				f, err := s.Facts(json.RawMessage(traits))
				if err != nil || len(f.Identifiers) == 0 {
					t.Errorf("Facts = %+v, %v", f, err)
					return
				}
				if err := s.Validate(json.RawMessage(`{"emails":[1]}`)); err == nil {
					t.Error("invalid traits passed")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkValidate(b *testing.B) {
	s := schemaAt(b, "preset://email")
	traits := json.RawMessage(`{"email":"foo@bar.com"}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Validate(traits); err != nil {
			b.Fatal(err)
		}
	}
}
