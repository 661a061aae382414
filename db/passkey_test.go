package db_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// passkeyConfig is a passkey credential config in Kratos's layout with one
// passkey per id.
func passkeyConfig(handle string, ids ...string) []byte {
	if len(ids) == 0 {
		return []byte("{}")
	}
	creds := ""
	for i, id := range ids {
		if i > 0 {
			creds += ","
		}
		creds += fmt.Sprintf(`{"id":%q,"public_key":"cGs=","attestation_type":"none","authenticator":{"aaguid":"AAAAAAAAAAAAAAAAAAAAAA==","sign_count":0,"clone_warning":false},"display_name":"","added_at":"2026-12-02T00:00:00Z","is_passwordless":true}`,
			base64.StdEncoding.EncodeToString([]byte(id)))
	}
	return []byte(fmt.Sprintf(`{"credentials":[%s],"user_handle":%q}`, creds, base64.StdEncoding.EncodeToString([]byte(handle))))
}

// setPasskeys replaces an identity's passkeys through UpdatePasskeys.
func setPasskeys(t *testing.T, store *db.DB, id uuid.UUID, handle string, ids ...string) {
	t.Helper()
	err := store.UpdatePasskeys(context.Background(), id, time.Now(), func(*db.PasskeyCredential) (*db.PasskeyUpdate, error) {
		return &db.PasskeyUpdate{Config: passkeyConfig(handle, ids...), UserHandle: handle}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// credentialSummary renders an identity's credentials as read back, as
// "TYPE:identifier,identifier".
func credentialSummary(t *testing.T, store *db.DB, id uuid.UUID) []string {
	t.Helper()
	ident, err := store.GetIdentity(context.Background(), id, model.AllRelations)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range ident.Credentials {
		out = append(out, fmt.Sprintf("%s:%v", c.Type, c.Identifiers))
	}
	return out
}

// TestPasskeyCredentialStorage: passkeys are the identity's "passkey"
// credential, listed with the user handle as identifier; a discoverable
// sign-in finds them by the handle, also after an identity write rebuilt
// the identifiers from the traits; the last one removed takes the
// credential and its identifier with it.
func TestPasskeyCredentialStorage(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "pk@example.com")
		handle := "HandleHandleHandleHandleHandleHandleHandleHandleHandleHandle1234"

		if _, err := store.FindPasskeyCredential(ctx, []byte(handle)); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("before any passkey: %v, want NOT_FOUND", err)
		}
		cred, err := store.PasskeyCredentialOf(ctx, ident.ID)
		if err != nil || cred.Config != nil {
			t.Fatalf("PasskeyCredentialOf before any passkey: %+v, %v", cred, err)
		}
		if _, err := store.PasskeyCredentialOf(ctx, uuid.Must(uuid.NewV7())); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("PasskeyCredentialOf(unknown): %v, want NOT_FOUND", err)
		}

		setPasskeys(t, store, ident.ID, handle, "key-1")
		if got, want := credentialSummary(t, store, ident.ID), []string{"PASSKEY:[" + handle + "]"}; !slices.Equal(got, want) {
			t.Errorf("credentials = %v, want %v (no password hash: the password row is a placeholder)", got, want)
		}
		found, err := store.FindPasskeyCredential(ctx, []byte(handle))
		if err != nil || found.IdentityID != ident.ID || string(found.Config) != string(passkeyConfig(handle, "key-1")) {
			t.Fatalf("FindPasskeyCredential: %+v, %v", found, err)
		}

		// An identity write rebuilds identifiers from the traits.
		if _, err := store.UpdateIdentity(ctx, ident.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			next := *cur
			next.Traits = model.JSON(`{"email":"pk@example.com","name":"x"}`)
			next.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
			return &db.IdentityWrite{Identity: &next,
				Identifiers:         []db.Identifier{{Type: db.CredentialPassword, Value: "pk@example.com", Path: "/traits/email"}},
				VerifiableAddresses: []db.Address{{Via: "email", Value: "pk@example.com"}},
				RecoveryAddresses:   []db.Address{{Via: "email", Value: "pk@example.com"}}}, nil
		}); err != nil {
			t.Fatal(err)
		}
		found, err = store.FindPasskeyCredential(ctx, []byte(handle))
		if err != nil || found.IdentityID != ident.ID {
			t.Fatalf("FindPasskeyCredential after an identity write: %+v, %v", found, err)
		}
		// The next passkey write puts the identifier back.
		setPasskeys(t, store, ident.ID, handle, "key-1", "key-2")
		if got, want := credentialSummary(t, store, ident.ID), []string{"PASSKEY:[" + handle + "]"}; !slices.Equal(got, want) {
			t.Errorf("credentials after the next passkey write = %v, want %v", got, want)
		}

		// Another identity's handle, and bytes no identifier can hold.
		for _, h := range [][]byte{[]byte("HandleHandleHandleHandleHandleHandleHandleHandleHandleHandle9999"), {0xff, 0, 1}, make([]byte, 65)} {
			if _, err := store.FindPasskeyCredential(ctx, h); model.ErrorCodeOf(err) != model.CodeNotFound {
				t.Errorf("FindPasskeyCredential(%q): %v, want NOT_FOUND", h, err)
			}
		}

		setPasskeys(t, store, ident.ID, handle)
		if got := credentialSummary(t, store, ident.ID); len(got) != 0 {
			t.Errorf("credentials after the last passkey = %v, want none", got)
		}
		if _, err := store.FindPasskeyCredential(ctx, []byte(handle)); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("after the last passkey: %v, want NOT_FOUND", err)
		}
		if cred, err := store.PasskeyCredentialOf(ctx, ident.ID); err != nil || cred.Config != nil {
			t.Errorf("PasskeyCredentialOf after the last passkey: %+v, %v (want no row)", cred, err)
		}
	})
}

