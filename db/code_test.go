package db_test

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// newCodeIdentity stores an identity with one verifiable and recovery
// address, for codes to belong to.
func newCodeIdentity(t *testing.T, store *db.DB, email string) *model.Identity {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ident, err := store.CreateIdentity(context.Background(), &db.IdentityWrite{
		Identity:            &model.Identity{ID: uuid.Must(uuid.NewV7()), SchemaID: "default", State: model.IdentityStateActive, Traits: model.JSON(`{"email":"` + email + `"}`), CreatedAt: now, UpdatedAt: now},
		Identifiers:         []db.Identifier{{Type: db.CredentialPassword, Value: email, Path: "/traits/email"}},
		VerifiableAddresses: []db.Address{{Via: "email", Value: email, Path: "/traits/email"}},
		RecoveryAddresses:   []db.Address{{Via: "email", Value: email, Path: "/traits/email"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

func newCode(identityID uuid.UUID, purpose, address string, long bool, expires time.Time) *db.Code {
	hash := make([]byte, 32)
	_, _ = rand.Read(hash)
	return &db.Code{ID: uuid.Must(uuid.NewV7()), Purpose: purpose, IdentityID: identityID, Via: "email", Address: address,
		Long: long, Hash: hash, ExpiresAt: expires, CreatedAt: time.Now()}
}

// TestCodeAttemptsAreReservedAtomically: however many checks arrive at
// once, a code is handed out for comparison at most maxAttempts times.
func TestCodeAttemptsAreReservedAtomically(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "a@example.com")
		c := newCode(ident.ID, db.PurposeVerification, "a@example.com", false, time.Now().Add(time.Hour))
		if err := store.IssueCode(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		handed := 0
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				got, err := store.ReserveCodeAttempt(ctx, db.PurposeVerification, []string{"a@example.com"}, time.Now(), 5)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				handed += len(got)
				mu.Unlock()
			})
		}
		wg.Wait()
		if handed != 5 {
			t.Errorf("a code with 5 attempts was handed out %d times to 20 concurrent checks", handed)
		}
		// Another purpose or address finds nothing.
		if got, _ := store.ReserveCodeAttempt(ctx, db.PurposeRecovery, []string{"a@example.com"}, time.Now(), 5); len(got) != 0 {
			t.Errorf("a verification code reserved as a recovery code: %+v", got)
		}
	})
}

func TestCodeRedeemOnce(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "b@example.com")
		c := newCode(ident.ID, db.PurposeVerification, "b@example.com", false, time.Now().Add(time.Hour))
		if err := store.IssueCode(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		a, err := store.VerifyAddress(ctx, c, time.Now())
		if err != nil || !a.Verified || a.Status != model.VerificationCompleted || a.VerifiedAt == nil {
			t.Fatalf("verify: %+v, %v", a, err)
		}
		if _, err := store.VerifyAddress(ctx, c, time.Now()); model.ErrorCodeOf(err) != model.CodeInvalidCode {
			t.Errorf("a used code again: %v, want INVALID_CODE", err)
		}
		ok, err := store.HasVerifiedAddress(ctx, ident.ID)
		if err != nil || !ok {
			t.Errorf("HasVerifiedAddress after verifying: %v, %v", ok, err)
		}

		// Long codes are found by hash, live ones only.
		long := newCode(ident.ID, db.PurposeRecovery, "", true, time.Now().Add(time.Hour))
		if err := store.IssueCode(ctx, long, nil); err != nil {
			t.Fatal(err)
		}
		found, err := store.FindLongCode(ctx, []string{db.PurposeRecovery, db.PurposeInvitation}, [][]byte{{1, 2, 3}, long.Hash}, time.Now())
		if err != nil || found.ID != long.ID {
			t.Fatalf("FindLongCode: %+v, %v", found, err)
		}
		if _, err := store.FindLongCode(ctx, []string{db.PurposeRecovery}, [][]byte{long.Hash}, time.Now().Add(2*time.Hour)); model.ErrorCodeOf(err) != model.CodeInvalidCode {
			t.Errorf("an expired long code: %v, want INVALID_CODE", err)
		}
		if _, err := store.FindLongCode(ctx, []string{db.PurposeInvitation}, [][]byte{long.Hash}, time.Now()); model.ErrorCodeOf(err) != model.CodeInvalidCode {
			t.Errorf("a recovery code found as an invitation: %v", err)
		}

		// A code for an identity that does not exist is NOT_FOUND.
		stray := newCode(uuid.Must(uuid.NewV7()), db.PurposeRecovery, "", true, time.Now().Add(time.Hour))
		if err := store.IssueCode(ctx, stray, nil); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("a code for nobody: %v, want NOT_FOUND", err)
		}

		// Expired and used codes are pruned.
		if n, err := store.PruneCodes(ctx, time.Now().Add(3*time.Hour)); err != nil || n != 2 {
			t.Errorf("PruneCodes: %d, %v; want the used and the expired code", n, err)
		}
	})
}

