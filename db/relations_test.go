package db_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/identityd/identityd/db"
	"github.com/identityd/identityd/db/dbtest"
	"github.com/identityd/identityd/model"
)

// richWrite is an identity with several credential types, identifiers and
// addresses whose byte order differs from a locale's ("B" < "a", "a_b" <
// "ab"), so that an order taken from anything but bytes shows.
func richWrite(tag string) *db.IdentityWrite {
	w := write("zed" + tag + "@example.com")
	w.Identifiers = append(w.Identifiers,
		db.Identifier{Type: "password", Value: "a_b" + tag + "@example.com", Path: "/traits/backup"},
		db.Identifier{Type: "password", Value: "ab" + tag + "@example.com", Path: "/traits/other"},
		db.Identifier{Type: "oidc", Value: "b:" + tag, Path: "/credentials/oidc/providers/0"},
		db.Identifier{Type: "oidc", Value: "B:" + tag, Path: "/credentials/oidc/providers/1"},
	)
	w.Password = &db.PasswordSecret{Hash: "$2a$04$abcdefghijklmnopqrstuu5sS1Vx1gRSRmQiH4bqGU7l0Gq0AXnFG"}
	w.OIDC = []db.OIDCProvider{{Provider: "b", Subject: tag}, {Provider: "B", Subject: tag}}
	w.VerifiableAddresses = append(w.VerifiableAddresses,
		db.Address{Via: "email", Value: "a_b" + tag + "@example.com", Path: "/traits/backup"},
		db.Address{Via: "sms", Value: "+1415555" + tag, Path: "/traits/phone"})
	w.RecoveryAddresses = append(w.RecoveryAddresses, db.Address{Via: "email", Value: "ab" + tag + "@example.com", Path: "/traits/other"})
	w.Identity.MetadataAdmin = model.JSON(`{"k": [1, 2.50]}`)
	return w
}

// relationSets are every subset of the relations.
func relationSets() []model.Relations {
	var out []model.Relations
	for r := range model.AllRelations + 1 {
		out = append(out, r)
	}
	return out
}

// only is ident with the relations not in rels emptied, as a read that asks
// for rels alone returns it.
func only(ident *model.Identity, rels model.Relations) *model.Identity {
	c := *ident
	c.Loaded = rels
	if !rels.Has(model.RelationCredentials) {
		c.Credentials = []*model.Credential{}
	}
	if !rels.Has(model.RelationVerifiableAddresses) {
		c.VerifiableAddresses = []*model.VerifiableAddress{}
	}
	if !rels.Has(model.RelationRecoveryAddresses) {
		c.RecoveryAddresses = []*model.RecoveryAddress{}
	}
	return &c
}

