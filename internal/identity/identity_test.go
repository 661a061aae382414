package identity_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/internal/identity"
	"github.com/identityd/identityd/internal/password"
	"github.com/identityd/identityd/model"
	"github.com/identityd/identityd/schemas"
)

func newService(t *testing.T, store *db.DB) (*identity.Service, *password.Hasher) {
	t.Helper()
	reg, err := schemas.NewRegistry(context.Background(), "default", []schemas.Source{
		{ID: "default", URL: "preset://email"},
		{ID: "user", URL: "preset://username"},
	}, schemas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := password.DefaultParams()
	p.Memory, p.Iterations = 8*1024, 1
	h := password.NewHasher(p, 2)
	return identity.New(store, reg, h, password.DefaultPolicy(), time.Now), h
}

func str(s string) *string { return &s }

func TestPatch(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		svc, _ := newService(t, store)
		ident, err := svc.Create(ctx, &model.CreateIdentityInput{Traits: model.JSON(`{"email":"p@example.com"}`), MetadataPublic: model.JSON(`{"n":9007199254740993}`)})
		if err != nil {
			t.Fatal(err)
		}
		op := func(op, path, value string) *model.JSONPatchOperation {
			o := &model.JSONPatchOperation{Op: op, Path: path}
			if value != "" {
				o.Value = model.JSON(value)
			}
			return o
		}
		tests := []struct {
			name     string
			ops      []*model.JSONPatchOperation
			wantCode model.ErrorCode
			wantPath string
			check    func(*model.Identity) bool
		}{
			{"replace email", []*model.JSONPatchOperation{op("replace", "/traits/email", `"q@example.com"`)}, "", "", func(i *model.Identity) bool {
				return strings.Contains(string(i.Traits), "q@example.com")
			}},
			{"state inactive", []*model.JSONPatchOperation{op("replace", "/state", `"inactive"`)}, "", "", func(i *model.Identity) bool {
				return i.State == model.IdentityStateInactive && i.StateChangedAt != nil
			}},
			{"metadata keeps numbers", []*model.JSONPatchOperation{op("add", "/metadata_public/m", `1.50`)}, "", "", func(i *model.Identity) bool {
				return strings.Contains(string(i.MetadataPublic), "9007199254740993") && strings.Contains(string(i.MetadataPublic), "1.50")
			}},
			{"admin metadata", []*model.JSONPatchOperation{op("add", "/metadata_admin", `{"role":"x"}`)}, "", "", func(i *model.Identity) bool {
				return string(i.MetadataAdmin) == `{"role":"x"}`
			}},
			{"id is fixed", []*model.JSONPatchOperation{op("replace", "/id", `"00000000-0000-0000-0000-000000000000"`)}, model.CodeInvalidPatch, "/patch/0", nil},
			{"bad state", []*model.JSONPatchOperation{op("replace", "/state", `"gone"`)}, model.CodeInvalidPatch, "/patch/0", nil},
			{"failing test op", []*model.JSONPatchOperation{op("replace", "/traits/email", `"r@example.com"`), op("test", "/traits/email", `"nope"`)}, model.CodeInvalidPatch, "/patch/1", nil},
			{"unknown key", []*model.JSONPatchOperation{op("add", "/foo", `1`)}, model.CodeInvalidPatch, "/patch", nil},
			{"traits validated", []*model.JSONPatchOperation{op("replace", "/traits/email", `"not an email"`)}, model.CodeValidationFailed, "/traits/email", nil},
			{"schema change validated", []*model.JSONPatchOperation{op("replace", "/schema_id", `"user"`)}, model.CodeValidationFailed, "", nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := svc.Patch(ctx, ident.ID, tc.ops)
				if tc.wantCode == "" {
					if err != nil || !tc.check(got) {
						t.Fatalf("got %+v, %v", got, err)
					}
					return
				}
				es := model.UserErrors(err)
				if len(es) == 0 || es[0].Code != tc.wantCode || (tc.wantPath != "" && es[0].Path != tc.wantPath) {
					t.Fatalf("err %v, want %s at %q", err, tc.wantCode, tc.wantPath)
				}
			})
		}
	})
}

