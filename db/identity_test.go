package db_test

import (
	"context"
	"fmt"
	"slices"
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

// TestExternalID: an identity's external id is stored, read by every read
// (the whoami join too), found by the listing's filter, unique (also within
// one import batch), kept and cleared by updates.
func TestExternalID(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		ext := func(s string) *string { return &s }
		a := write("ext-a@example.com")
		a.Identity.ExternalID = ext("legacy-1")
		if created, err := store.CreateIdentity(ctx, a); err != nil || created.ExternalID == nil || *created.ExternalID != "legacy-1" {
			t.Fatalf("create: %+v, %v", created, err)
		}
		for rels := range model.AllRelations + 1 {
			got, err := store.GetIdentity(ctx, a.Identity.ID, rels)
			if err != nil || got.ExternalID == nil || *got.ExternalID != "legacy-1" {
				t.Fatalf("GetIdentity(%d): %+v, %v", rels, got, err)
			}
		}
		if _, err := store.CreateIdentity(ctx, write("ext-none@example.com")); err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			x    string
			want int
		}{{"legacy-1", 1}, {"LEGACY-1", 0}, {"", 0}, {"a\x00b", 0}, {"\xff", 0}} {
			list, _, err := store.ListIdentities(ctx, db.IdentityFilter{ExternalID: &tc.x}, uuid.Nil, 10, 0)
			if err != nil || len(list) != tc.want {
				t.Errorf("filter %q: %d identities, %v; want %d", tc.x, len(list), err, tc.want)
			}
			n, err := store.CountIdentities(ctx, db.IdentityFilter{ExternalID: &tc.x}, 10)
			if err != nil || n != tc.want {
				t.Errorf("count %q: %d, %v; want %d", tc.x, n, err, tc.want)
			}
		}

		now := time.Now().UTC().Truncate(time.Microsecond)
		sess := &model.Session{ID: uuid.Must(uuid.NewV7()), IdentityID: a.Identity.ID, IssuedAt: now, AuthenticatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := store.CreateSession(ctx, &db.NewSession{Session: sess, TokenHash: []byte("ext-token")}); err != nil {
			t.Fatal(err)
		}
		if got, err := store.ActiveSession(ctx, []byte("ext-token"), now); err != nil || got.Identity.ExternalID == nil || *got.Identity.ExternalID != "legacy-1" {
			t.Fatalf("ActiveSession: %+v, %v", got, err)
		}

		taken := write("ext-b@example.com")
		taken.Identity.ExternalID = ext("legacy-1")
		_, err := store.CreateIdentity(ctx, taken)
		if es := model.UserErrors(err); len(es) != 1 || es[0].Code != model.CodeIdentifierTaken || es[0].Path != "/externalId" {
			t.Errorf("duplicate: %v, want IDENTIFIER_TAKEN at /externalId", err)
		}
		taken.ExternalIDPath = "/external_id"
		_, err = store.CreateIdentity(ctx, taken)
		if es := model.UserErrors(err); len(es) != 1 || es[0].Path != "/external_id" {
			t.Errorf("duplicate at a given path: %v, want it at /external_id", err)
		}

		batch := []*db.IdentityWrite{write("b1@example.com"), write("b2@example.com"), write("b3@example.com")}
		batch[0].Identity.ExternalID = ext("batch")
		batch[1].Identity.ExternalID = ext("batch")
		created, err := store.CreateIdentities(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if created[0].Err != nil || created[2].Err != nil {
			t.Errorf("batch: %+v", created)
		}
		if es := model.UserErrors(created[1].Err); len(es) != 1 || es[0].Code != model.CodeIdentifierTaken || es[0].Path != "/externalId" {
			t.Errorf("duplicate within a batch: %v", created[1].Err)
		}

		update := func(x *string) (*model.Identity, error) {
			return store.UpdateIdentity(ctx, a.Identity.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
				next := write("ext-a@example.com")
				next.Identity = cur
				next.Identity.ExternalID = x
				next.Identity.UpdatedAt = time.Now().UTC()
				return next, nil
			})
		}
		if _, err := update(ext("batch")); model.ErrorCodeOf(err) != model.CodeIdentifierTaken {
			t.Errorf("update to a taken one: %v", err)
		}
		if got, err := update(ext("legacy-2")); err != nil || *got.ExternalID != "legacy-2" {
			t.Errorf("update: %+v, %v", got, err)
		}
		if got, err := update(nil); err != nil || got.ExternalID != nil {
			t.Errorf("clear: %+v, %v", got, err)
		}
		// Cleared, any number of identities are without one.
		if got, err := store.GetIdentity(ctx, a.Identity.ID, 0); err != nil || got.ExternalID != nil {
			t.Errorf("read after clear: %+v, %v", got, err)
		}
	})
}