// TestWritesReturnWhatIsStored: the identity a create, an import or an
// update returns, built from the rows written, equals what reading it back
// returns, through the single read (every subset of relations) and the
// batched page load alike, on both engines.
func TestWritesReturnWhatIsStored(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		check := func(t *testing.T, what string, got *model.Identity) {
			t.Helper()
			if got.Loaded != model.AllRelations {
				t.Errorf("%s: loaded %03b, want every relation", what, got.Loaded)
			}
			for _, rels := range relationSets() {
				read, err := store.GetIdentity(ctx, got.ID, rels)
				if err != nil {
					t.Fatal(err)
				}
				if want := only(got, rels); !reflect.DeepEqual(read, want) {
					t.Errorf("%s: GetIdentity(%03b)\n got %s\nwant %s", what, rels, dump(read), dump(want))
				}
				page, _, err := store.ListIdentities(ctx, db.IdentityFilter{IDs: []uuid.UUID{got.ID}}, uuid.Nil, 10, rels)
				if err != nil || len(page) != 1 {
					t.Fatalf("list: %d, %v", len(page), err)
				}
				if want := only(got, rels); !reflect.DeepEqual(page[0], want) {
					t.Errorf("%s: ListIdentities(%03b)\n got %s\nwant %s", what, rels, dump(page[0]), dump(want))
				}
			}
		}

		created, err := store.CreateIdentity(ctx, richWrite("1"))
		if err != nil {
			t.Fatal(err)
		}
		check(t, "create", created)
		if len(created.Credentials) != 2 || len(created.VerifiableAddresses) != 3 || len(created.RecoveryAddresses) != 2 {
			t.Fatalf("created identity lacks relations: %s", dump(created))
		}

		// The bulk path and, with a duplicate in the batch, the one item at
		// a time path.
		for _, batch := range [][]*db.IdentityWrite{
			{richWrite("2"), richWrite("3")},
			{richWrite("4"), richWrite("4"), richWrite("5")},
		} {
			res, err := store.CreateIdentities(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Err != nil {
					continue
				}
				if r.Identity.ID != batch[i].Identity.ID {
					t.Errorf("import item %d came back as %s, want %s", i, r.Identity.ID, batch[i].Identity.ID)
				}
				check(t, "import", r.Identity)
			}
		}

		// An update keeps the rows of what stays (and their older
		// created_at, which puts them first), drops the OIDC credential's
		// "B" link, and adds a credential-less password hash change.
		time.Sleep(2 * time.Millisecond)
		updated, err := store.UpdateIdentity(ctx, created.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			if cur.Loaded != model.AllRelations || !reflect.DeepEqual(cur.Credentials, created.Credentials) {
				t.Errorf("change saw %s", dump(cur))
			}
			next := *cur
			next.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
			next.Traits = model.JSON(`{"email":"zed1@example.com"}`)
			w := &db.IdentityWrite{
				Identity: &next,
				Identifiers: []db.Identifier{
					{Type: "password", Value: "zed1@example.com"},
					{Type: "password", Value: "aaa1@example.com"},
					{Type: "oidc", Value: "b:1"},
				},
				Password:            &db.PasswordSecret{Hash: "$2a$04$abcdefghijklmnopqrstuu5sS1Vx1gRSRmQiH4bqGU7l0Gq0AXnFX"},
				VerifiableAddresses: []db.Address{{Via: "email", Value: "zed1@example.com"}, {Via: "email", Value: "aaa1@example.com"}},
				RecoveryAddresses:   []db.Address{{Via: "email", Value: "ab1@example.com"}},
			}
			return w, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, "update", updated)
		if got := updated.VerifiableAddresses; len(got) != 2 || got[0].Value != "zed1@example.com" || got[0].ID != created.VerifiableAddresses[2].ID {
			t.Errorf("verifiable addresses after the update: %s; want the kept row first", dump(updated))
		}
		if got := updated.Credentials[1]; got.Type != model.CredentialTypePassword || !got.UpdatedAt.Equal(updated.UpdatedAt) || !got.CreatedAt.Equal(created.CreatedAt) {
			t.Errorf("password credential after a hash change: %+v", got)
		}

		// A schema without identifiers: the password credential keeps its
		// hash and loses its identifiers, the OIDC one (config of its own)
		// stays; nothing is left to dropping.
		updated, err = store.UpdateIdentity(ctx, created.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			next := *cur
			next.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
			next.State = model.IdentityStateInactive
			next.StateChangedAt = &next.UpdatedAt
			next.MetadataAdmin = nil
			return &db.IdentityWrite{Identity: &next}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, "update to no identifiers", updated)
		for _, c := range updated.Credentials {
			if len(c.Identifiers) != 0 {
				t.Errorf("credential %s kept identifiers %v", c.Type, c.Identifiers)
			}
		}
	})
}

// TestGetIdentityIsOneQuery: reading an identity costs one statement
// whichever relations come with it.
func TestGetIdentityIsOneQuery(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		store.CountQueries()()
		created, err := store.CreateIdentity(ctx, richWrite("q"))
		if err != nil {
			t.Fatal(err)
		}
		for _, rels := range relationSets() {
			stop := store.CountQueries()
			_, err := store.GetIdentity(ctx, created.ID, rels)
			if n := stop(); err != nil || n != 1 {
				t.Errorf("GetIdentity(%03b): %d queries, %v; want 1", rels, n, err)
			}
		}
		if _, err := store.GetIdentity(ctx, uuid.Must(uuid.NewV7()), model.AllRelations); model.ErrorCodeOf(err) != model.CodeNotFound {
			t.Errorf("unknown id: %v, want NOT_FOUND", err)
		}
	})
}

// TestLazyRelationsMatch: the loaders for an identity read without its
// relations return what the single read does.
func TestLazyRelationsMatch(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		created, err := store.CreateIdentity(ctx, richWrite("l"))
		if err != nil {
			t.Fatal(err)
		}
		cs, err1 := store.Credentials(ctx, created.ID)
		vs, err2 := store.VerifiableAddresses(ctx, created.ID)
		rs, err3 := store.RecoveryAddresses(ctx, created.ID)
		if err := cmpErr(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cs, created.Credentials) || !reflect.DeepEqual(vs, created.VerifiableAddresses) || !reflect.DeepEqual(rs, created.RecoveryAddresses) {
			t.Errorf("lazy loaders disagree with the created identity %s", dump(created))
		}
		if !slices.IsSorted(cs[1].Identifiers) {
			t.Errorf("identifiers out of byte order: %v", cs[1].Identifiers)
		}
	})
}

