package db

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// OIDCFlow is an OpenID Connect browser flow between its beginning and the
// provider's redirect back. The state and the browser-binding cookie are
// kept only as their SHA-256; the nonce and PKCE verifier as they are (the
// exchange needs them).
type OIDCFlow struct {
	ID           uuid.UUID
	StateHash    []byte
	BindingHash  []byte
	Provider     string
	Nonce        string
	PKCEVerifier string
	ReturnTo     string
	// LinkIdentityID is set when the flow links the provider to that
	// identity instead of signing in.
	LinkIdentityID *uuid.UUID
	ExpiresAt      time.Time
	CreatedAt      time.Time
}

type oidcFlowRow struct {
	bun.BaseModel `bun:"table:oidc_flows"`

	ID             uuid.UUID  `bun:"id,pk"`
	StateHash      []byte     `bun:"state_hash"`
	BindingHash    []byte     `bun:"binding_hash"`
	Provider       string     `bun:"provider"`
	Nonce          string     `bun:"nonce"`
	PKCEVerifier   string     `bun:"pkce_verifier"`
	ReturnTo       string     `bun:"return_to"`
	LinkIdentityID *uuid.UUID `bun:"link_identity_id"`
	ExpiresAt      time.Time  `bun:"expires_at"`
	CreatedAt      time.Time  `bun:"created_at"`
}

// CreateOIDCFlow stores a new flow.
func (db *DB) CreateOIDCFlow(ctx context.Context, f *OIDCFlow) error {
	row := &oidcFlowRow{ID: f.ID, StateHash: f.StateHash, BindingHash: f.BindingHash, Provider: f.Provider,
		Nonce: f.Nonce, PKCEVerifier: f.PKCEVerifier, ReturnTo: f.ReturnTo, LinkIdentityID: f.LinkIdentityID,
		ExpiresAt: f.ExpiresAt.UTC(), CreatedAt: f.CreatedAt.UTC()}
	_, err := db.bun.NewInsert().Model(row).Exec(ctx)
	if isForeignKeyViolation(err) {
		return model.Errorf(model.CodeNotFound, "identity not found")
	}
	return wrap(err)
}

// TakeOIDCFlow finds the flow whose state hashes to stateHash and deletes
// it in the same transaction, so that it is used once whatever comes of
// it: a second callback with the same state, or two racing, find nothing.
// NOT_FOUND when no flow has that state (never begun, used, or pruned).
// The caller checks the binding and the expiry.
func (db *DB) TakeOIDCFlow(ctx context.Context, stateHash []byte) (*OIDCFlow, error) {
	var out *OIDCFlow
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := new(oidcFlowRow)
		if err := tx.NewSelect().Model(row).Where("state_hash = ?", stateHash).Scan(ctx); err != nil {
			return notFound(err, "flow")
		}
		res, err := tx.NewDelete().Model((*oidcFlowRow)(nil)).Where("id = ?", row.ID).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return model.Errorf(model.CodeNotFound, "flow not found")
		}
		out = &OIDCFlow{ID: row.ID, StateHash: row.StateHash, BindingHash: row.BindingHash, Provider: row.Provider,
			Nonce: row.Nonce, PKCEVerifier: row.PKCEVerifier, ReturnTo: row.ReturnTo, LinkIdentityID: row.LinkIdentityID,
			ExpiresAt: row.ExpiresAt.UTC(), CreatedAt: row.CreatedAt.UTC()}
		return nil
	})
	return out, wrap(err)
}

// BindingMatches compares a flow's binding hash with the hash of the cookie
// a callback brought, in constant time.
func (f *OIDCFlow) BindingMatches(hash []byte) bool {
	return len(hash) > 0 && subtle.ConstantTimeCompare(f.BindingHash, hash) == 1
}