// TestAddressStates: a verifiable address given a state is stored with it;
// a kept one takes the state given, keeping its row; one given none stays
// as it is; a code sent makes a new pending one sent, never a verified one.
func TestAddressStates(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		at := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
		w := write("state@example.com")
		w.VerifiableAddresses[0].State = &db.AddressState{Verified: true, VerifiedAt: &at, Status: model.VerificationCompleted}
		w.VerifiableAddresses = append(w.VerifiableAddresses,
			db.Address{Via: "email", Value: "sent@example.com", Path: "/verifiableAddresses/1/value", State: &db.AddressState{Status: model.VerificationSent}},
			db.Address{Via: "email", Value: "coded@example.com", Path: "/verifiableAddresses/2/value", CodeSent: true,
				State: &db.AddressState{Verified: true, VerifiedAt: &at, Status: model.VerificationCompleted}},
			db.Address{Via: "email", Value: "plain@example.com", Path: "/verifiableAddresses/3/value", CodeSent: true})
		created, err := store.CreateIdentity(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		read, err := store.GetIdentity(ctx, w.Identity.ID, model.AllRelations)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"state@example.com": "true completed 2024-01-02T03:04:05.000006Z", "sent@example.com": "false sent <nil>",
			"coded@example.com": "true completed 2024-01-02T03:04:05.000006Z", "plain@example.com": "false sent <nil>",
		}
		state := func(a *model.VerifiableAddress) string {
			at := "<nil>"
			if a.VerifiedAt != nil {
				at = a.VerifiedAt.Format(time.RFC3339Nano)
			}
			return fmt.Sprintf("%v %s %s", a.Verified, a.Status, at)
		}
		for _, ident := range []*model.Identity{created, read} {
			if len(ident.VerifiableAddresses) != len(want) {
				t.Fatalf("addresses %d, want %d", len(ident.VerifiableAddresses), len(want))
			}
			for _, a := range ident.VerifiableAddresses {
				if got := state(a); got != want[a.Value] {
					t.Errorf("%s: %s, want %s", a.Value, got, want[a.Value])
				}
			}
		}

		ids := map[string]uuid.UUID{}
		for _, a := range read.VerifiableAddresses {
			ids[a.Value] = a.ID
		}
		updated, err := store.UpdateIdentity(ctx, w.Identity.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			next := write("state@example.com")
			next.Identity = cur
			next.Identity.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
			next.VerifiableAddresses[0].State = &db.AddressState{Status: model.VerificationPending}
			next.VerifiableAddresses = append(next.VerifiableAddresses,
				db.Address{Via: "email", Value: "sent@example.com", State: &db.AddressState{Verified: true, VerifiedAt: &at, Status: model.VerificationCompleted}},
				db.Address{Via: "email", Value: "plain@example.com"})
			return next, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		reread, err := store.GetIdentity(ctx, w.Identity.ID, model.AllRelations)
		if err != nil {
			t.Fatal(err)
		}
		want = map[string]string{
			"state@example.com": "false pending <nil>", "sent@example.com": "true completed 2024-01-02T03:04:05.000006Z",
			"plain@example.com": "false sent <nil>",
		}
		for _, ident := range []*model.Identity{updated, reread} {
			if len(ident.VerifiableAddresses) != len(want) {
				t.Fatalf("addresses after update %d, want %d", len(ident.VerifiableAddresses), len(want))
			}
			for _, a := range ident.VerifiableAddresses {
				if got := state(a); got != want[a.Value] {
					t.Errorf("after update %s: %s, want %s", a.Value, got, want[a.Value])
				}
				if a.ID != ids[a.Value] {
					t.Errorf("after update %s: row %s, want the kept row %s", a.Value, a.ID, ids[a.Value])
				}
			}
		}
	})
}

// TestUpdateIdentityWithOIDC: the change sees the providers as stored,
// organizations included, and the write's list replaces them.
func TestUpdateIdentityWithOIDC(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		w := write("links@example.com")
		org := uuid.NewString()
		w.OIDC = []db.OIDCProvider{{Provider: "google", Subject: "1", Organization: org}, {Provider: "github", Subject: "2"}}
		w.Identifiers = append(w.Identifiers, db.Identifier{Type: db.CredentialOIDC, Value: "google:1"}, db.Identifier{Type: db.CredentialOIDC, Value: "github:2"})
		if _, err := store.CreateIdentity(ctx, w); err != nil {
			t.Fatal(err)
		}
		var seen []db.OIDCProvider
		_, err := store.UpdateIdentityWithOIDC(ctx, w.Identity.ID, func(cur *model.Identity, links []db.OIDCProvider) (*db.IdentityWrite, error) {
			seen = links
			next := write("links@example.com")
			next.Identity = cur
			next.Identity.UpdatedAt = time.Now().UTC()
			next.OIDC = append(slices.Clone(links[1:]), db.OIDCProvider{Provider: "apple", Subject: "3", Organization: org})
			next.Identifiers = append(next.Identifiers, db.Identifier{Type: db.CredentialOIDC, Value: "github:2"}, db.Identifier{Type: db.CredentialOIDC, Value: "apple:3"})
			return next, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seen, w.OIDC) {
			t.Errorf("the change saw %+v, want %+v", seen, w.OIDC)
		}
		links, err := store.OIDCLinks(ctx, w.Identity.ID)
		if want := []db.OIDCProvider{{Provider: "github", Subject: "2"}, {Provider: "apple", Subject: "3", Organization: org}}; err != nil || !slices.Equal(links, want) {
			t.Errorf("stored %+v, %v; want %+v", links, err, want)
		}
	})
}
