package identity_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/model"
)

// TestKratosIdentityAppendJSON: the hand-written encoder writes what
// encoding/json writes (HTML not escaped), for every field and for strings
// that need escaping.
func TestKratosIdentityAppendJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	ext := "ext-\"quoted\" <b>&amp;</b>"
	tricky := "tab\there\nnew \\ back \x01 ctl \u2028 \u2029 é 🎉 \xff bad"
	full := &identity.KratosIdentity{
		ID: uuid.MustParse("01a235d2-44e5-7353-82cc-3df78bcaaf9d"), SchemaID: "default", State: "inactive",
		StateChangedAt: &at, Traits: json.RawMessage(`{"email":"a@example.com","n":9007199254740993}`),
		ExternalID: &ext,
		Credentials: map[string]*identity.KratosCredential{
			"password": {Type: "password", Identifiers: []string{"a@example.com", tricky}, Config: json.RawMessage(`{"hashed_password":"$2a$04$x"}`),
				Version: 2, CreatedAt: at, UpdatedAt: at},
			"oidc":          {Type: "oidc", Identifiers: []string{}, CreatedAt: at, UpdatedAt: at},
			"lookup_secret": {Type: "lookup_secret", CreatedAt: at, UpdatedAt: at},
		},
		VerifiableAddresses: []identity.KratosVerifiableAddress{
			{ID: uuid.New(), Value: tricky, Verified: true, Via: "email", Status: "completed", VerifiedAt: &at, CreatedAt: at, UpdatedAt: at},
			{ID: uuid.New(), Value: "b@example.com", Via: "email", Status: "pending", CreatedAt: at, UpdatedAt: at},
		},
		RecoveryAddresses: []identity.KratosRecoveryAddress{{ID: uuid.New(), Value: "c@example.com", Via: "email", CreatedAt: at, UpdatedAt: at}},
		MetadataPublic:    json.RawMessage("{\n  \"pretty\": [1, 2]\n}"),
		CreatedAt:         at, UpdatedAt: at,
	}
	empty := &identity.KratosIdentity{ID: uuid.New(), Traits: json.RawMessage(`{}`)}
	for name, k := range map[string]*identity.KratosIdentity{"full": full, "empty": empty} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(k); err != nil {
			t.Fatal(err)
		}
		got := k.AppendJSON(nil)
		if string(got)+"\n" != want.String() {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want.String())
		}
		if bytes.ContainsAny(got, "\n\r") {
			t.Errorf("%s: the line holds a line break", name)
		}
	}
}

