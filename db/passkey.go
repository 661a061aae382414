package db

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// CredentialPasskey is the credential type of passkeys, as Kratos names it.
// Its config is Kratos's layout ({"credentials": [...], "user_handle": ...},
// made by internal/passkey), and its identifier row is the user handle, so
// that a discoverable sign-in finds the identity by it.
const CredentialPasskey = "passkey"

// Kinds of passkey ceremonies, as stored.
const (
	PasskeyRegistration = "registration"
	PasskeyLogin        = "login"
)

// passkeyLookupTypes are the identifier types a person types to sign in: a
// passkey sign-in with an identifier looks them up. (Passkey and TOTP
// identifiers are names shown to the user, or user handles.)
var passkeyLookupTypes = []string{CredentialPassword, "code", "webauthn"}

// firstFactorTypes are the credential types other than passkeys that sign
// an identity in on their own (second factors do not).
var firstFactorTypes = []string{CredentialPassword, CredentialOIDC, "webauthn", "code"}

// PasskeyCredential is an identity's passkey credential as stored, for the
// passkey service to read and change.
type PasskeyCredential struct {
	IdentityID uuid.UUID
	State      model.IdentityState
	// Config is the stored config: nil when the identity has no passkey
	// credential row, "{}" for a row without passkeys.
	Config []byte
	// Version changes with every write of the config: a sign-in's counter
	// update is a compare-and-set on it (UsePasskey).
	Version int
	// OtherSignIn lists the other credentials the identity can sign in
	// with (first factors that hold their secret: a password hash, an OpenID
	// Connect link, WebAuthn keys, passwordless codes), by type. Filled by
	// UpdatePasskeys only, in its transaction.
	OtherSignIn []string
}

// PasskeyUpdate is UpdatePasskeys' result of a change: the new config and
// the user handle it names.
type PasskeyUpdate struct {
	// Config is the new config; "{}" when no passkey is left.
	Config []byte
	// UserHandle is the identity's user handle (as its raw bytes, a string);
	// its identifier row is kept while Config holds passkeys and dropped
	// with the last one.
	UserHandle string
	// Events are written in the same transaction (credential.added or
	// credential.removed, made by the service).
	Events []*model.Event
}

// passkeyCredentialRow is a passkey credential with its identity's state.
type passkeyCredentialRow struct {
	IdentityID uuid.UUID     `bun:"identity_id"`
	State      string        `bun:"state"`
	Config     rawJSON       `bun:"config"`
	Version    sql.NullInt64 `bun:"version"`
}

func (r *passkeyCredentialRow) model() *PasskeyCredential {
	return &PasskeyCredential{IdentityID: r.IdentityID, State: stateFromDB(r.State), Config: r.Config, Version: int(r.Version.Int64)}
}

// PasskeyCredentialOf returns an identity's passkey credential (Config nil
// when it has none); NOT_FOUND when the identity does not exist.
func (db *DB) PasskeyCredentialOf(ctx context.Context, identityID uuid.UUID) (*PasskeyCredential, error) {
	var row passkeyCredentialRow
	err := db.bun.NewSelect().TableExpr("identities AS i").
		ColumnExpr("i.id AS identity_id, i.state, c.config, c.version").
		Join("LEFT JOIN identity_credentials AS c ON c.identity_id = i.id AND c.type = ?", CredentialPasskey).
		Where("i.id = ?", identityID).Scan(ctx, &row)
	if err != nil {
		return nil, wrap(notFound(err, "identity"))
	}
	return row.model(), nil
}

