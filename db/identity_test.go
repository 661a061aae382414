package db_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

func write(email string) *db.IdentityWrite {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &db.IdentityWrite{
		Identity: &model.Identity{
			ID: uuid.Must(uuid.NewV7()), SchemaID: "default", State: model.IdentityStateActive,
			Traits:    model.JSON(fmt.Sprintf(`{"email":%q,"n":9007199254740993}`, email)),
			CreatedAt: now, UpdatedAt: now,
		},
		Identifiers:         []db.Identifier{{Type: "password", Value: email, Path: "/traits/email"}},
		VerifiableAddresses: []db.Address{{Via: "email", Value: email, Path: "/traits/email"}},
		RecoveryAddresses:   []db.Address{{Via: "email", Value: email, Path: "/traits/email"}},
	}
}

// TestIdentifierRace has many writers claim one identifier at once: the
// database lets exactly one win, and every loser hears IDENTIFIER_TAKEN at
// the field's path, on both engines.
func TestIdentifierRace(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { _, errs[i] = store.CreateIdentity(context.Background(), write("race@example.com")) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case model.ErrorCodeOf(err) != model.CodeIdentifierTaken:
				t.Errorf("loser got %v, want IDENTIFIER_TAKEN", err)
			default:
				if es := model.UserErrors(err); len(es) == 0 || es[0].Path != "/traits/email" {
					t.Errorf("IDENTIFIER_TAKEN without the field's path: %v", err)
				}
			}
		}
		if won != 1 {
			t.Fatalf("%d writers won, want exactly 1", won)
		}
		list, _, err := store.ListIdentities(context.Background(), db.IdentityFilter{Identifiers: []string{"race@example.com"}}, uuid.Nil, 10, 0)
		if err != nil || len(list) != 1 {
			t.Fatalf("identities with the identifier: %d, %v; want 1", len(list), err)
		}
	})
}

// TestUpdateKeepsUnchangedAddresses: an address that stays keeps its row
// (and so its verification state); one that goes is deleted; numbers in
// traits come back exactly.
func TestUpdateKeepsUnchangedAddresses(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		w := write("keep@example.com")
		w.VerifiableAddresses = append(w.VerifiableAddresses, db.Address{Via: "email", Value: "gone@example.com", Path: "/traits/other"})
		if _, err := store.CreateIdentity(ctx, w); err != nil {
			t.Fatal(err)
		}
		before, err := store.GetIdentity(ctx, w.Identity.ID, model.AllRelations)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(before.Traits); got != `{"email":"keep@example.com","n":9007199254740993}` {
			t.Errorf("traits came back as %s", got)
		}
		after, err := store.UpdateIdentity(ctx, w.Identity.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			next := write("keep@example.com")
			next.Identity = cur
			next.Identity.UpdatedAt = time.Now().UTC()
			return next, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var kept uuid.UUID
		for _, a := range before.VerifiableAddresses {
			if a.Value == "keep@example.com" {
				kept = a.ID
			}
		}
		if len(after.VerifiableAddresses) != 1 || after.VerifiableAddresses[0].ID != kept {
			t.Fatalf("verifiable addresses %+v, want the kept row %s only", *after.VerifiableAddresses[0], kept)
		}
	})
}

// TestImportBatchWithDuplicates: a batch where two items claim the same
// identifier keeps every other item, and reports the loser alone.
func TestImportBatchWithDuplicates(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ws := []*db.IdentityWrite{write("a@example.com"), write("dup@example.com"), write("dup@example.com"), write("b@example.com")}
		created, err := store.CreateIdentities(context.Background(), ws)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []model.ErrorCode{"", "", model.CodeIdentifierTaken, ""} {
			if got := model.ErrorCodeOf(created[i].Err); got != want {
				t.Errorf("item %d: %q (%v), want %q", i, got, created[i].Err, want)
			}
			if (created[i].Identity != nil) != (want == "") {
				t.Errorf("item %d: identity %v with error %v", i, created[i].Identity != nil, created[i].Err)
			}
		}
		list, _, err := store.ListIdentities(context.Background(), db.IdentityFilter{}, uuid.Nil, 10, 0)
		if err != nil || len(list) != 3 {
			t.Fatalf("stored %d identities, %v; want 3", len(list), err)
		}
	})
}

// TestTakenIdentifierLogsNoHash: PostgreSQL logs the text of a failed
// statement, so creating an identity whose email is taken (the commonest
// failure, and one any visitor can cause at registration) must fail in a
// statement that does not carry the password hash; the import's per-item
// fallback takes the same path. The hash must still be stored when nothing
// collides.
func TestTakenIdentifierLogsNoHash(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		const marker = "$argon2id$v=19$m=65536,t=2,p=1$c2VjcmV0LW1hcmtlcg$bm8tb25lLXNob3VsZC1zZWUtdGhpcy1rZXk"
		stop := store.RecordFailedQueries()
		first := write("taken@example.com")
		first.Password = &db.PasswordSecret{Hash: marker}
		if _, err := store.CreateIdentity(context.Background(), first); err != nil {
			t.Fatal(err)
		}
		second := write("taken@example.com")
		second.Password = &db.PasswordSecret{Hash: marker}
		_, err := store.CreateIdentity(context.Background(), second)
		if model.ErrorCodeOf(err) != model.CodeIdentifierTaken {
			t.Fatalf("second create: %v, want IDENTIFIER_TAKEN", err)
		}
		third := write("taken@example.com")
		third.Password = &db.PasswordSecret{Hash: marker}
		res, err := store.CreateIdentities(context.Background(), []*db.IdentityWrite{third, write("free@example.com")})
		if err != nil || model.ErrorCodeOf(res[0].Err) != model.CodeIdentifierTaken || res[1].Err != nil {
			t.Fatalf("import: %v, %+v", err, res)
		}
		failed := stop()
		if len(failed) == 0 {
			t.Fatal("no failed statement recorded: the check would pass for nothing")
		}
		for _, q := range failed {
			if strings.Contains(q, marker) {
				t.Errorf("a failed statement carries the password hash:\n%.400s", q)
			}
		}
		if c, err := store.PasswordCredentialOf(context.Background(), first.Identity.ID); err != nil || c.Hash != marker {
			t.Errorf("stored credential = %+v, %v; want the hash written", c, err)
		}
	})
}
