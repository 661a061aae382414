package db

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// PasswordCredential is what a password login needs about an identity.
type PasswordCredential struct {
	IdentityID uuid.UUID
	State      model.IdentityState
	// Hash is empty when the identity has identifiers but no password.
	Hash string
	// Identifiers are the credential's identifiers (for the password policy).
	Identifiers []string
}

// FindPasswordCredential finds the password credential of the first of the
// normalised identifiers, in the order given, that belongs to one; NOT_FOUND
// when none does. Order matters when two identities each hold one of the
// forms (a username "+1 415 555 2671" and a phone number +14155552671): the
// caller lists the most likely form first, and that one wins, the same on
// every database, never whichever row the query plan meets first.
func (db *DB) FindPasswordCredential(ctx context.Context, identifiers []string) (*PasswordCredential, error) {
	if len(identifiers) == 0 {
		return nil, model.Errorf(model.CodeNotFound, "no such identifier")
	}
	var row struct {
		IdentityID uuid.UUID `bun:"identity_id"`
		State      string    `bun:"state"`
		Config     rawJSON   `bun:"config"`
	}
	// Identifiers are unique per type, so each form matches one row at most
	// and its position orders the rows completely.
	var order strings.Builder
	args := make([]any, 0, 2*len(identifiers))
	order.WriteString("CASE ci.identifier")
	for i, id := range identifiers {
		order.WriteString(" WHEN ? THEN ?")
		args = append(args, id, i)
	}
	order.WriteString(" END")
	err := db.bun.NewSelect().TableExpr("identity_credential_identifiers AS ci").
		ColumnExpr("c.identity_id, i.state, c.config").
		Join("JOIN identity_credentials AS c ON c.id = ci.credential_id").
		Join("JOIN identities AS i ON i.id = c.identity_id").
		Where("ci.type = ? AND ci.identifier IN (?)", CredentialPassword, bun.In(identifiers)).
		OrderExpr(order.String(), args...).
		Limit(1).Scan(ctx, &row)
	if err != nil {
		return nil, wrap(notFound(err, "identifier"))
	}
	return db.passwordCredential(ctx, row.IdentityID, row.State, row.Config)
}

// PasswordCredentialOf returns an identity's password credential (the hash
// may be empty); NOT_FOUND when the identity does not exist.
func (db *DB) PasswordCredentialOf(ctx context.Context, identityID uuid.UUID) (*PasswordCredential, error) {
	var row struct {
		State  string  `bun:"state"`
		Config rawJSON `bun:"config"`
	}
	err := db.bun.NewSelect().TableExpr("identities AS i").
		ColumnExpr("i.state, c.config").
		Join("LEFT JOIN identity_credentials AS c ON c.identity_id = i.id AND c.type = ?", CredentialPassword).
		Where("i.id = ?", identityID).Scan(ctx, &row)
	if err != nil {
		return nil, wrap(notFound(err, "identity"))
	}
	return db.passwordCredential(ctx, identityID, row.State, row.Config)
}

func (db *DB) passwordCredential(ctx context.Context, id uuid.UUID, state string, config rawJSON) (*PasswordCredential, error) {
	var cfg struct {
		HashedPassword string `json:"hashed_password"`
	}
	if len(config) > 0 {
		_ = json.Unmarshal(config, &cfg)
	}
	out := &PasswordCredential{IdentityID: id, State: stateFromDB(state), Hash: cfg.HashedPassword}
	if err := db.bun.NewSelect().Model((*identifierRow)(nil)).Column("identifier").
		Where("identity_id = ? AND type = ?", id, CredentialPassword).Scan(ctx, &out.Identifiers); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// ReplacePasswordHash swaps an identity's password hash if it still is old,
// so a login's rehash never overwrites a password changed meanwhile. It
// reports whether it did.
func (db *DB) ReplacePasswordHash(ctx context.Context, identityID uuid.UUID, old, hash string, now time.Time) (bool, error) {
	res, err := db.bun.NewUpdate().Model((*credentialRow)(nil)).
		Set("config = ?", passwordConfig(hash)).Set("updated_at = ?", now.UTC()).
		Where("identity_id = ? AND type = ?", identityID, CredentialPassword).
		Where("CAST(config AS TEXT) = ?", string(passwordConfig(old))).
		Exec(ctx)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetPassword sets an identity's password hash, creating the password
// credential if it has none, and, when keep is not nil, ends every other
// active session of the identity: all in one transaction, so a password
// change never lands without the sessions it was meant to end.
func (db *DB) SetPassword(ctx context.Context, identityID uuid.UUID, hash string, now time.Time, keep *uuid.UUID) error {
	now = now.UTC()
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := db.setPassword(ctx, tx, identityID, hash, now, false); err != nil {
			return err
		}
		if keep != nil {
			_, err := db.revokeSessionsEvent(ctx, tx, identityID, *keep, now, false)
			return err
		}
		return nil
	})
	db.changed(identityID)
	return wrap(err)
}

// setPassword is setPasswordHash with its event: password.changed, or
// credential.added when the identity had no password; self when the
// identity itself (recovering) sets it.
func (db *DB) setPassword(ctx context.Context, idb bun.IDB, identityID uuid.UUID, hash string, now time.Time, self bool) error {
	created, err := setPasswordHash(ctx, idb, identityID, hash, now)
	if err != nil {
		return err
	}
	e := model.NewEvent(ctx, model.EventPasswordChanged, identityID, self, now)
	if created {
		e = credentialEvent(ctx, model.EventCredentialAdded, identityID, self, now, CredentialPassword)
	}
	return db.insertEvents(ctx, idb, []*model.Event{e})
}

// setPasswordHash sets an identity's password hash inside the caller's
// transaction, creating the password credential if it has none (created).
func setPasswordHash(ctx context.Context, idb bun.IDB, identityID uuid.UUID, hash string, now time.Time) (created bool, err error) {
	now = now.UTC()
	res, err := idb.NewUpdate().Model((*credentialRow)(nil)).
		Set("config = ?", passwordConfig(hash)).Set("updated_at = ?", now).
		Where("identity_id = ? AND type = ?", identityID, CredentialPassword).Exec(ctx)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		row := &credentialRow{ID: newID(), IdentityID: identityID, Type: CredentialPassword, Config: passwordConfig(hash), CreatedAt: now, UpdatedAt: now}
		if _, err := idb.NewInsert().Model(row).Exec(ctx); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}
