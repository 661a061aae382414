package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// TestFindPasswordCredentialOrder: when identities hold several of the forms
// looked up, the first form listed wins, on every engine and in every order,
// whatever order the rows were written or sort in.
func TestFindPasswordCredentialOrder(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		owner := map[string]uuid.UUID{}
		// Written in neither lexical nor listing order.
		for _, id := range []string{"+1 415 555 2671", "+14155552671 x5", "+14155552671", "b"} {
			now := time.Now().UTC().Truncate(time.Microsecond)
			w := &db.IdentityWrite{
				Identity: &model.Identity{
					ID: uuid.Must(uuid.NewV7()), SchemaID: "default", State: model.IdentityStateActive,
					Traits: model.JSON(fmt.Sprintf(`{"username":%q}`, id)), CreatedAt: now, UpdatedAt: now,
				},
				Identifiers: []db.Identifier{{Type: db.CredentialPassword, Value: id, Path: "/traits/username"}},
				Password:    &db.PasswordSecret{Hash: "$2a$04$" + id},
			}
			ident, err := store.CreateIdentity(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			owner[id] = ident.ID
		}
		lists := [][]string{
			{"+1 415 555 2671", "+14155552671"},
			{"+14155552671", "+1 415 555 2671"},
			{"+14155552671 x5", "+14155552671"},
			{"+14155552671", "+14155552671 x5"},
			{"b", "+14155552671 x5", "+1 415 555 2671", "+14155552671"},
			{"+14155552671", "b", "+14155552671 x5", "+1 415 555 2671"},
			{"unknown", "+14155552671 x5", "b"},
		}
		for _, forms := range lists {
			want := owner[forms[0]]
			if forms[0] == "unknown" {
				want = owner[forms[1]]
			}
			// Again and again: an unordered query may answer right by luck.
			for range 3 {
				cred, err := store.FindPasswordCredential(ctx, forms)
				if err != nil {
					t.Fatalf("FindPasswordCredential(%q): %v", forms, err)
				}
				if cred.IdentityID != want {
					t.Fatalf("FindPasswordCredential(%q) found %v, want %v (the first form that exists)", forms, cred.IdentityID, want)
				}
			}
		}
		if _, err := store.FindPasswordCredential(ctx, []string{"nobody", "no one"}); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("unknown forms: %v, want NOT_FOUND", err)
		}
	})
}
