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