// FindPasskeyCredential finds the passkey credential whose user handle is
// handle; NOT_FOUND when none is. It looks the handle up among the
// credential identifiers (its bytes as a string, as Kratos stores it), and
// then in the configs themselves: an identity write rebuilds identifier rows
// from the traits, so the row may be gone while the passkeys stay, and a
// handle imported from elsewhere may be bytes no identifier can hold. The
// caller still compares the config's handle with the one it was given.
func (db *DB) FindPasskeyCredential(ctx context.Context, handle []byte) (*PasskeyCredential, error) {
	if len(handle) == 0 || len(handle) > 64 {
		return nil, model.Errorf(model.CodeNotFound, "no such user handle")
	}
	var row passkeyCredentialRow
	if utf8.Valid(handle) && !bytes.ContainsRune(handle, 0) {
		err := db.bun.NewSelect().TableExpr("identity_credential_identifiers AS ci").
			ColumnExpr("c.identity_id, i.state, c.config, c.version").
			Join("JOIN identity_credentials AS c ON c.id = ci.credential_id AND c.type = ?", CredentialPasskey).
			Join("JOIN identities AS i ON i.id = c.identity_id").
			Where("ci.type = ? AND ci.identifier = ?", CredentialPasskey, string(handle)).
			Limit(1).Scan(ctx, &row)
		if err == nil {
			return row.model(), nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, wrap(err)
		}
	}
	// The literal type and the expression are the partial index's own
	// (identity_credentials_passkey_handle_idx), so both engines use it.
	handleExpr := "json_extract(c.config, '$.user_handle')"
	if db.kind == Postgres {
		handleExpr = "(c.config->>'user_handle')"
	}
	err := db.bun.NewSelect().TableExpr("identity_credentials AS c").
		ColumnExpr("c.identity_id, i.state, c.config, c.version").
		Join("JOIN identities AS i ON i.id = c.identity_id").
		Where("c.type = '"+CredentialPasskey+"' AND "+handleExpr+" = ?", base64.StdEncoding.EncodeToString(handle)).
		Limit(1).Scan(ctx, &row)
	if err != nil {
		return nil, wrap(notFound(err, "passkey"))
	}
	return row.model(), nil
}

// PasskeyUserNames returns an identity's identifiers that can name it to a
// passkey manager: passkey display names first, then login identifiers,
// each type in byte order.
func (db *DB) PasskeyUserNames(ctx context.Context, identityID uuid.UUID) ([]Identifier, error) {
	types := append([]string{CredentialPasskey}, passkeyLookupTypes...)
	var rows []identifierRow
	if err := db.bun.NewSelect().Model(&rows).Column("type", "identifier").
		Where("identity_id = ? AND type IN (?)", identityID, bun.In(types)).Scan(ctx); err != nil {
		return nil, wrap(err)
	}
	slices.SortFunc(rows, func(a, b identifierRow) int {
		return cmp.Or(cmp.Compare(slices.Index(types, a.Type), slices.Index(types, b.Type)), strings.Compare(a.Identifier, b.Identifier))
	})
	out := make([]Identifier, len(rows))
	for i, r := range rows {
		out[i] = Identifier{Type: r.Type, Value: r.Identifier}
	}
	return out, nil
}

// FindLoginIdentity returns the identity that holds the first of the
// normalised login identifiers (password, code or WebAuthn identifiers), in
// the order given; NOT_FOUND when none does.
func (db *DB) FindLoginIdentity(ctx context.Context, identifiers []string) (uuid.UUID, error) {
	if len(identifiers) == 0 {
		return uuid.Nil, model.Errorf(model.CodeNotFound, "no such identifier")
	}
	var order strings.Builder
	args := make([]any, 0, 2*len(identifiers))
	order.WriteString("CASE identifier")
	for i, id := range identifiers {
		order.WriteString(" WHEN ? THEN ?")
		args = append(args, id, i)
	}
	order.WriteString(" END, type")
	var id uuid.UUID
	err := db.bun.NewSelect().Model((*identifierRow)(nil)).Column("identity_id").
		Where("type IN (?) AND identifier IN (?)", bun.In(passkeyLookupTypes), bun.In(identifiers)).
		OrderExpr(order.String(), args...).Limit(1).Scan(ctx, &id)
	if err != nil {
		return uuid.Nil, wrap(notFound(err, "identifier"))
	}
	return id, nil
}

