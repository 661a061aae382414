package db

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// Authenticator assurance levels as stored (Kratos's words).
const (
	AAL1 = "aal1"
	AAL2 = "aal2"
)

// secondFactorTypes are the credential types that lift a session to AAL2.
var secondFactorTypes = []string{CredentialTOTP, CredentialLookupSecret}

// hasSecret is the condition of a credential that holds a secret. A schema
// that marks a trait `totp.account_name` gives every identity a TOTP
// credential row for that identifier, with the empty config every
// credential without a secret has (see credentialListed): that row is no
// second factor.
const hasSecret = "CAST(config AS TEXT) <> '{}'"

// SecondFactor is a second-factor credential to store: its type and its
// config, made by the service (a TOTP key sealed, lookup secrets hashed).
type SecondFactor struct {
	Type   string
	Config []byte
}

// StoredSecondFactor is a second-factor credential as stored, secret config
// included, for the service to check a code against. Version changes with
// every write, so a use of the credential is a compare-and-set on it.
type StoredSecondFactor struct {
	ID        uuid.UUID
	Type      string
	Config    []byte
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SessionLift lifts a session to AAL2 in the same transaction as the write
// that proved the second factor: Methods is the session's new list, ending
// with the second factor.
type SessionLift struct {
	SessionID  uuid.UUID
	IdentityID uuid.UUID
	Methods    []*model.AuthenticationMethod
	// AuthenticatedAt is when the second factor was proved: the session
	// signed in again, so its privileged window starts over.
	AuthenticatedAt time.Time
}

// SecondFactors returns an identity's second-factor credentials (none: an
// empty list, also for an unknown identity).
func (db *DB) SecondFactors(ctx context.Context, identityID uuid.UUID) ([]StoredSecondFactor, error) {
	var rows []credentialRow
	err := db.bun.NewSelect().Model(&rows).
		Where("identity_id = ? AND type IN (?)", identityID, bun.In(secondFactorTypes)).
		Where(hasSecret).OrderExpr("type").Scan(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]StoredSecondFactor, len(rows))
	for i, r := range rows {
		out[i] = StoredSecondFactor{ID: r.ID, Type: r.Type, Config: r.Config, Version: r.Version,
			CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	}
	return out, nil
}

// PutSecondFactor stores an identity's credential of f.Type, replacing one
// of that type unless mustBeNew (then an existing one is CONFLICT), sets the
// identity's available_aal to AAL2, drops a pending TOTP setup when f is a
// TOTP key, and lifts a session when lift is not nil: one transaction.
func (db *DB) PutSecondFactor(ctx context.Context, identityID uuid.UUID, f SecondFactor, mustBeNew bool, lift *SessionLift, now time.Time) error {
	now = now.UTC()
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*credentialRow)(nil)).
			Set("config = ?", rawJSON(f.Config)).Set("version = version + 1").Set("updated_at = ?", now).
			Where("identity_id = ? AND type = ?", identityID, f.Type)
		if mustBeNew {
			q = q.Where("CAST(config AS TEXT) = '{}'") // only a row without a secret
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			row := &credentialRow{ID: newID(), IdentityID: identityID, Type: f.Type, Config: rawJSON(f.Config), CreatedAt: now, UpdatedAt: now}
			if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
				if isUniqueViolation(err) {
					return model.Errorf(model.CodeConflict, "a %s credential is set up already: remove it first", f.Type)
				}
				if isForeignKeyViolation(err) {
					return model.Errorf(model.CodeNotFound, "identity %s not found", identityID)
				}
				return err
			}
		}
		if f.Type == CredentialTOTP {
			if _, err := tx.NewDelete().TableExpr("totp_setups").Where("identity_id = ?", identityID).Exec(ctx); err != nil {
				return err
			}
		}
		if _, err := setAvailableAAL(ctx, tx, identityID, AAL2); err != nil {
			return err
		}
		if err := db.insertEvents(ctx, tx, []*model.Event{credentialEvent(ctx, model.EventCredentialAdded, identityID, false, now, f.Type)}); err != nil {
			return err
		}
		return liftSession(ctx, tx, lift, now)
	})
	db.changed(identityID)
	return wrap(err)
}

// UseSecondFactor writes a credential's new config (a TOTP key's last used
// step, a lookup secret marked used) if its version is still version, and
// lifts the session in the same transaction. It reports false, writing
// nothing, when another request used the credential meanwhile: the code is
// then refused, so that a code is never accepted twice, however close the
// requests.
func (db *DB) UseSecondFactor(ctx context.Context, f StoredSecondFactor, config []byte, lift *SessionLift, now time.Time) (bool, error) {
	now = now.UTC()
	won := false
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*credentialRow)(nil)).
			Set("config = ?", rawJSON(config)).Set("version = version + 1").Set("updated_at = ?", now).
			Where("id = ? AND version = ?", f.ID, f.Version).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		won = true
		if lift != nil {
			e := newEventData(ctx, model.EventSecondFactorUsed, lift.IdentityID, true, now,
				map[string]any{"method": f.Type, "session_id": lift.SessionID})
			if err := db.insertEvents(ctx, tx, []*model.Event{e}); err != nil {
				return err
			}
		}
		return liftSession(ctx, tx, lift, now)
	})
	if lift != nil {
		db.changed(lift.IdentityID)
	}
	return won && err == nil, wrap(err)
}