// PruneOIDCFlows deletes the flows that expired before before, and says
// how many.
func (db *DB) PruneOIDCFlows(ctx context.Context, before time.Time) (int, error) {
	res, err := db.bun.NewDelete().Model((*oidcFlowRow)(nil)).Where("expires_at < ?", before.UTC()).Exec(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// OIDCIdentifier is how a link is stored as a credential identifier (and
// looked up): "provider:subject", as the admin API writes it.
func OIDCIdentifier(provider, subject string) string { return provider + ":" + subject }

// FindOIDCIdentity returns the id of the identity linked to subject at
// provider; NOT_FOUND when none is.
func (db *DB) FindOIDCIdentity(ctx context.Context, provider, subject string) (uuid.UUID, error) {
	var id uuid.UUID
	err := db.bun.NewSelect().Model((*identifierRow)(nil)).Column("identity_id").
		Where("type = ? AND identifier = ?", CredentialOIDC, OIDCIdentifier(provider, subject)).
		Limit(1).Scan(ctx, &id)
	if err != nil {
		return uuid.Nil, wrap(notFound(err, "identity"))
	}
	return id, nil
}

// oidcConfig is the stored config of an OIDC credential, as Kratos writes
// it; fields this service does not know are kept as they are.
type oidcConfig struct {
	Providers []json.RawMessage `json:"providers"`
}

// links reads the provider and subject of each stored provider.
func (c oidcConfig) links() ([]OIDCProvider, error) {
	out := make([]OIDCProvider, len(c.Providers))
	for i, raw := range c.Providers {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("oidc credential: provider %d: %w", i, err)
		}
	}
	return out, nil
}

// OIDCLinks returns the providers linked to an identity, in the order they
// were linked; none when it has no OIDC credential.
func (db *DB) OIDCLinks(ctx context.Context, identityID uuid.UUID) ([]OIDCProvider, error) {
	var config rawJSON
	err := db.bun.NewSelect().Model((*credentialRow)(nil)).Column("config").
		Where("identity_id = ? AND type = ?", identityID, CredentialOIDC).Scan(ctx, &config)
	if errors.Is(err, sql.ErrNoRows) {
		return []OIDCProvider{}, nil
	}
	if err != nil {
		return nil, wrap(err)
	}
	var c oidcConfig
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("oidc credential of %s: %w", identityID, err)
	}
	return c.links()
}

// oidcCredential is an identity's OIDC credential row as a link or unlink
// reads it inside its transaction; row is nil when it has none.
type oidcCredential struct {
	row    *credentialRow
	config oidcConfig
	links  []OIDCProvider
}

// lockOIDC locks identity id (PostgreSQL: its row; SQLite's write
// transaction holds the database) and reads its OIDC credential; NOT_FOUND
// when the identity does not exist.
func (db *DB) lockOIDC(ctx context.Context, tx bun.Tx, id uuid.UUID) (*oidcCredential, error) {
	q := tx.NewSelect().Model((*identityRow)(nil)).Column("id").Where("id = ?", id)
	if db.kind == Postgres {
		q = q.For("UPDATE")
	}
	var got uuid.UUID
	if err := q.Scan(ctx, &got); err != nil {
		return nil, notFound(err, "identity")
	}
	out := &oidcCredential{}
	row := new(credentialRow)
	err := tx.NewSelect().Model(row).Where("identity_id = ? AND type = ?", id, CredentialOIDC).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out.row = row
	if err := json.Unmarshal(row.Config, &out.config); err != nil {
		return nil, fmt.Errorf("oidc credential of %s: %w", id, err)
	}
	if out.links, err = out.config.links(); err != nil {
		return nil, err
	}
	return out, nil
}

// storeOIDC writes an OIDC credential's providers back (creating the
// credential when the identity had none), moving its version and
// updated_at as any new secret does.
func storeOIDC(ctx context.Context, tx bun.Tx, id uuid.UUID, c *oidcCredential, now time.Time) (uuid.UUID, error) {
	config, err := json.Marshal(c.config)
	if err != nil {
		return uuid.Nil, err
	}
	if c.row == nil {
		row := &credentialRow{ID: newID(), IdentityID: id, Type: CredentialOIDC, Config: config, CreatedAt: now, UpdatedAt: now}
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			return uuid.Nil, err
		}
		return row.ID, nil
	}
	_, err = tx.NewUpdate().Model((*credentialRow)(nil)).Set("config = ?", rawJSON(config)).
		Set("version = version + 1").Set("updated_at = ?", now).Where("id = ?", c.row.ID).Exec(ctx)
	return c.row.ID, err
}