// TestPasskeyCredentialWithSchemaIdentifiers: a schema that marks a trait
// as the passkey display name gives the identity a passkey credential row
// (without a secret) holding that identifier; passkeys go into that row,
// and the last one removed leaves it as it was.
func TestPasskeyCredentialWithSchemaIdentifiers(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		ident, err := store.CreateIdentity(ctx, &db.IdentityWrite{
			Identity: &model.Identity{ID: uuid.Must(uuid.NewV7()), SchemaID: "default", State: model.IdentityStateActive,
				Traits: model.JSON(`{"email":"named@example.com"}`), CreatedAt: now, UpdatedAt: now},
			Identifiers: []db.Identifier{{Type: db.CredentialPassword, Value: "named@example.com", Path: "/traits/email"},
				{Type: db.CredentialPasskey, Value: "named@example.com", Path: "/traits/email"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if cred, err := store.PasskeyCredentialOf(ctx, ident.ID); err != nil || string(cred.Config) != "{}" {
			t.Fatalf("the schema's placeholder: %+v, %v", cred, err)
		}
		handle := "NamedNamedNamedNamedNamedNamedNamedNamedNamedNamedNamedNamedName"
		setPasskeys(t, store, ident.ID, handle, "key-1")
		if got, want := credentialSummary(t, store, ident.ID), []string{"PASSKEY:[" + handle + " named@example.com]"}; !slices.Equal(got, want) {
			t.Errorf("credentials = %v, want %v", got, want)
		}
		if found, err := store.FindPasskeyCredential(ctx, []byte(handle)); err != nil || found.IdentityID != ident.ID {
			t.Errorf("FindPasskeyCredential: %+v, %v", found, err)
		}
		setPasskeys(t, store, ident.ID, handle)
		if got := credentialSummary(t, store, ident.ID); len(got) != 0 {
			t.Errorf("credentials after the last passkey = %v, want none listed", got)
		}
		if cred, err := store.PasskeyCredentialOf(ctx, ident.ID); err != nil || string(cred.Config) != "{}" {
			t.Errorf("after the last passkey: %+v, %v (want the placeholder back)", cred, err)
		}
		if _, err := store.FindPasskeyCredential(ctx, []byte(handle)); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("the handle after the last passkey: %v, want NOT_FOUND", err)
		}
		names, _ := store.PasskeyUserNames(ctx, ident.ID)
		if len(names) != 2 || names[0] != (db.Identifier{Type: db.CredentialPasskey, Value: "named@example.com"}) {
			t.Errorf("PasskeyUserNames = %+v", names)
		}
	})
}

// TestUpdatePasskeysSeesOtherWaysToSignIn: the change sees the other
// credentials the identity can sign in with (a placeholder password row
// without a hash is none), and its error writes nothing.
func TestUpdatePasskeysSeesOtherWaysToSignIn(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "ways@example.com")
		var seen db.PasskeyCredential
		look := func(cur *db.PasskeyCredential) (*db.PasskeyUpdate, error) {
			seen = *cur
			return nil, model.Errorf(model.CodeValidationFailed, "no")
		}
		if err := store.UpdatePasskeys(ctx, ident.ID, time.Now(), look); model.ErrorCodeOf(err) != model.CodeValidationFailed {
			t.Fatalf("UpdatePasskeys: %v, want the change's error", err)
		}
		if len(seen.OtherSignIn) != 0 || seen.State != model.IdentityStateActive {
			t.Errorf("without password or OIDC: %+v", seen)
		}
		if err := store.SetPassword(ctx, ident.ID, "$2a$04$hash", time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		_ = store.UpdatePasskeys(ctx, ident.ID, time.Now(), look)
		if !slices.Equal(seen.OtherSignIn, []string{db.CredentialPassword}) {
			t.Errorf("with a password hash: %+v", seen)
		}
		if cred, _ := store.PasskeyCredentialOf(ctx, ident.ID); cred.Config != nil {
			t.Errorf("a refused change wrote %s", cred.Config)
		}
		if err := store.UpdatePasskeys(ctx, uuid.Must(uuid.NewV7()), time.Now(), look); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("unknown identity: %v, want NOT_FOUND", err)
		}
	})
}