// TestLoginCodeAddress: a `code` identifier wins; else a login identifier
// that is also an address; a username or a label alone is none.
func TestLoginCodeAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    db.IdentityWrite
		want string // via:value, "" for none
	}{
		{"code identifier", db.IdentityWrite{
			Identifiers:       []db.Identifier{{Type: db.CredentialPassword, Value: "a@example.com"}, {Type: db.CredentialCode, Value: "+14155552671"}},
			RecoveryAddresses: []db.Address{{Via: "email", Value: "a@example.com"}},
		}, "sms:+14155552671"},
		{"code identifier by email", db.IdentityWrite{
			Identifiers: []db.Identifier{{Type: db.CredentialCode, Value: "c@example.com"}},
		}, "email:c@example.com"},
		{"password identifier that is a verifiable address", db.IdentityWrite{
			Identifiers:         []db.Identifier{{Type: db.CredentialPassword, Value: "user"}, {Type: db.CredentialPassword, Value: "b@example.com"}},
			VerifiableAddresses: []db.Address{{Via: "email", Value: "b@example.com"}},
		}, "email:b@example.com"},
		{"password identifier that is a recovery address", db.IdentityWrite{
			Identifiers:       []db.Identifier{{Type: db.CredentialPassword, Value: "b@example.com"}},
			RecoveryAddresses: []db.Address{{Via: "email", Value: "b@example.com"}},
		}, "email:b@example.com"},
		{"username only", db.IdentityWrite{
			Identifiers: []db.Identifier{{Type: db.CredentialPassword, Value: "user"}},
		}, ""},
		{"an address nobody signs in with", db.IdentityWrite{
			Identifiers:         []db.Identifier{{Type: db.CredentialPassword, Value: "user"}, {Type: "passkey", Value: "d@example.com"}},
			VerifiableAddresses: []db.Address{{Via: "email", Value: "d@example.com"}},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := db.LoginCodeAddress(&tc.w)
			got := ""
			if ok {
				got = a.Via + ":" + a.Value
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// loginRequest records a login code request for address and resolves every
// pending request, sending a fresh code to each target; it returns the
// targets resolve saw.
func loginRequest(t *testing.T, store *db.DB, address string) []db.CodeTarget {
	t.Helper()
	ctx := context.Background()
	if _, err := store.RecordCodeRequest(ctx, nil, time.Hour, &db.CodeRequest{ID: uuid.Must(uuid.NewV7()), Purpose: db.PurposeLogin,
		Address: address, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var seen []db.CodeTarget
	if _, err := store.ResolveCodeRequests(ctx, 100, func(r db.CodeRequest, ts []db.CodeTarget) *db.CodeDispatch {
		seen = append(seen, ts...)
		out := &db.CodeDispatch{}
		for _, tg := range ts {
			c := newCode(tg.IdentityID, r.Purpose, tg.Address, false, time.Now().Add(time.Hour))
			c.Via = tg.Via
			out.Codes = append(out.Codes, c)
		}
		return out
	}); err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestLoginCodeRequests: a login request finds the identity that signs in
// with the address, replaces the address's older codes, and the sign-in
// uses the code, verifies the address and stores the session in one go.
func TestLoginCodeRequests(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ident := newCodeIdentity(t, store, "login@example.com")
		if ts := loginRequest(t, store, "nobody@example.com"); len(ts) != 0 {
			t.Errorf("targets of an unknown address: %+v", ts)
		}
		ts := loginRequest(t, store, "login@example.com")
		if len(ts) != 1 || ts[0].IdentityID != ident.ID || ts[0].Via != "email" || ts[0].State != model.IdentityStateActive {
			t.Fatalf("targets: %+v", ts)
		}
		first, err := store.ReserveCodeAttempt(ctx, db.PurposeLogin, []string{"login@example.com"}, time.Now(), 5)
		if err != nil || len(first) != 1 {
			t.Fatalf("live login codes: %+v, %v", first, err)
		}
		// Two requests in one batch: one code, and it replaces the first.
		for range 2 {
			if _, err := store.RecordCodeRequest(ctx, nil, time.Hour, &db.CodeRequest{ID: uuid.Must(uuid.NewV7()), Purpose: db.PurposeLogin,
				Address: "login@example.com", CreatedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		resolved := 0
		if _, err := store.ResolveCodeRequests(ctx, 100, func(r db.CodeRequest, ts []db.CodeTarget) *db.CodeDispatch {
			resolved++
			c := newCode(ts[0].IdentityID, r.Purpose, ts[0].Address, false, time.Now().Add(time.Hour))
			return &db.CodeDispatch{Codes: []*db.Code{c}}
		}); err != nil {
			t.Fatal(err)
		}
		if resolved != 1 {
			t.Errorf("two login requests for one address in a batch resolved %d times, want 1", resolved)
		}
		live, err := store.ReserveCodeAttempt(ctx, db.PurposeLogin, []string{"login@example.com"}, time.Now(), 5)
		if err != nil || len(live) != 1 || live[0].ID == first[0].ID {
			t.Fatalf("live login codes after a new one: %+v, %v; want only the new one", live, err)
		}
		if n, _ := store.PendingCodeRequests(ctx); n != 0 {
			t.Errorf("%d requests left", n)
		}

		sess := &db.NewSession{Session: &model.Session{ID: uuid.Must(uuid.NewV7()), IdentityID: ident.ID, Active: true,
			IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), AuthenticatedAt: time.Now(), AAL: model.AuthenticatorAssuranceLevelAal1,
			AuthenticationMethods: []*model.AuthenticationMethod{{Method: model.CredentialTypeCode, AAL: model.AuthenticatorAssuranceLevelAal1, CompletedAt: time.Now()}}},
			TokenHash: make([]byte, 32)}
		_, _ = rand.Read(sess.TokenHash)
		if err := store.SignInWithCode(ctx, &db.CodeSignIn{Code: first[0], Session: sess, Now: time.Now()}); model.ErrorCodeOf(err) != model.CodeInvalidCode {
			t.Errorf("the replaced code: %v, want INVALID_CODE", err)
		}
		if err := store.SignInWithCode(ctx, &db.CodeSignIn{Code: live[0], Session: sess, Now: time.Now()}); err != nil {
			t.Fatalf("sign in: %v", err)
		}
		if ok, err := store.HasVerifiedAddress(ctx, ident.ID); err != nil || !ok {
			t.Errorf("address verified after signing in: %v, %v", ok, err)
		}
		if ss, err := store.Sessions(ctx, ident.ID, true, time.Now()); err != nil || len(ss) != 1 || ss[0].ID != sess.Session.ID {
			t.Errorf("sessions: %+v, %v", ss, err)
		}
		if err := store.SignInWithCode(ctx, &db.CodeSignIn{Code: live[0], Session: sess, Now: time.Now()}); model.ErrorCodeOf(err) != model.CodeInvalidCode {
			t.Errorf("the code again: %v, want INVALID_CODE", err)
		}
	})
}