// TestParseKratosIdentity: Kratos's fields become the import input, what is
// not imported is noted, and a document of the wrong shape is refused at
// its path.
func TestParseKratosIdentity(t *testing.T) {
	org := uuid.MustParse("9b2e8f3c-4a55-4f6e-8a2b-0c1d2e3f4a5b")
	used := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := `{"id":"ignored","schema_id":"customer","state":"inactive","traits":{"email":"a@example.com"},
	  "external_id":"x-1","metadata_public":{"a":1},"metadata_admin":null,
	  "credentials":{
	    "password":{"type":"password","identifiers":["a@example.com"],"config":{"hashed_password":"$2a$04$abc"}},
	    "oidc":{"config":{"providers":[{"provider":"github","subject":"1","organization":""},{"provider":"google","subject":"2","organization":"` + org.String() + `"}]}},
	    "totp":{"config":{"totp_url":"otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"}},
	    "lookup_secret":{"config":{"recovery_codes":[{"code":"used","used_at":"` + used.Format(time.RFC3339) + `"},{"code":"fresh","used_at":null},{"code":"fresh2"}]}},
	    "webauthn":{"config":{}}},
	  "verifiable_addresses":[{"id":"x","value":"a@example.com","via":"email","verified":true,"status":"completed","verified_at":"2024-01-02T03:04:05Z"}],
	  "recovery_addresses":[{"value":"b@example.com","via":"email"}],
	  "created_at":"whenever","schema_url":"http://x"}`
	got, err := identity.ParseKratosIdentity([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	in := got.Input
	inactive := model.IdentityStateInactive
	verified, verifiedAt := true, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	status := "completed"
	hash := "$2a$04$abc"
	url := "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"
	want := &model.CreateIdentityInput{
		SchemaID: ptr("customer"), State: &inactive, Traits: model.JSON(`{"email":"a@example.com"}`),
		ExternalID: ptr("x-1"), MetadataPublic: model.JSON(`{"a":1}`),
		VerifiableAddresses: []*model.VerifiableAddressInput{{Value: "a@example.com", Via: "email", Verified: &verified, VerifiedAt: &verifiedAt, Status: &status}},
		RecoveryAddresses:   []*model.RecoveryAddressInput{{Value: "b@example.com", Via: "email"}},
		Credentials: &model.CredentialsInput{
			Password: &model.PasswordCredentialInput{HashedPassword: &hash},
			Oidc: &model.OIDCCredentialInput{Providers: []*model.OIDCProviderInput{
				{Provider: "github", Subject: "1"}, {Provider: "google", Subject: "2", Organization: &org}}},
			Totp:         &model.TotpCredentialInput{SecretURL: &url},
			LookupSecret: &model.LookupSecretCredentialInput{Codes: []string{"fresh", "fresh2"}},
		},
	}
	if !reflect.DeepEqual(in, want) {
		a, _ := json.Marshal(in)
		b, _ := json.Marshal(want)
		t.Errorf("input:\n got %s\nwant %s", a, b)
	}
	wantNotes := []string{"lookup_secret: used codes are left out", "webauthn: credentials of this type are not imported"}
	if !reflect.DeepEqual(got.Notes, wantNotes) {
		t.Errorf("notes = %q, want %q", got.Notes, wantNotes)
	}
	// Errors of Import name the document's fields.
	for from, to := range map[string]string{
		"/credentials/password/hashedPassword":  "/credentials/password/config/hashed_password",
		"/credentials/lookupSecret/codes/1":     "/credentials/lookup_secret/config/codes/2",
		"/credentials/oidc/providers/1/subject": "/credentials/oidc/config/providers/1/subject",
		"/externalId":                           "/external_id",
		"/verifiableAddresses/0/value":          "/verifiable_addresses/0/value",
		"/traits/email":                         "/traits/email",
		"/credentials/totp/secretUrl":           "/credentials/totp/config/totp_url",
	} {
		if p := got.Path(from); p != to {
			t.Errorf("Path(%s) = %s, want %s", from, p, to)
		}
	}

	for _, tc := range []struct{ doc, path string }{
		{`[]`, ""},
		{`{"state":"sleeping"}`, "/state"},
		{`{"traits":"x","schema_id":1}`, "/schema_id"},
		{`{"credentials":{"oidc":{"config":{"providers":[{"provider":"a","subject":"b","organization":"nope"}]}}}}`, "/credentials/oidc/config/providers/0/organization"},
		{`{"credentials":{"password":{"config":{"hashed_password":5}}}}`, "/credentials/password/config/hashed_password"},
		{`{"verifiable_addresses":[{"verified":"yes"}]}`, "/verifiable_addresses/verified"},
	} {
		_, err := identity.ParseKratosIdentity([]byte(tc.doc))
		e, ok := err.(*model.Error)
		if !ok || e.Code != model.CodeValidationFailed || e.Path != tc.path {
			t.Errorf("%s: err %v, want VALIDATION_FAILED at %q", tc.doc, err, tc.path)
		}
	}

	// No secrets (an export without credentials): nothing to import, noted.
	got, err = identity.ParseKratosIdentity([]byte(`{"traits":{},"credentials":{"password":{"type":"password","identifiers":["a"]}}}`))
	if err != nil || got.Input.Credentials != nil || len(got.Notes) != 1 {
		t.Errorf("credentials without configs: %+v, %v", got, err)
	}
}

func ptr[T any](v T) *T { return &v }