// DeleteSecondFactor removes an identity's credential of type typ (NOT_FOUND
// when it has none), sets its available_aal to what is left and, when
// endAAL2, ends its AAL2 sessions (an admin removing a lost factor: whoever
// holds the factor is signed out): one transaction. It returns how many
// sessions ended.
func (db *DB) DeleteSecondFactor(ctx context.Context, identityID uuid.UUID, typ string, endAAL2 bool, now time.Time) (int, error) {
	now = now.UTC()
	ended := 0
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// Emptied rather than deleted: a row that the schema's identifiers
		// still point at stays, without a secret, as writes leave it.
		res, err := tx.NewUpdate().Model((*credentialRow)(nil)).
			Set("config = '{}'").Set("version = version + 1").Set("updated_at = ?", now).
			Where("identity_id = ? AND type = ?", identityID, typ).Where(hasSecret).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return model.Errorf(model.CodeNotFound, "the identity has no %s credential", typ)
		}
		if _, err := refreshAvailableAAL(ctx, tx, identityID); err != nil {
			return err
		}
		if err := db.insertEvents(ctx, tx, []*model.Event{credentialEvent(ctx, model.EventCredentialRemoved, identityID, false, now, typ)}); err != nil {
			return err
		}
		if endAAL2 {
			res, err := tx.NewUpdate().Model((*sessionRow)(nil)).
				Set("active = ?", false).Set("updated_at = ?", now).
				Where("identity_id = ? AND active = ? AND aal = ?", identityID, true, AAL2).Exec(ctx)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			if ended = int(n); ended > 0 {
				return db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventSessionRevoked, identityID, false, now,
					map[string]any{"count": ended})})
			}
		}
		return nil
	})
	db.changed(identityID)
	return ended, wrap(err)
}

type totpSetupRow struct {
	bun.BaseModel `bun:"table:totp_setups"`

	IdentityID uuid.UUID `bun:"identity_id,pk"`
	SealedURL  string    `bun:"sealed_url"`
	ExpiresAt  time.Time `bun:"expires_at"`
	CreatedAt  time.Time `bun:"created_at"`
}

// PutTOTPSetup keeps a TOTP key being set up (sealed) until expiresAt,
// replacing any earlier one of the identity.
func (db *DB) PutTOTPSetup(ctx context.Context, identityID uuid.UUID, sealedURL string, expiresAt, now time.Time) error {
	row := &totpSetupRow{IdentityID: identityID, SealedURL: sealedURL, ExpiresAt: expiresAt.UTC(), CreatedAt: now.UTC()}
	_, err := db.bun.NewInsert().Model(row).
		On("CONFLICT (identity_id) DO UPDATE").
		Set("sealed_url = EXCLUDED.sealed_url, expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at").
		Exec(ctx)
	if isForeignKeyViolation(err) {
		return model.Errorf(model.CodeNotFound, "identity %s not found", identityID)
	}
	return wrap(err)
}

// TOTPSetup returns the sealed key being set up for the identity; NOT_FOUND
// when there is none or it expired.
func (db *DB) TOTPSetup(ctx context.Context, identityID uuid.UUID, now time.Time) (string, error) {
	var sealed string
	err := db.bun.NewSelect().TableExpr("totp_setups").Column("sealed_url").
		Where("identity_id = ? AND expires_at > ?", identityID, now.UTC()).Scan(ctx, &sealed)
	if err != nil {
		return "", wrap(notFound(err, "pending TOTP setup"))
	}
	return sealed, nil
}

// PruneTOTPSetups deletes expired TOTP setups, returning how many.
func (db *DB) PruneTOTPSetups(ctx context.Context, now time.Time) (int, error) {
	res, err := db.bun.NewDelete().TableExpr("totp_setups").Where("expires_at <= ?", now.UTC()).Exec(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// liftSession applies lift (nil: nothing) inside the caller's transaction.
// Only an active session is lifted; one ended meanwhile fails the whole
// write with UNAUTHENTICATED, so a code is not spent on it.
func liftSession(ctx context.Context, tx bun.Tx, lift *SessionLift, now time.Time) error {
	if lift == nil {
		return nil
	}
	res, err := tx.NewUpdate().Model((*sessionRow)(nil)).
		Set("aal = ?", AAL2).Set("authentication_methods = ?", methodsToDB(lift.Methods)).
		Set("authenticated_at = ?", lift.AuthenticatedAt.UTC()).Set("updated_at = ?", now).
		Where("id = ? AND identity_id = ? AND active = ?", lift.SessionID, lift.IdentityID, true).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errUnauthenticated()
	}
	return nil
}

// setAvailableAAL sets an identity's available_aal, writing (and so
// notifying the session caches of other processes) only when it changes.
func setAvailableAAL(ctx context.Context, idb bun.IDB, identityID uuid.UUID, aal string) (string, error) {
	_, err := idb.NewUpdate().Model((*identityRow)(nil)).Set("available_aal = ?", aal).
		Where("id = ? AND available_aal <> ?", identityID, aal).Exec(ctx)
	return aal, err
}

// refreshAvailableAAL sets an identity's available_aal from the second
// factors it has now, and returns it.
func refreshAvailableAAL(ctx context.Context, idb bun.IDB, identityID uuid.UUID) (string, error) {
	n, err := idb.NewSelect().Model((*credentialRow)(nil)).
		Where("identity_id = ? AND type IN (?)", identityID, bun.In(secondFactorTypes)).Where(hasSecret).Count(ctx)
	if err != nil {
		return "", err
	}
	aal := AAL1
	if n > 0 {
		aal = AAL2
	}
	return setAvailableAAL(ctx, idb, identityID, aal)
}
