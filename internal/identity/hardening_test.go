package identity_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

// TestAuthenticateIdentifierForms: a login identifier is looked up in its
// canonical forms (width, case, composition), and one that no identity can
// hold (a control character, too long) answers like an unknown identifier,
// never with an internal error, on both engines.
func TestAuthenticateIdentifierForms(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		svc, _ := newService(t, store)
		const pw = "violet-Kettle-orbit-42"
		for _, u := range []string{"alice", "ren\u00e9"} {
			if _, err := svc.Create(ctx, &model.CreateIdentityInput{SchemaID: str("user"), Traits: model.JSON(`{"username":"` + u + `"}`),
				Credentials: &model.CredentialsInput{Password: &model.PasswordCredentialInput{Password: str(pw)}}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, typed := range []string{"alice", " ALICE ", "\uff41lice", "\uff21\uff2c\uff29\uff23\uff25", "rene\u0301", "REN\u00c9"} {
			if _, err := svc.Authenticate(ctx, typed, pw); err != nil {
				t.Errorf("Authenticate(%q): %v, want a login", typed, err)
			}
		}
		for _, typed := range []string{"alice\x00", "\x00", "alice\u200b", "al\x01ice", "p\u0430ypal", strings.Repeat("a", 513), strings.Repeat("\x00", 1<<20), "a\xffb"} {
			if _, err := svc.Authenticate(ctx, typed, pw); model.ErrorCodeOf(err) != model.CodeInvalidCredentials {
				t.Errorf("Authenticate(%.30q…): %v, want INVALID_CREDENTIALS", typed, err)
			}
		}
	})
}

// FuzzPatch applies arbitrary RFC 6902 patches to an identity: nothing
// panics, every refusal is a user error (INVALID_PATCH or VALIDATION_FAILED,
// or SCHEMA_NOT_FOUND for an unknown schema; never an internal one), and
// what is stored has canonical identifiers.
func FuzzPatch(f *testing.F) {
	store := dbtest.Open(f, dbtest.NewSQLite(f))
	reg, err := schemas.NewRegistry(context.Background(), "user", []schemas.Source{
		{ID: "user", URL: "preset://username"},
		{ID: "email", URL: "preset://email"},
		{ID: "sms", URL: "preset://sms"},
		{ID: "blank", URL: "preset://blank"},
	}, schemas.Options{})
	if err != nil {
		f.Fatal(err)
	}
	p := password.DefaultParams()
	p.Memory, p.Iterations = 8*1024, 1
	svc := identity.New(store, reg, password.NewHasher(p, 1), password.DefaultPolicy(), time.Now)

	for _, seed := range []string{
		`[]`,
		`[{"op":"replace","path":"/traits/username","value":"\uff41lice"}]`,
		`[{"op":"replace","path":"/traits/username","value":"alice\u200b"}]`,
		`[{"op":"replace","path":"/traits/username","value":"p\u0430ypal"}]`,
		`[{"op":"replace","path":"/traits/username","value":"alice\u0000"}]`,
		`[{"op":"add","path":"/traits/x","value":{"y":"\u0000"}}]`,
		`[{"op":"add","path":"/metadata_public","value":{"a\u0000":"\u0000"}}]`,
		`[{"op":"replace","path":"/schema_id","value":"sms"},{"op":"replace","path":"/traits","value":{"phone_number":"+1 415 555 2671"}}]`,
		`[{"op":"replace","path":"/schema_id","value":"nope"}]`,
		`[{"op":"replace","path":"/schema_id","value":7}]`,
		`[{"op":"replace","path":"/state","value":"inactive"}]`,
		`[{"op":"replace","path":"/state","value":null}]`,
		`[{"op":"remove","path":"/traits"}]`,
		`[{"op":"move","from":"/traits","path":"/metadata_admin"}]`,
		`[{"op":"copy","from":"/id","path":"/traits/username"}]`,
		`[{"op":"test","path":"/traits/username","value":"fuzz-user"}]`,
		`[{"op":"replace","path":"/created_at","value":"2020-01-01T00:00:00Z"}]`,
		`[{"op":"add","path":"/traits/username/-","value":1}]`,
		`[{"op":"bogus","path":"/"}]`,
		`[{"op":"add","path":"","value":{}}]`,
		`[{"op":"replace","path":"/traits/username","value":"` + strings.Repeat("a", 600) + `"}]`,
	} {
		f.Add([]byte(seed))
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		var ops []*model.JSONPatchOperation
		if err := json.Unmarshal(data, &ops); err != nil {
			return
		}
		for _, op := range ops {
			if op == nil {
				return // GraphQL never passes a null operation
			}
		}
		ident, err := svc.Create(ctx, &model.CreateIdentityInput{Traits: model.JSON(`{"username":"fuzz-user"}`),
			MetadataPublic: model.JSON(`{"n":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := svc.Delete(ctx, ident.ID); err != nil {
				t.Fatal(err)
			}
		}()
		got, err := svc.Patch(ctx, ident.ID, ops)
		if err != nil {
			es := model.UserErrors(err)
			if len(es) == 0 {
				t.Fatalf("patch %s: internal error %v", data, err)
			}
			for _, e := range es {
				switch {
				case e.Code == model.CodeInvalidPatch, e.Code == model.CodeValidationFailed:
				// An unknown schema_id is SCHEMA_NOT_FOUND, as on every
				// write. Its path is /schemaId, as the admin tests want,
				// though a patch has no such field (/patch/<i> would be a
				// pointer into the input).
				case e.Code == model.CodeSchemaNotFound && e.Path == "/schemaId":
				default:
					t.Fatalf("patch %s: %s %q at %q, want INVALID_PATCH or VALIDATION_FAILED", data, e.Code, e.Message, e.Path)
				}
			}
			return
		}
		for _, c := range got.Credentials {
			for _, v := range c.Identifiers {
				if again, err := schemas.CanonicalIdentifier(v, ""); c.Type == model.CredentialTypePassword && (err != nil || again != v) {
					t.Fatalf("patch %s stored identifier %q, which is not canonical (%q, %v)", data, v, again, err)
				}
			}
		}
	})
}