// TestUsePasskeyIsCompareAndSet: of many sign-ins that read one version,
// exactly one writes.
func TestUsePasskeyIsCompareAndSet(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "cas@example.com")
		handle := "CasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasCasC"
		setPasskeys(t, store, ident.ID, handle, "key-1")
		cur, err := store.PasskeyCredentialOf(ctx, ident.ID)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won, err := store.UsePasskey(ctx, ident.ID, cur.Version, passkeyConfig(handle, fmt.Sprint("key-", i)), time.Now())
				if err != nil {
					t.Error(err)
				}
				if won {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d sign-ins won the same version, want 1", wins.Load())
		}
		next, _ := store.PasskeyCredentialOf(ctx, ident.ID)
		if next.Version != cur.Version+1 {
			t.Errorf("version %d after one write from %d", next.Version, cur.Version)
		}
	})
}

// TestPasskeyChallenges: a challenge is taken once, only before it expires,
// only as its kind and by its identity; each identity and client keeps its
// newest few; pruning deletes the expired.
func TestPasskeyChallenges(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "ch@example.com")
		other := newCodeIdentity(t, store, "other@example.com")
		now := time.Now().UTC().Truncate(time.Microsecond)
		put := func(kind string, identityID *uuid.UUID, client string, expires time.Time, keep int) uuid.UUID {
			t.Helper()
			c := &db.PasskeyChallenge{ID: uuid.Must(uuid.NewV7()), IdentityID: identityID, Kind: kind,
				SessionData: []byte(`{"challenge":"abc"}`), ClientKey: client, ExpiresAt: expires, CreatedAt: now}
			if err := store.PutPasskeyChallenge(ctx, c, keep); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		take := func(id uuid.UUID, kind string, identityID *uuid.UUID) error {
			_, err := store.TakePasskeyChallenge(ctx, id, kind, identityID, now)
			return err
		}

		reg := put(db.PasskeyRegistration, &ident.ID, "", now.Add(5*time.Minute), 5)
		for _, c := range []struct {
			name     string
			kind     string
			identity *uuid.UUID
		}{{"as a sign-in", db.PasskeyLogin, nil}, {"by another identity", db.PasskeyRegistration, &other.ID}} {
			if err := take(reg, c.kind, c.identity); model.ErrorCodeOf(err) != model.CodeNotFound {
				t.Errorf("taken %s: %v, want NOT_FOUND", c.name, err)
			}
		}
		got, err := store.TakePasskeyChallenge(ctx, reg, db.PasskeyRegistration, &ident.ID, now)
		if err != nil || string(got.SessionData) != `{"challenge":"abc"}` || got.IdentityID == nil || *got.IdentityID != ident.ID {
			t.Fatalf("take: %+v, %v", got, err)
		}
		if err := take(reg, db.PasskeyRegistration, &ident.ID); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("taken twice: %v, want NOT_FOUND", err)
		}

		expired := put(db.PasskeyLogin, nil, "1.2.3.4", now, 100)
		if err := take(expired, db.PasskeyLogin, nil); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("an expired challenge: %v, want NOT_FOUND", err)
		}

		// Racing takes: exactly one gets it.
		race := put(db.PasskeyLogin, nil, "", now.Add(time.Minute), 100)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := take(race, db.PasskeyLogin, nil); err == nil {
					wins.Add(1)
				} else if model.ErrorCodeOf(err) != model.CodeNotFound {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d racing takes got the challenge, want 1", wins.Load())
		}

		// A client keeps its newest 3; another client's are not touched.
		var fromA []uuid.UUID
		for range 5 {
			fromA = append(fromA, put(db.PasskeyLogin, nil, "10.0.0.1", now.Add(time.Minute), 3))
		}
		fromB := put(db.PasskeyLogin, nil, "10.0.0.2", now.Add(time.Minute), 3)
		for i, id := range fromA {
			err := take(id, db.PasskeyLogin, nil)
			if wantKept := i >= 2; (err == nil) != wantKept {
				t.Errorf("client A's challenge %d: %v, kept = %v", i, err, wantKept)
			}
		}
		if err := take(fromB, db.PasskeyLogin, nil); err != nil {
			t.Errorf("client B's challenge: %v", err)
		}
		// So does an identity's registrations.
		var regs []uuid.UUID
		for range 4 {
			regs = append(regs, put(db.PasskeyRegistration, &ident.ID, "", now.Add(time.Minute), 2))
		}
		if err := take(regs[1], db.PasskeyRegistration, &ident.ID); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("an old registration: %v, want NOT_FOUND", err)
		}
		if err := take(regs[3], db.PasskeyRegistration, &ident.ID); err != nil {
			t.Errorf("the newest registration: %v", err)
		}

		n, err := store.OpenPasskeyChallenges(ctx, 1000)
		if err != nil || n != 2 { // the expired one and regs[2]
			t.Errorf("OpenPasskeyChallenges = %d, %v; want 2", n, err)
		}
		if n, _ := store.OpenPasskeyChallenges(ctx, 1); n != 1 {
			t.Errorf("OpenPasskeyChallenges(limit 1) = %d", n)
		}
		pruned, err := store.PrunePasskeyChallenges(ctx, now)
		if err != nil || pruned != 1 {
			t.Errorf("PrunePasskeyChallenges = %d, %v; want 1", pruned, err)
		}
		if err := take(regs[2], db.PasskeyRegistration, &ident.ID); err != nil {
			t.Errorf("a live challenge after pruning: %v", err)
		}

		// Deleting the identity takes its challenges.
		put(db.PasskeyRegistration, &other.ID, "", now.Add(time.Minute), 5)
		if err := store.DeleteIdentity(ctx, other.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if n, _ := store.OpenPasskeyChallenges(ctx, 1000); n != 0 {
			t.Errorf("%d challenges left after deleting their identity", n)
		}
	})
}

// TestFindLoginIdentity: a passkey sign-in with an identifier finds the
// identity by its login identifiers, never by a passkey or TOTP name.
func TestFindLoginIdentity(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "login@example.com")
		id, err := store.FindLoginIdentity(ctx, []string{"nobody", "login@example.com"})
		if err != nil || id != ident.ID {
			t.Fatalf("FindLoginIdentity: %v, %v", id, err)
		}
		handle := "LoginLoginLoginLoginLoginLoginLoginLoginLoginLoginLoginLoginLogi"
		setPasskeys(t, store, ident.ID, handle, "k")
		if _, err := store.FindLoginIdentity(ctx, []string{handle}); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("by the user handle: %v, want NOT_FOUND", err)
		}
		names, err := store.PasskeyUserNames(ctx, ident.ID)
		if err != nil || len(names) != 2 || names[0].Value != handle || names[1].Value != "login@example.com" {
			t.Errorf("PasskeyUserNames = %+v, %v", names, err)
		}
	})
}