// UpdatePasskeys changes an identity's passkeys in one transaction that
// holds the identity (PostgreSQL locks its row; SQLite's write transaction
// holds the database), so that two changes, or a change and the removal of
// another way to sign in, cannot interleave. change sees the credential as
// stored (Config nil when there is none) with OtherSignIn, and
// returns the new config; its error aborts everything. The user handle's
// identifier row is written with the first passkey (and again if an
// identity write dropped it), and dropped with the last; a credential left
// without passkeys and without identifiers is deleted, one that the schema
// still gives identifiers keeps its row, empty.
func (db *DB) UpdatePasskeys(ctx context.Context, identityID uuid.UUID, now time.Time, change func(cur *PasskeyCredential) (*PasskeyUpdate, error)) error {
	now = now.UTC()
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var state string
		q := tx.NewSelect().Model((*identityRow)(nil)).Column("state").Where("id = ?", identityID)
		if db.kind == Postgres {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx, &state); err != nil {
			return notFound(err, "identity")
		}
		var rows []credentialRow
		if err := tx.NewSelect().Model(&rows).
			Where("identity_id = ? AND type IN (?)", identityID, bun.In(append([]string{CredentialPasskey}, firstFactorTypes...))).
			OrderExpr("type").Scan(ctx); err != nil {
			return err
		}
		cur := &PasskeyCredential{IdentityID: identityID, State: stateFromDB(state)}
		var credID uuid.UUID
		for _, r := range rows {
			switch {
			case r.Type == CredentialPasskey:
				cur.Config, cur.Version, credID = r.Config, r.Version, r.ID
			case credentialListed(r.Type, r.Config):
				cur.OtherSignIn = append(cur.OtherSignIn, r.Type)
			}
		}
		up, err := change(cur)
		if err != nil {
			return err
		}
		empty := string(up.Config) == "{}"
		switch {
		case credID != uuid.Nil:
			if _, err := tx.NewUpdate().Model((*credentialRow)(nil)).
				Set("config = ?", rawJSON(up.Config)).Set("version = version + 1").Set("updated_at = ?", now).
				Where("id = ?", credID).Exec(ctx); err != nil {
				return err
			}
		case !empty:
			credID = newID()
			row := &credentialRow{ID: credID, IdentityID: identityID, Type: CredentialPasskey, Config: rawJSON(up.Config), CreatedAt: now, UpdatedAt: now}
			if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
				return err
			}
		default:
			return nil // no credential, and none to make
		}
		if err := db.insertEvents(ctx, tx, up.Events); err != nil {
			return err
		}
		if up.UserHandle == "" {
			return nil
		}
		if !empty {
			// A handle is 64 random characters: it can only collide with
			// itself, the row written before.
			_, err := tx.NewInsert().Model(&identifierRow{ID: newID(), IdentityID: identityID, CredentialID: credID,
				Type: CredentialPasskey, Identifier: up.UserHandle, CreatedAt: now, UpdatedAt: now}).
				On("CONFLICT (type, identifier) DO NOTHING").Exec(ctx)
			return err
		}
		if _, err := tx.NewDelete().Model((*identifierRow)(nil)).
			Where("identity_id = ? AND type = ? AND identifier = ?", identityID, CredentialPasskey, up.UserHandle).Exec(ctx); err != nil {
			return err
		}
		left, err := tx.NewSelect().Model((*identifierRow)(nil)).Where("credential_id = ?", credID).Exists(ctx)
		if err != nil || left {
			return err
		}
		_, err = tx.NewDelete().Model((*credentialRow)(nil)).Where("id = ?", credID).Exec(ctx)
		return err
	})
	db.changed(identityID)
	return wrap(err)
}