// LinkOIDC links subject at provider to identity id, in one transaction
// holding the identity: the identifier "provider:subject" is stored (unique:
// IDENTIFIER_TAKEN when another identity holds it) and the provider added to
// the identity's OIDC credential, which is created when it has none.
// Linking what is linked already changes nothing. The identity must not be
// linked to another subject at the same provider (VALIDATION_FAILED at
// /provider). NOT_FOUND when the identity does not exist.
func (db *DB) LinkOIDC(ctx context.Context, id uuid.UUID, link OIDCProvider, now time.Time) error {
	now = now.UTC()
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := db.lockOIDC(ctx, tx, id)
		if err != nil {
			return err
		}
		for _, l := range c.links {
			switch {
			case l.Provider == link.Provider && l.Subject == link.Subject: // an imported link may carry an organization
				return nil
			case l.Provider == link.Provider:
				return &model.Error{Code: model.CodeValidationFailed, Path: "/provider",
					Message: "another account at this provider is linked already: unlink it first"}
			}
		}
		raw, err := json.Marshal(link)
		if err != nil {
			return err
		}
		c.config.Providers = append(c.config.Providers, raw)
		credID, err := storeOIDC(ctx, tx, id, c, now)
		if err != nil {
			return err
		}
		row := &identifierRow{ID: newID(), IdentityID: id, CredentialID: credID, Type: CredentialOIDC,
			Identifier: OIDCIdentifier(link.Provider, link.Subject), CreatedAt: now, UpdatedAt: now}
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return &model.Error{Code: model.CodeIdentifierTaken, Path: "/provider",
					Message: "this account at the provider is linked to another identity"}
			}
			return err
		}
		return db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventCredentialAdded, id, false, now,
			map[string]any{"credential_type": CredentialOIDC, "provider": link.Provider})})
	})
	db.changed(id)
	return wrap(err)
}

// signInCredentialTypes are the credentials other than OIDC links that an
// identity can sign in with (first factors): a password (with a hash),
// passkeys and WebAuthn keys, and passwordless codes. Second factors (TOTP,
// lookup secrets) are not: they sign nobody in alone.
var signInCredentialTypes = []string{CredentialPassword, "passkey", "webauthn", "code"}

// UnlinkOIDC removes provider's link from identity id, in one transaction
// holding the identity: NOT_FOUND when it is not linked (or the identity
// does not exist), VALIDATION_FAILED at /provider when it is the last way
// the identity can sign in (no password, passkey, code credential or other
// link).
func (db *DB) UnlinkOIDC(ctx context.Context, id uuid.UUID, provider string, now time.Time) error {
	now = now.UTC()
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		c, err := db.lockOIDC(ctx, tx, id)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(c.links, func(l OIDCProvider) bool { return l.Provider == provider })
		if i < 0 {
			return &model.Error{Code: model.CodeNotFound, Path: "/provider", Message: "this provider is not linked"}
		}
		if len(c.links) == 1 {
			var others []credentialRow
			if err := tx.NewSelect().Model(&others).Column("type", "config").
				Where("identity_id = ? AND type IN (?)", id, bun.In(signInCredentialTypes)).Scan(ctx); err != nil {
				return err
			}
			if !slices.ContainsFunc(others, func(r credentialRow) bool { return credentialListed(r.Type, r.Config) }) {
				return &model.Error{Code: model.CodeValidationFailed, Path: "/provider",
					Message: "this is the last way to sign in to this account: set a password or add a passkey first"}
			}
		}
		link := c.links[i]
		c.config.Providers = slices.Delete(c.config.Providers, i, i+1)
		if _, err := storeOIDC(ctx, tx, id, c, now); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model((*identifierRow)(nil)).
			Where("identity_id = ? AND type = ? AND identifier = ?", id, CredentialOIDC, OIDCIdentifier(link.Provider, link.Subject)).
			Exec(ctx)
		if err != nil {
			return err
		}
		return db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventCredentialRemoved, id, false, now,
			map[string]any{"credential_type": CredentialOIDC, "provider": link.Provider})})
	})
	db.changed(id)
	return wrap(err)
}

// CreateIdentityVerified stores a new identity as CreateIdentity does and,
// in the same transaction, marks those of its verifiable addresses that
// verified lists verified (an OpenID Connect provider vouched for them). It
// returns the identity as stored, with every relation.
func (db *DB) CreateIdentityVerified(ctx context.Context, w *IdentityWrite, verified []Address) (*model.Identity, error) {
	now := w.Identity.CreatedAt
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := insertBulk(ctx, tx, []*IdentityWrite{w}); err != nil {
			return err
		}
		if err := db.insertOutbox(ctx, tx, []*IdentityWrite{w}); err != nil {
			return err
		}
		for _, a := range verified {
			if _, err := db.verifyAddress(ctx, tx, w.Identity.ID, a.Via, a.Value, now, "oidc"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, db.explainWriteError(ctx, err, w)
	}
	return db.GetIdentity(ctx, w.Identity.ID, model.AllRelations)
}