// dump shows an identity with its relations, for failure messages.
func dump(ident *model.Identity) string {
	b, _ := json.MarshalIndent(ident, "", "  ")
	return string(b)
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestCredentialsListOnlyWhatExists: a credential row that only holds
// identifiers (the password credential of an identity created without a
// password, or of an OIDC-only one) is not a credential: no path lists it,
// neither the identity a write returns, nor the single read, nor the page
// load, nor the lazy loader. One with a secret is listed, identifiers or not.
func TestCredentialsListOnlyWhatExists(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, store *db.DB) {
		ctx := context.Background()
		const hash = "$2a$04$abcdefghijklmnopqrstuu5sS1Vx1gRSRmQiH4bqGU7l0Gq0AXnFG"
		noPassword := write("none@example.com")
		oidcOnly := write("oidc@example.com")
		oidcOnly.Identifiers = append(oidcOnly.Identifiers, db.Identifier{Type: "oidc", Value: "github:42"})
		oidcOnly.OIDC = []db.OIDCProvider{{Provider: "github", Subject: "42"}}
		noProviders := write("noproviders@example.com")
		noProviders.OIDC = []db.OIDCProvider{}
		withPassword := write("password@example.com")
		withPassword.Password = &db.PasswordSecret{Hash: hash}
		emptyHash := write("emptyhash@example.com")
		emptyHash.Password = &db.PasswordSecret{Hash: ""}

		tests := []struct {
			name string
			w    *db.IdentityWrite
			want []string // type:identifiers
		}{
			{"identifiers only", noPassword, []string{}},
			{"oidc only", oidcOnly, []string{"OIDC:github:42"}},
			{"oidc without providers", noProviders, []string{}},
			{"password", withPassword, []string{"PASSWORD:password@example.com"}},
			{"empty hash", emptyHash, []string{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				created, err := store.CreateIdentity(ctx, tc.w)
				if err != nil {
					t.Fatal(err)
				}
				read, err := store.GetIdentity(ctx, created.ID, model.AllRelations)
				if err != nil {
					t.Fatal(err)
				}
				page, _, err := store.ListIdentities(ctx, db.IdentityFilter{IDs: []uuid.UUID{created.ID}}, uuid.Nil, 10, model.AllRelations)
				if err != nil || len(page) != 1 {
					t.Fatalf("list: %d, %v", len(page), err)
				}
				lazy, err := store.Credentials(ctx, created.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, got := range []struct {
					path string
					cs   []*model.Credential
				}{{"create", created.Credentials}, {"read", read.Credentials}, {"page", page[0].Credentials}, {"lazy", lazy}} {
					if s := credentialStrings(got.cs); !slices.Equal(s, tc.want) {
						t.Errorf("%s: credentials %v, want %v", got.path, s, tc.want)
					}
				}
				// The identifiers stay reserved all the same.
				taken := write("none@example.com")
				taken.Identifiers = tc.w.Identifiers
				if _, err := store.CreateIdentity(ctx, taken); model.ErrorCodeOf(err) != model.CodeIdentifierTaken {
					t.Errorf("another identity with the same identifiers: %v, want IDENTIFIER_TAKEN", err)
				}
			})
		}

		// An update that gives the identity a password lists it from then on.
		updated, err := store.UpdateIdentity(ctx, noPassword.Identity.ID, func(cur *model.Identity) (*db.IdentityWrite, error) {
			if len(cur.Credentials) != 0 {
				t.Errorf("the update saw credentials %v", credentialStrings(cur.Credentials))
			}
			w := write("none@example.com")
			w.Identity = cur
			w.Password = &db.PasswordSecret{Hash: hash}
			return w, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := credentialStrings(updated.Credentials), []string{"PASSWORD:none@example.com"}; !slices.Equal(got, want) {
			t.Errorf("after setting a password: %v, want %v", got, want)
		}
	})
}

// credentialStrings renders credentials as "TYPE:identifier,…".
func credentialStrings(cs []*model.Credential) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, string(c.Type)+":"+strings.Join(c.Identifiers, ","))
	}
	return out
}