// UsePasskey writes an identity's passkey config after a sign-in (the
// passkey's new sign counter, when it was last used) if its version is
// still version. It reports false, writing nothing, when another write came
// first: the caller reads again and checks the counter against what that
// write left, so two sign-ins can never both move a counter from the same
// value.
func (db *DB) UsePasskey(ctx context.Context, identityID uuid.UUID, version int, config []byte, now time.Time) (bool, error) {
	res, err := db.bun.NewUpdate().Model((*credentialRow)(nil)).
		Set("config = ?", rawJSON(config)).Set("version = version + 1").Set("updated_at = ?", now.UTC()).
		Where("identity_id = ? AND type = ? AND version = ?", identityID, CredentialPasskey, version).Exec(ctx)
	if err != nil {
		return false, wrap(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// PasskeyChallenge is a passkey ceremony begun: go-webauthn's session data
// (as JSON), kept until the ceremony finishes or expires.
type PasskeyChallenge struct {
	ID uuid.UUID
	// IdentityID is the identity registering, or signing in with an
	// identifier; nil for a discoverable sign-in (and for one whose
	// identifier has no account).
	IdentityID  *uuid.UUID
	Kind        string
	SessionData []byte
	// ClientKey names the client a sign-in came from (an address); empty
	// when unknown. Stored as its SHA-256.
	ClientKey string
	ExpiresAt time.Time
	CreatedAt time.Time
}

type passkeyChallengeRow struct {
	bun.BaseModel `bun:"table:passkey_challenges"`

	ID          uuid.UUID  `bun:"id,pk"`
	IdentityID  *uuid.UUID `bun:"identity_id"`
	Kind        string     `bun:"kind"`
	SessionData rawJSON    `bun:"session_data"`
	ClientKey   []byte     `bun:"client_key"`
	ExpiresAt   time.Time  `bun:"expires_at"`
	CreatedAt   time.Time  `bun:"created_at"`
}

func clientKeyHash(key string) []byte {
	if key == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// PutPasskeyChallenge stores a ceremony begun and keeps at most keep open
// ceremonies of its identity (registrations) or of its client (sign-ins)
// by deleting the oldest beyond that, in the same transaction: nobody can
// grow the table without bound, and the newest ceremony always works.
func (db *DB) PutPasskeyChallenge(ctx context.Context, c *PasskeyChallenge, keep int) error {
	row := &passkeyChallengeRow{ID: c.ID, IdentityID: c.IdentityID, Kind: c.Kind, SessionData: rawJSON(c.SessionData),
		ClientKey: clientKeyHash(c.ClientKey), ExpiresAt: c.ExpiresAt.UTC(), CreatedAt: c.CreatedAt.UTC()}
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			if isForeignKeyViolation(err) {
				return model.Errorf(model.CodeNotFound, "identity not found")
			}
			return err
		}
		var col string
		var val any
		switch {
		case c.Kind == PasskeyRegistration && c.IdentityID != nil:
			col, val = "identity_id", *c.IdentityID
		case c.Kind == PasskeyLogin && row.ClientKey != nil:
			col, val = "client_key", row.ClientKey
		default:
			return nil
		}
		// Ids are UUIDv7: by id is by creation.
		newest := tx.NewSelect().Model((*passkeyChallengeRow)(nil)).Column("id").
			Where("kind = ? AND "+col+" = ?", c.Kind, val).OrderExpr("id DESC").Limit(int64(keep))
		_, err := tx.NewDelete().Model((*passkeyChallengeRow)(nil)).
			Where("kind = ? AND "+col+" = ?", c.Kind, val).Where("id NOT IN (?)", newest).Exec(ctx)
		return err
	})
	return wrap(err)
}

// OpenPasskeyChallenges counts the stored ceremonies, up to limit (so that
// a full table costs no more than limit index entries to count).
func (db *DB) OpenPasskeyChallenges(ctx context.Context, limit int) (int, error) {
	var n int
	err := db.bun.NewSelect().TableExpr("(?) AS o",
		db.bun.NewSelect().Model((*passkeyChallengeRow)(nil)).ColumnExpr("1").Limit(int64(limit))).
		ColumnExpr("count(*)").Scan(ctx, &n)
	return n, wrap(err)
}

// TakePasskeyChallenge removes and returns the unexpired ceremony id of
// kind, of identityID when it is not nil, in one statement: of two requests
// finishing one ceremony, exactly one gets it. NOT_FOUND when there is none
// (unknown, used, expired, or another identity's).
func (db *DB) TakePasskeyChallenge(ctx context.Context, id uuid.UUID, kind string, identityID *uuid.UUID, now time.Time) (*PasskeyChallenge, error) {
	var rows []passkeyChallengeRow
	q := db.bun.NewDelete().Model((*passkeyChallengeRow)(nil)).
		Where("id = ? AND kind = ? AND expires_at > ?", id, kind, now.UTC())
	if identityID != nil {
		q = q.Where("identity_id = ?", *identityID)
	}
	if _, err := q.Returning("*").Exec(ctx, &rows); err != nil {
		return nil, wrap(err)
	}
	if len(rows) == 0 {
		return nil, model.Errorf(model.CodeNotFound, "no such challenge")
	}
	r := rows[0]
	return &PasskeyChallenge{ID: r.ID, IdentityID: r.IdentityID, Kind: r.Kind, SessionData: r.SessionData,
		ExpiresAt: r.ExpiresAt.UTC(), CreatedAt: r.CreatedAt.UTC()}, nil
}

// PrunePasskeyChallenges deletes expired ceremonies, returning how many.
func (db *DB) PrunePasskeyChallenges(ctx context.Context, now time.Time) (int, error) {
	res, err := db.bun.NewDelete().Model((*passkeyChallengeRow)(nil)).Where("expires_at <= ?", now.UTC()).Exec(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