// TestAuthenticateRehashes: an imported bcrypt hash signs in, and is
// replaced by argon2id with the current parameters on that login.
func TestAuthenticateRehashes(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		svc, h := newService(t, store)
		b, _ := bcrypt.GenerateFromPassword([]byte("a long secret phrase"), bcrypt.MinCost)
		if _, err := svc.Create(ctx, &model.CreateIdentityInput{Traits: model.JSON(`{"email":"old@example.com"}`),
			Credentials: &model.CredentialsInput{Password: &model.PasswordCredentialInput{HashedPassword: str(string(b))}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(ctx, " OLD@example.com", "wrong password!"); model.ErrorCodeOf(err) != model.CodeInvalidCredentials {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := svc.Authenticate(ctx, "nobody@example.com", "whatever it is"); model.ErrorCodeOf(err) != model.CodeInvalidCredentials {
			t.Fatalf("unknown identifier: %v", err)
		}
		if _, err := svc.Authenticate(ctx, " OLD@example.com", "a long secret phrase"); err != nil {
			t.Fatal(err)
		}
		cred, err := store.FindPasswordCredential(ctx, []string{"old@example.com"})
		if err != nil || !strings.HasPrefix(cred.Hash, "$argon2id$") || h.NeedsRehash(cred.Hash) {
			t.Fatalf("after login the hash is %.12s…, %v; want a current argon2id", cred.Hash, err)
		}
		if _, err := svc.Authenticate(ctx, "old@example.com", "a long secret phrase"); err != nil {
			t.Fatalf("login after rehash: %v", err)
		}
	})
}

// TestWritesReadNothingBack: create, update, patch and import return the
// identity as stored (what Get then reads, every relation included) without
// reading it back, so an import costs the same statements for 2 identities as
// for 200, on both engines.
func TestWritesReadNothingBack(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		svc, _ := newService(t, store)
		store.CountQueries()()
		same := func(what string, got *model.Identity) {
			t.Helper()
			read, err := svc.Get(ctx, got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, read) {
				t.Errorf("%s returned %+v, Get reads %+v", what, got, read)
			}
		}
		created, err := svc.Create(ctx, &model.CreateIdentityInput{Traits: model.JSON(`{"email":"w@example.com"}`),
			Credentials: &model.CredentialsInput{Oidc: &model.OIDCCredentialInput{Providers: []*model.OIDCProviderInput{{Provider: "p", Subject: "S"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		same("Create", created)
		updated, err := svc.Update(ctx, created.ID, &model.UpdateIdentityInput{Traits: model.JSON(`{"email":"w2@example.com"}`)})
		if err != nil {
			t.Fatal(err)
		}
		same("Update", updated)
		patched, err := svc.Patch(ctx, created.ID, []*model.JSONPatchOperation{{Op: "add", Path: "/metadata_public", Value: model.JSON(`{"a":1}`)}})
		if err != nil {
			t.Fatal(err)
		}
		same("Patch", patched)

		imports := func(n int, tag string) int {
			in := make([]*model.CreateIdentityInput, n)
			for i := range in {
				in[i] = &model.CreateIdentityInput{Traits: model.JSON(fmt.Sprintf(`{"email":"%s%d@example.com"}`, tag, i))}
			}
			stop := store.CountQueries()
			res, err := svc.Import(ctx, in)
			queries := stop()
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					t.Fatalf("import item %d: %v", i, r.Err)
				}
				same("Import", r.Identity)
			}
			return queries
		}
		if few, many := imports(2, "few"), imports(200, "many"); few != many {
			t.Errorf("import of 2: %d queries, of 200: %d; want the same", few, many)
		}
	})
}

// TestImportFormat: the import format's fields through the service. Each
// identity a write returns is what a fresh read returns (external id and
// address states included), a nil item fails alone, and admins' cleartext
// passwords skip the policy where sign-up's do not.
func TestImportFormat(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		svc, _ := newService(t, store)
		verified := true
		at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		res, err := svc.Import(ctx, []*model.CreateIdentityInput{
			{Traits: model.JSON(`{"email":"f1@example.com"}`), ExternalID: str("f-1"),
				VerifiableAddresses: []*model.VerifiableAddressInput{{Value: "F1@example.com", Via: "email", Verified: &verified, VerifiedAt: &at}},
				RecoveryAddresses:   []*model.RecoveryAddressInput{{Value: "r1@example.com", Via: "email"}},
				Credentials:         &model.CredentialsInput{Password: &model.PasswordCredentialInput{Password: str("123")}}},
			nil,
			{SchemaID: str("user"), Traits: model.JSON(`{"username":"user-f3"}`), ExternalID: str("f-1")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil {
			t.Fatalf("item 0: %v", res[0].Err)
		}
		if es := model.UserErrors(res[1].Err); len(es) != 1 || es[0].Code != model.CodeValidationFailed || res[1].Identity != nil {
			t.Errorf("nil item: %v", res[1].Err)
		}
		if es := model.UserErrors(res[2].Err); len(es) != 1 || es[0].Code != model.CodeIdentifierTaken || es[0].Path != "/externalId" {
			t.Errorf("duplicate external id: %v", res[2].Err)
		}
		got := res[0].Identity
		read, err := svc.Get(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, read) {
			t.Errorf("Import returned %+v, Get reads %+v", got, read)
		}
		if v := read.VerifiableAddresses; len(v) != 1 || !v[0].Verified || v[0].Status != model.VerificationCompleted || !v[0].VerifiedAt.Equal(at) {
			t.Errorf("verifiable addresses %+v", v)
		}
		if r := read.RecoveryAddresses; len(r) != 2 {
			t.Errorf("recovery addresses %+v, want the trait's and the one given", r)
		}
		if byExt, err := svc.GetByExternalID(ctx, "f-1", model.AllRelations); err != nil || !reflect.DeepEqual(byExt, read) {
			t.Errorf("GetByExternalID: %+v, %v", byExt, err)
		}
		if _, err := svc.GetByExternalID(ctx, "F-1", 0); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("GetByExternalID of another case: %v, want NOT_FOUND", err)
		}
		if _, err := svc.Authenticate(ctx, "f1@example.com", "123"); err != nil {
			t.Errorf("sign in with the imported short password: %v", err)
		}

		// Create serves sign-up: the policy holds. AdminCreate skips it.
		in := &model.CreateIdentityInput{Traits: model.JSON(`{"email":"self@example.com"}`),
			Credentials: &model.CredentialsInput{Password: &model.PasswordCredentialInput{Password: str("short")}}}
		if _, err := svc.Create(ctx, in); model.ErrorCodeOf(err) != model.CodePasswordPolicy {
			t.Errorf("Create with a short password: %v, want PASSWORD_POLICY", err)
		}
		if _, err := svc.AdminCreate(ctx, in); err != nil {
			t.Errorf("AdminCreate with a short password: %v", err)
		}

		// Traits left out are {}: the default schema wants an email.
		if _, err := svc.AdminCreate(ctx, &model.CreateIdentityInput{}); model.ErrorCodeOf(err) != model.CodeValidationFailed {
			t.Errorf("no traits: %v, want VALIDATION_FAILED", err)
		}
		updated, err := svc.Update(ctx, got.ID, &model.UpdateIdentityInput{Traits: got.Traits, ExternalID: str("f-2"),
			VerifiableAddresses: []*model.VerifiableAddressInput{{Value: "f1@example.com", Via: "email"}}})
		if err != nil {
			t.Fatal(err)
		}
		if read, err = svc.Get(ctx, got.ID); err != nil || !reflect.DeepEqual(updated, read) {
			t.Errorf("Update returned %+v, Get reads %+v (%v)", updated, read, err)
		}
		if *read.ExternalID != "f-2" || read.VerifiableAddresses[0].Verified || len(read.RecoveryAddresses) != 2 {
			t.Errorf("after update: %+v", read)
		}
	})
}
