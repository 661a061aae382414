package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/identityd/identityd/model"
)

func TestFacts(t *testing.T) {
	tests := []struct{ name, schema, traits string }{
		{"email", "preset://email", `{"email":"Foo@Bar.COM"}`},
		{"username", "preset://username", `{"username":"  Some.User "}`},
		{"sms", "preset://sms", `{"phone_number":"+1 415 555 2671"}`},
		{"basic", "preset://basic", `{"email":"Foo@Bar.com","name":{"first":"Foo","last":"Bar"},"newsletter":true}`},
		{"blank", "preset://blank", `{"email":"foo@bar.com"}`},
		{"customer", "file://testdata/customer.schema.json", `{"email":"Foo@Bar.COM","phone":"+1 (415) 555-2671","name":{"first":"Foo"}}`},
		{"customer-email-only", "file://testdata/customer.schema.json", `{"email":"foo@bar.com"}`},
		{"kratos-file", "file://testdata/kratos-full.schema.json", `{"email":"Foo@Bar.com","phone":"+44 20 7946 0958","name":{"first":"Foo"}}`},
		{"nested-and-arrays", "file://testdata/nested.schema.json", `{"emails":["A@example.com","b@example.com","a@EXAMPLE.com"],"name":{"first":"Ada","last":"L"},"login":"Ada","contact":"+14155552671"}`},
		{"oneof-email-branch", "file://testdata/nested.schema.json", `{"contact":"Ada@Example.com"}`},
		{"channels-without-formats", "file://testdata/channels.schema.json", `{"email":"Foo@Bar.COM","mobile":"+1 415 555 2671"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := schemaAt(t, tt.schema)
			if err := s.Validate(json.RawMessage(tt.traits)); err != nil {
				t.Fatalf("traits must be valid for Facts: %v", err)
			}
			got, err := s.Facts(json.RawMessage(tt.traits))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "facts/"+tt.name, got)
		})
	}
}

func TestFactsDeduplicatesPerCredentialType(t *testing.T) {
	s := schemaAt(t, "file://testdata/nested.schema.json")
	traits := json.RawMessage(`{"emails":["A@example.com","a@EXAMPLE.com"],"login":"a@example.com"}`)
	if err := s.Validate(traits); err != nil {
		t.Fatal(err)
	}
	got, err := s.Facts(traits)
	if err != nil {
		t.Fatal(err)
	}
	want := []Identifier{
		{CredentialType: "password", Value: "a@example.com", Path: "/traits/emails/0"},
		{CredentialType: "totp", Value: "a@example.com", Path: "/traits/emails/0"},
		{CredentialType: "code", Value: "a@example.com", Path: "/traits/emails/0"},
		{CredentialType: "webauthn", Value: "a@example.com", Path: "/traits/login"},
	}
	if !reflect.DeepEqual(got.Identifiers, want) {
		t.Errorf("Identifiers =\n%+v\nwant\n%+v", got.Identifiers, want)
	}
	if len(got.VerifiableAddresses) != 1 {
		t.Errorf("VerifiableAddresses = %+v, want one", got.VerifiableAddresses)
	}
}

func TestFactsRejectsNonObjects(t *testing.T) {
	s := schemaAt(t, "preset://email")
	_, err := s.Facts(json.RawMessage(`["foo@bar.com"]`))
	var es model.Errors
	if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "/traits" || es[0].Code != model.CodeValidationFailed {
		t.Errorf("err = %v, want one VALIDATION_FAILED at /traits", err)
	}
}
