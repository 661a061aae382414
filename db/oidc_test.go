package db_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

func oidcHash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// TestOIDCFlowTakenOnce: a flow is found by its state's hash and deleted as
// it is taken, so of many callbacks racing with the same state exactly one
// gets it; pruning deletes the expired ones only.
func TestOIDCFlowTakenOnce(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		flow := func(state string, expires time.Time) *db.OIDCFlow {
			return &db.OIDCFlow{ID: uuid.Must(uuid.NewV7()), StateHash: oidcHash(state), BindingHash: oidcHash("b-" + state),
				Provider: "mock", Nonce: "n", PKCEVerifier: "v", ReturnTo: "https://app.example.test/", ExpiresAt: expires, CreatedAt: now}
		}
		if err := store.CreateOIDCFlow(ctx, flow("live", now.Add(10*time.Minute))); err != nil {
			t.Fatal(err)
		}
		if err := store.CreateOIDCFlow(ctx, flow("old", now.Add(-time.Minute))); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var wg sync.WaitGroup
		got := make([]*db.OIDCFlow, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { got[i], errs[i] = store.TakeOIDCFlow(ctx, oidcHash("live")) })
		}
		wg.Wait()
		taken := 0
		for i := range n {
			switch {
			case errs[i] == nil:
				taken++
				if !got[i].BindingMatches(oidcHash("b-live")) || got[i].BindingMatches(oidcHash("b-old")) || got[i].BindingMatches(nil) {
					t.Errorf("binding check of the taken flow is wrong")
				}
				if got[i].ReturnTo != "https://app.example.test/" || got[i].PKCEVerifier != "v" || got[i].LinkIdentityID != nil {
					t.Errorf("taken flow = %+v", got[i])
				}
			case model.ErrorCodeOf(errs[i]) != model.CodeNotFound:
				t.Errorf("a losing take got %v, want NOT_FOUND", errs[i])
			}
		}
		if taken != 1 {
			t.Fatalf("%d takes got the flow, want exactly 1", taken)
		}
		pruned, err := store.PruneOIDCFlows(ctx, now)
		if err != nil || pruned != 1 {
			t.Fatalf("prune: %d, %v; want 1 (the expired flow)", pruned, err)
		}
		if _, err := store.TakeOIDCFlow(ctx, oidcHash("old")); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("take a pruned flow: %v, want NOT_FOUND", err)
		}
	})
}

// TestOIDCLinks: linking adds the identifier provider:subject (unique
// across identities) and the provider to the credential; unlinking the last
// way to sign in is refused, unlinking with a password left is not; a flow
// linking a deleted identity goes with it.
func TestOIDCLinks(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		now := time.Now()
		// An identity without a password (its email is a placeholder
		// identifier) and one with a password.
		bare := write("bare@example.com")
		if _, err := store.CreateIdentity(ctx, bare); err != nil {
			t.Fatal(err)
		}
		withPassword := write("pw@example.com")
		withPassword.Password = &db.PasswordSecret{Hash: "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
		if _, err := store.CreateIdentity(ctx, withPassword); err != nil {
			t.Fatal(err)
		}
		a, b := bare.Identity.ID, withPassword.Identity.ID

		if err := store.LinkOIDC(ctx, a, db.OIDCProvider{Provider: "mock", Subject: "s1"}, now); err != nil {
			t.Fatalf("link: %v", err)
		}
		if err := store.LinkOIDC(ctx, a, db.OIDCProvider{Provider: "mock", Subject: "s1"}, now); err != nil {
			t.Fatalf("linking again what is linked: %v, want nothing to happen", err)
		}
		if err := store.LinkOIDC(ctx, a, db.OIDCProvider{Provider: "mock", Subject: "s2"}, now); model.ErrorCodeOf(err) != model.CodeValidationFailed {
			t.Fatalf("a second account at the same provider: %v, want VALIDATION_FAILED", err)
		}
		if err := store.LinkOIDC(ctx, b, db.OIDCProvider{Provider: "mock", Subject: "s1"}, now); model.ErrorCodeOf(err) != model.CodeIdentifierTaken {
			t.Fatalf("an account linked to another identity: %v, want IDENTIFIER_TAKEN", err)
		}
		if err := store.LinkOIDC(ctx, uuid.Must(uuid.NewV7()), db.OIDCProvider{Provider: "mock", Subject: "s9"}, now); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("link to nobody: %v, want NOT_FOUND", err)
		}
		if id, err := store.FindOIDCIdentity(ctx, "mock", "s1"); err != nil || id != a {
			t.Fatalf("find mock:s1 = %v, %v; want %v", id, err, a)
		}
		links, err := store.OIDCLinks(ctx, a)
		if err != nil || len(links) != 1 || links[0] != (db.OIDCProvider{Provider: "mock", Subject: "s1"}) {
			t.Fatalf("links = %v, %v", links, err)
		}
		ident, err := store.GetIdentity(ctx, a, model.AllRelations)
		if err != nil {
			t.Fatal(err)
		}
		if got := oidcCredentialIdentifiers(ident, model.CredentialTypeOidc); len(got) != 1 || got[0] != "mock:s1" {
			t.Fatalf("OIDC credential identifiers = %v, want [mock:s1]", got)
		}

		if err := store.UnlinkOIDC(ctx, a, "mock", now); model.ErrorCodeOf(err) != model.CodeValidationFailed {
			t.Fatalf("unlink the last way to sign in: %v, want VALIDATION_FAILED", err)
		}
		if err := store.UnlinkOIDC(ctx, a, "other", now); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("unlink what is not linked: %v, want NOT_FOUND", err)
		}
		if err := store.LinkOIDC(ctx, a, db.OIDCProvider{Provider: "other", Subject: "x"}, now); err != nil {
			t.Fatal(err)
		}
		if err := store.UnlinkOIDC(ctx, a, "mock", now); err != nil {
			t.Fatalf("unlink with another link left: %v", err)
		}
		if _, err := store.FindOIDCIdentity(ctx, "mock", "s1"); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("find an unlinked account: %v, want NOT_FOUND", err)
		}

		if err := store.LinkOIDC(ctx, b, db.OIDCProvider{Provider: "mock", Subject: "s1"}, now); err != nil {
			t.Fatalf("link the account freed: %v", err)
		}
		if err := store.UnlinkOIDC(ctx, b, "mock", now); err != nil {
			t.Fatalf("unlink with a password left: %v", err)
		}
		if links, err := store.OIDCLinks(ctx, b); err != nil || len(links) != 0 {
			t.Fatalf("links after unlink = %v, %v", links, err)
		}

		f := &db.OIDCFlow{ID: uuid.Must(uuid.NewV7()), StateHash: oidcHash("link"), BindingHash: oidcHash("b"), Provider: "mock",
			Nonce: "n", PKCEVerifier: "v", ReturnTo: "https://app.example.test/", LinkIdentityID: &b,
			ExpiresAt: now.Add(time.Minute), CreatedAt: now}
		if err := store.CreateOIDCFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := store.DeleteIdentity(ctx, b, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := store.TakeOIDCFlow(ctx, oidcHash("link")); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Fatalf("a link flow of a deleted identity: %v, want NOT_FOUND", err)
		}
	})
}

func oidcCredentialIdentifiers(ident *model.Identity, typ model.CredentialType) []string {
	for _, c := range ident.Credentials {
		if c.Type == typ {
			return c.Identifiers
		}
	}
	return nil
}
