package db

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// Purposes of one-time codes, as stored.
const (
	PurposeVerification = "verification"
	PurposeRecovery     = "recovery"
	PurposeInvitation   = "invitation"
	PurposeLogin        = "login"
)

// CredentialCode is the credential type of the `ory.sh/kratos` mark
// `"code": {"identifier": true, "via": …}`: a trait a sign-in code may be
// sent to (Kratos's passwordless code).
const CredentialCode = "code"

// loginIdentifierTypes are the credential types whose identifiers a person
// types to sign in. A sign-in code goes to one of them that is also an
// address (see LoginCodeAddress); passkey display names and TOTP account
// names are labels, not identifiers.
var loginIdentifierTypes = []string{CredentialCode, CredentialPassword, "webauthn"}

// codeVia is the channel of a `code` identifier: the extension normalises
// it for its channel, so an email address has an @ and a phone number
// (E.164) never does.
func codeVia(value string) string {
	if strings.Contains(value, "@") {
		return model.ViaEmail
	}
	return model.ViaSMS
}

// LoginCodeAddress is where an identity's sign-in codes go, of those a new
// identity's write w holds: its first `code` identifier (Kratos's mark for
// it), else its first login identifier that is also one of its verifiable
// or recovery addresses (so a schema marked for passwords and verification,
// such as preset://email, works unchanged), in the traits' order. False
// when there is none. requestLoginCode finds identities by the same rule
// (loginCodeTargets).
func LoginCodeAddress(w *IdentityWrite) (Address, bool) {
	for _, id := range w.Identifiers {
		if id.Type == CredentialCode {
			return Address{Via: codeVia(id.Value), Value: id.Value, Path: id.Path}, true
		}
	}
	for _, id := range w.Identifiers {
		if !slices.Contains(loginIdentifierTypes, id.Type) {
			continue
		}
		for _, as := range [][]Address{w.VerifiableAddresses, w.RecoveryAddresses} {
			for _, a := range as {
				if a.Value == id.Value {
					return Address{Via: a.Via, Value: a.Value, Path: id.Path}, true
				}
			}
		}
	}
	return Address{}, false
}

// Code is a one-time code as stored: its keyed hash, never the code. It only
// travels between internal/code and storage: no model type holds it.
type Code struct {
	ID         uuid.UUID
	Purpose    string
	IdentityID uuid.UUID
	// Via and Address are where the code went; empty for an admin-issued
	// recovery code, which support staff hand over themselves.
	Via, Address string
	// Long codes (128 bits and more) are found by their hash; short ones by
	// Purpose and Address, and they count wrong attempts.
	Long      bool
	Hash      []byte
	Attempts  int
	ExpiresAt time.Time
	CreatedAt time.Time
}

type codeRow struct {
	bun.BaseModel `bun:"table:codes"`

	ID         uuid.UUID  `bun:"id,pk"`
	Purpose    string     `bun:"purpose"`
	IdentityID uuid.UUID  `bun:"identity_id"`
	Via        string     `bun:"via"`
	Address    string     `bun:"address"`
	Long       bool       `bun:"long"`
	Hash       []byte     `bun:"hash"`
	Attempts   int        `bun:"attempts"`
	ExpiresAt  time.Time  `bun:"expires_at"`
	UsedAt     *time.Time `bun:"used_at"`
	CreatedAt  time.Time  `bun:"created_at"`
}

func newCodeRow(c *Code) *codeRow {
	return &codeRow{ID: c.ID, Purpose: c.Purpose, IdentityID: c.IdentityID, Via: c.Via, Address: c.Address,
		Long: c.Long, Hash: c.Hash, Attempts: c.Attempts, ExpiresAt: c.ExpiresAt.UTC(), CreatedAt: c.CreatedAt.UTC()}
}

func (r *codeRow) code() *Code {
	return &Code{ID: r.ID, Purpose: r.Purpose, IdentityID: r.IdentityID, Via: r.Via, Address: r.Address,
		Long: r.Long, Hash: r.Hash, Attempts: r.Attempts, ExpiresAt: r.ExpiresAt.UTC(), CreatedAt: r.CreatedAt.UTC()}
}

// codeColumns are what a redeem reads back of a code.
var codeColumns = []string{"id", "purpose", "identity_id", "via", "address", "long", "hash", "attempts", "expires_at", "created_at"}

// errInvalidCode is the one answer for a wrong, used, expired or dead code.
func errInvalidCode() error {
	return &model.Error{Code: model.CodeInvalidCode, Path: "/code", Message: "the code is wrong, used or expired: ask for a new one"}
}

// insertCodes stores codes inside the caller's transaction, so a code exists
// only if the write (and the message carrying it) does.
func insertCodes(ctx context.Context, idb bun.IDB, codes []*Code) error {
	if len(codes) == 0 {
		return nil
	}
	rows := make([]*codeRow, len(codes))
	for i, c := range codes {
		rows[i] = newCodeRow(c)
	}
	_, err := idb.NewInsert().Model(&rows).Exec(ctx)
	return err
}

// IssueCode stores a code and the message that carries it (nil for a code
// handed over by an admin) in one transaction; NOT_FOUND when the code's
// identity does not exist.
func (db *DB) IssueCode(ctx context.Context, c *Code, msg *model.CourierMessage) error {
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		found, err := tx.NewSelect().Model((*identityRow)(nil)).ColumnExpr("1").Where("id = ?", c.IdentityID).Exists(ctx)
		if err != nil {
			return err
		}
		if !found {
			return model.Errorf(model.CodeNotFound, "identity %s not found", c.IdentityID)
		}
		if err := insertCodes(ctx, tx, []*Code{c}); err != nil {
			return err
		}
		if msg == nil {
			return nil
		}
		return insertMessages(ctx, tx, []*model.CourierMessage{msg})
	})
	return wrap(err)
}

// ReserveCodeAttempt charges one attempt to every live short code of purpose
// sent to any of addresses (unused, unexpired, with attempts left), before
// the code typed is compared with them, and returns them. Charged first and
// atomically, so a burst of guesses cannot compare more than the allowed
// number against a code, and every live code of an address pays for each
// guess, so asking for several codes buys no extra guesses.
func (db *DB) ReserveCodeAttempt(ctx context.Context, purpose string, addresses []string, now time.Time, maxAttempts int) ([]*Code, error) {
	if len(addresses) == 0 {
		return nil, nil
	}
	var rows []*codeRow
	_, err := db.bun.NewUpdate().Model((*codeRow)(nil)).
		Set("attempts = attempts + 1").
		Where("purpose = ? AND address IN (?) AND NOT long AND used_at IS NULL", purpose, bun.In(addresses)).
		Where("expires_at > ? AND attempts < ?", now.UTC(), maxAttempts).
		Returning(strings.Join(codeColumns, ", ")).Exec(ctx, &rows)
	if err != nil {
		return nil, wrap(err)
	}
	out := make([]*Code, len(rows))
	for i, r := range rows {
		out[i] = r.code()
	}
	return out, nil
}

// RefundCodeAttempt gives back the attempt a right code was charged when
// what it was for could not happen (a new password that breaks the policy),
// so the person can try again with the same code.
func (db *DB) RefundCodeAttempt(ctx context.Context, id uuid.UUID) error {
	_, err := db.bun.NewUpdate().Model((*codeRow)(nil)).Set("attempts = attempts - 1").
		Where("id = ? AND attempts > 0", id).Exec(ctx)
	return wrap(err)
}

// FindLongCode returns the live long code of one of purposes whose hash is
// one of hashes (one per secret: see internal/code); INVALID_CODE when there
// is none. The hashes are keyed with the server's secrets, so looking them up
// by index tells a guesser nothing.
func (db *DB) FindLongCode(ctx context.Context, purposes []string, hashes [][]byte, now time.Time) (*Code, error) {
	if len(hashes) == 0 {
		return nil, errInvalidCode()
	}
	var rows []*codeRow
	err := db.bun.NewSelect().Model(&rows).Column(codeColumns...).
		Where("long AND hash IN (?) AND purpose IN (?)", bun.In(hashes), bun.In(purposes)).
		Where("used_at IS NULL AND expires_at > ?", now.UTC()).
		Limit(1).Scan(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	if len(rows) == 0 {
		return nil, errInvalidCode()
	}
	return rows[0].code(), nil
}

// MatchCode tells which of codes has one of candidates as its hash, comparing
// every pair in constant time; nil when none does.
func MatchCode(codes []*Code, candidates [][]byte) *Code {
	var found *Code
	for _, c := range codes {
		for _, h := range candidates {
			if subtle.ConstantTimeCompare(c.Hash, h) == 1 && found == nil {
				found = c
			}
		}
	}
	return found
}

// consumeCode marks a code used if it still is live at now; INVALID_CODE
// when it is not (used meanwhile by a concurrent redeem, or expired).
func consumeCode(ctx context.Context, idb bun.IDB, id uuid.UUID, now time.Time) error {
	res, err := idb.NewUpdate().Model((*codeRow)(nil)).Set("used_at = ?", now.UTC()).
		Where("id = ? AND used_at IS NULL AND expires_at > ?", id, now.UTC()).Exec(ctx)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errInvalidCode()
	}
	return nil
}

// verifyAddress marks an identity's verifiable address verified at now
// (kept as it is when it already was) and returns it; NOT_FOUND when the
// identity no longer has it.
func (db *DB) verifyAddress(ctx context.Context, idb bun.IDB, identityID uuid.UUID, via, value string, now time.Time, method string) (*model.VerifiableAddress, error) {
	now = now.UTC()
	res, err := idb.NewUpdate().Model((*verifiableAddressRow)(nil)).
		Set("verified = ?", true).Set("status = ?", model.VerificationCompleted).
		Set("verified_at = ?", now).Set("updated_at = ?", now).
		Where("identity_id = ? AND via = ? AND value = ? AND NOT verified", identityID, via, value).Exec(ctx)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		// The identity proved it holds the address (a code it received, or
		// its OIDC provider's word): its own doing.
		e := newEventData(ctx, model.EventAddressVerified, identityID, true, now,
			map[string]any{"address": value, "via": via, "method": method})
		if err := db.insertEvents(ctx, idb, []*model.Event{e}); err != nil {
			return nil, err
		}
	}
	row := new(verifiableAddressRow)
	err = idb.NewSelect().Model(row).Where("identity_id = ? AND via = ? AND value = ?", identityID, via, value).Scan(ctx)
	if err != nil {
		return nil, notFound(err, "address")
	}
	return row.model(), nil
}

// VerifyAddress redeems a verification code that matched: in one
// transaction it uses the code up, marks its address verified and uses up
// the address's other live verification codes, which have nothing left to
// prove. INVALID_CODE when the code was used meanwhile, expired, or its
// address left the identity's traits since it was sent.
func (db *DB) VerifyAddress(ctx context.Context, c *Code, now time.Time) (*model.VerifiableAddress, error) {
	var out *model.VerifiableAddress
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := consumeCode(ctx, tx, c.ID, now); err != nil {
			return err
		}
		a, err := db.verifyAddress(ctx, tx, c.IdentityID, c.Via, c.Address, now, "code")
		if model.ErrorCodeOf(err) == model.CodeNotFound {
			return errInvalidCode()
		}
		if err != nil {
			return err
		}
		out = a
		_, err = tx.NewUpdate().Model((*codeRow)(nil)).Set("used_at = ?", now.UTC()).
			Where("purpose = ? AND identity_id = ? AND address = ? AND used_at IS NULL", PurposeVerification, c.IdentityID, c.Address).Exec(ctx)
		return err
	})
	return out, wrap(err)
}

// Recovery is what redeeming a recovery or invitation code does, in one
// transaction.
type Recovery struct {
	Code *Code
	// PasswordHash, when not nil, becomes the identity's password, and every
	// other session of the identity ends.
	PasswordHash *string
	// Session is the session the recovery signs in with.
	Session *NewSession
	Now     time.Time
}

// Recover redeems a recovery or invitation code that matched: in one
// transaction it uses the code up, checks that the identity is active
// (ACCOUNT_DISABLED otherwise, and the code stays unused), sets the new
// password and ends every session when one is given, marks the address the
// code went to verified (receiving it proved control of it), and stores the
// new session. INVALID_CODE when the code was used meanwhile or expired.
func (db *DB) Recover(ctx context.Context, r *Recovery) error {
	now := r.Now.UTC()
	id := r.Code.IdentityID
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := consumeCode(ctx, tx, r.Code.ID, now); err != nil {
			return err
		}
		if err := db.requireActive(ctx, tx, id); err != nil {
			return err
		}
		if r.PasswordHash != nil {
			if err := db.setPassword(ctx, tx, id, *r.PasswordHash, now, true); err != nil {
				return err
			}
			if _, err := db.revokeSessionsEvent(ctx, tx, id, uuid.Nil, now, true); err != nil {
				return err
			}
		}
		if r.Code.Address != "" {
			if _, err := db.verifyAddress(ctx, tx, id, r.Code.Via, r.Code.Address, now, r.Code.Purpose); err != nil && model.ErrorCodeOf(err) != model.CodeNotFound {
				return err
			}
		}
		if err := db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventRecoveryCompleted, id, true, now,
			map[string]any{"method": r.Code.Purpose, "password_set": r.PasswordHash != nil})}); err != nil {
			return err
		}
		return db.insertSession(ctx, tx, r.Session)
	})
	if err != nil {
		return wrap(err)
	}
	db.changed(id)
	return nil
}

// requireActive refuses, with ACCOUNT_DISABLED, to sign in an identity that
// is not active. On PostgreSQL it locks the identity's row until the
// transaction ends, so no state change slips in between.
func (db *DB) requireActive(ctx context.Context, tx bun.Tx, id uuid.UUID) error {
	var state string
	q := tx.NewSelect().Model((*identityRow)(nil)).Column("state").Where("id = ?", id)
	if db.kind == Postgres {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx, &state); err != nil {
		return notFound(err, "identity")
	}
	if stateFromDB(state) != model.IdentityStateActive {
		return &model.Error{Code: model.CodeAccountDisabled, Message: "account is disabled"}
	}
	return nil
}

// CodeSignIn is what signing in with a sign-in code does, in one
// transaction.
type CodeSignIn struct {
	// Code is the login code that matched, still unused.
	Code *Code
	// Session is the session it signs in with.
	Session *NewSession
	Now     time.Time
}

// SignInWithCode redeems a login code that matched: in one transaction it
// uses the code up, checks that the code's address still is one the
// identity signs in with by code (INVALID_CODE otherwise: a code sent before
// the traits changed proves nothing about the account now) and that the
// identity is active (ACCOUNT_DISABLED otherwise, and the code stays
// unused), marks the address verified (receiving the code proved control
// of it), uses up the address's other live login codes, and stores the
// session. INVALID_CODE when the code was used meanwhile or expired.
func (db *DB) SignInWithCode(ctx context.Context, r *CodeSignIn) error {
	now := r.Now.UTC()
	c := r.Code
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := consumeCode(ctx, tx, c.ID, now); err != nil {
			return err
		}
		held, err := loginCodeTargets(ctx, tx, []string{c.Address}, c.IdentityID)
		if err != nil {
			return err
		}
		if len(held) == 0 {
			return errInvalidCode()
		}
		if err := db.requireActive(ctx, tx, c.IdentityID); err != nil {
			return err
		}
		// A code identifier that is not also marked for verification has
		// no verifiable address to mark.
		if _, err := db.verifyAddress(ctx, tx, c.IdentityID, c.Via, c.Address, now, "login_code"); err != nil && model.ErrorCodeOf(err) != model.CodeNotFound {
			return err
		}
		if err := useUpLoginCodes(ctx, tx, []string{c.Address}, now); err != nil {
			return err
		}
		return db.insertSession(ctx, tx, r.Session)
	})
	if err != nil {
		return wrap(err)
	}
	db.changed(c.IdentityID)
	return nil
}

// useUpLoginCodes marks every live login code sent to one of addresses
// used: a new code replaces them, and a sign-in leaves them nothing to do.
func useUpLoginCodes(ctx context.Context, idb bun.IDB, addresses []string, now time.Time) error {
	if len(addresses) == 0 {
		return nil
	}
	_, err := idb.NewUpdate().Model((*codeRow)(nil)).Set("used_at = ?", now.UTC()).
		Where("purpose = ? AND address IN (?) AND used_at IS NULL", PurposeLogin, bun.In(addresses)).Exec(ctx)
	return err
}

// HasVerifiedAddress tells whether an identity has at least one verified
// address (selfservice.flows.login.require_verified_address).
func (db *DB) HasVerifiedAddress(ctx context.Context, identityID uuid.UUID) (bool, error) {
	found, err := db.bun.NewSelect().Model((*verifiableAddressRow)(nil)).ColumnExpr("1").
		Where("identity_id = ? AND verified", identityID).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// PruneCodes deletes codes that can no longer be redeemed: expired, or used,
// before the given time. It returns how many went.
func (db *DB) PruneCodes(ctx context.Context, before time.Time) (int, error) {
	res, err := db.bun.NewDelete().Model((*codeRow)(nil)).
		Where("expires_at < ? OR used_at < ?", before.UTC(), before.UTC()).Exec(ctx)
	if err != nil {
		return 0, wrap(err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// codeRequestRow is a request for a code by address, waiting to be resolved.
type codeRequestRow struct {
	bun.BaseModel `bun:"table:code_requests"`

	ID        uuid.UUID `bun:"id,pk"`
	Purpose   string    `bun:"purpose"`
	Address   string    `bun:"address"`
	CreatedAt time.Time `bun:"created_at"`
}

// CodeRequest is someone asking for a code to be sent to an address that may
// or may not belong to anyone.
type CodeRequest struct {
	ID uuid.UUID
	// Purpose is PurposeVerification, PurposeRecovery or PurposeLogin.
	Purpose string
	// Address is normalised, as addresses are stored.
	Address   string
	CreatedAt time.Time
}

// RecordCodeRequest charges a request for a code to keys, as
// ReserveLoginAttempt does (counted over window), and, unless one of them is
// blocked, stores the request, whatever the address: the one write a
// request makes, the same whether or not the address exists, so the
// answer's timing tells nothing (ResolveCodeRequests does the rest). It
// returns when the blocking key frees up, or the zero time when the request
// was stored. One statement on PostgreSQL (the reservation and the insert
// in one round trip and one commit), one write transaction on SQLite.
func (db *DB) RecordCodeRequest(ctx context.Context, keys []ThrottleKey, window time.Duration, r *CodeRequest) (time.Time, error) {
	row := &codeRequestRow{ID: r.ID, Purpose: r.Purpose, Address: r.Address, CreatedAt: r.CreatedAt.UTC()}
	res := newReservation(keys, r.CreatedAt, window)
	var until int64
	var err error
	switch {
	case db.kind == Postgres && len(keys) > 0:
		// r is materialised (it calls a volatile function), so the
		// reservation runs once; the insert runs only when it went through.
		// The statement's transaction commits without waiting for the WAL
		// flush (synchronous_commit off, for it alone): one client's
		// requests all update its address's counter, and a row lock held
		// through a flush would let through one request per flush. A
		// database crash may lose the last fraction of a second of
		// requests and counts: the person asks again. Codes and the
		// messages that carry them are written by ResolveCodeRequests with
		// full durability.
		args := append(res.args(), row.ID, row.Purpose, row.Address, row.CreatedAt)
		err = db.bun.NewRaw(`WITH r AS (SELECT `+reserveSQL+` AS until, set_config('synchronous_commit', 'off', true)),
ins AS (INSERT INTO code_requests (id, purpose, address, created_at) SELECT ?::uuid, ?, ?, ?::timestamptz FROM r WHERE r.until = 0)
SELECT until FROM r`, args...).Scan(ctx, &until)
	default:
		err = db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			if len(keys) > 0 && db.kind == SQLite {
				var err error
				if until, err = reserveSQLite(ctx, tx, res); err != nil || until != 0 {
					return err
				}
			}
			_, err := tx.NewInsert().Model(row).Exec(ctx)
			return err
		})
	}
	if err != nil {
		return time.Time{}, wrap(err)
	}
	return untilTime(until), nil
}

// CodeTarget is an address a code request names, as stored, with what a
// message to it needs to know of its identity.
type CodeTarget struct {
	IdentityID uuid.UUID
	Via        string
	Address    string
	// Verified is the verifiable address's state (always false for a
	// recovery request, which does not look).
	Verified bool
	State    model.IdentityState
	SchemaID string
	Traits   model.JSON
	// addressID is the address's row.
	addressID uuid.UUID
}

// CodeDispatch is what resolving one request sends: codes and the messages
// carrying them.
type CodeDispatch struct {
	Codes    []*Code
	Messages []*model.CourierMessage
}

// ResolveCodeRequests claims up to limit pending code requests, oldest
// first, and for each looks up the addresses it names (verifiable addresses
// for verification, recovery addresses for recovery, the addresses
// identities sign in with by code for login: see LoginCodeAddress) and lets
// resolve decide what to send; the codes and messages it returns are
// stored, verification addresses that got a code are marked sent, a new
// login code uses up the older live login codes of its address, and the
// requests are deleted, all in one transaction. Of several login requests
// for one address in a batch only the newest is resolved: each would
// replace the one before. Several processes may run it at once: on
// PostgreSQL the claim skips rows another holds (FOR UPDATE SKIP LOCKED);
// SQLite's write transaction holds the database. It returns how many
// requests it resolved.
func (db *DB) ResolveCodeRequests(ctx context.Context, limit int, resolve func(CodeRequest, []CodeTarget) *CodeDispatch) (int, error) {
	n := 0
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var reqs []*codeRequestRow
		q := tx.NewSelect().Model(&reqs).OrderExpr("id").Limit(int64(limit))
		if db.kind == Postgres {
			q = q.For("UPDATE SKIP LOCKED")
		}
		if err := q.Scan(ctx); err != nil {
			return err
		}
		if len(reqs) == 0 {
			return nil
		}
		// The addresses of the whole batch are looked up in one query per
		// purpose.
		addresses := map[string][]string{}
		for _, r := range reqs {
			if !slices.Contains(addresses[r.Purpose], r.Address) {
				addresses[r.Purpose] = append(addresses[r.Purpose], r.Address)
			}
		}
		targets := map[[2]string][]CodeTarget{} // by purpose and address
		for purpose, as := range addresses {
			ts, err := codeTargets(ctx, tx, purpose, as)
			if err != nil {
				return err
			}
			for _, t := range ts {
				k := [2]string{purpose, t.Address}
				targets[k] = append(targets[k], t)
			}
		}
		newestLogin := map[string]uuid.UUID{} // by address; reqs are in id (time) order
		for _, r := range reqs {
			if r.Purpose == PurposeLogin {
				newestLogin[r.Address] = r.ID
			}
		}
		var codes []*Code
		var msgs []*model.CourierMessage
		var sent []uuid.UUID // verifiable addresses that got a code
		ids := make([]uuid.UUID, len(reqs))
		for i, r := range reqs {
			ids[i] = r.ID
			if r.Purpose == PurposeLogin && newestLogin[r.Address] != r.ID {
				continue
			}
			ts := targets[[2]string{r.Purpose, r.Address}]
			d := resolve(CodeRequest{ID: r.ID, Purpose: r.Purpose, Address: r.Address, CreatedAt: r.CreatedAt.UTC()}, ts)
			if d == nil {
				continue
			}
			codes = append(codes, d.Codes...)
			msgs = append(msgs, d.Messages...)
			for _, c := range d.Codes {
				for _, t := range ts {
					if c.Purpose == PurposeVerification && t.IdentityID == c.IdentityID && t.Via == c.Via {
						sent = append(sent, t.addressID)
					}
				}
			}
		}
		var replaced []string // addresses that get a new login code
		for _, c := range codes {
			if c.Purpose == PurposeLogin && !slices.Contains(replaced, c.Address) {
				replaced = append(replaced, c.Address)
			}
		}
		if len(replaced) > 0 {
			if err := useUpLoginCodes(ctx, tx, replaced, codes[0].CreatedAt); err != nil {
				return err
			}
		}
		if err := insertCodes(ctx, tx, codes); err != nil {
			return err
		}
		if err := insertMessages(ctx, tx, msgs); err != nil {
			return err
		}
		if len(sent) > 0 {
			if _, err := tx.NewUpdate().Model((*verifiableAddressRow)(nil)).
				Set("status = ?", model.VerificationSent).Set("updated_at = ?", codes[0].CreatedAt.UTC()).
				Where("id IN (?) AND status = ?", bun.In(sent), model.VerificationPending).
				Exec(ctx); err != nil {
				return err
			}
		}
		if _, err := tx.NewDelete().Model((*codeRequestRow)(nil)).Where("id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return err
		}
		n = len(reqs)
		return nil
	})
	return n, wrap(err)
}

// codeTargets lists the addresses equal to one of addresses that a request
// of purpose may send to, with their identities.
func codeTargets(ctx context.Context, idb bun.IDB, purpose string, addresses []string) ([]CodeTarget, error) {
	if purpose == PurposeLogin {
		return loginCodeTargets(ctx, idb, addresses, uuid.Nil)
	}
	var rows []struct {
		ID         uuid.UUID `bun:"id"`
		IdentityID uuid.UUID `bun:"identity_id"`
		Via        string    `bun:"via"`
		Value      string    `bun:"value"`
		Verified   bool      `bun:"verified"`
		State      string    `bun:"state"`
		SchemaID   string    `bun:"schema_id"`
		Traits     rawJSON   `bun:"traits"`
	}
	q := idb.NewSelect().ColumnExpr("a.id, a.identity_id, a.via, a.value, i.state, i.schema_id, i.traits")
	if purpose == PurposeVerification {
		q = q.TableExpr("identity_verifiable_addresses AS a").ColumnExpr("a.verified")
	} else {
		// A recovery code goes out verified or not.
		q = q.TableExpr("identity_recovery_addresses AS a").ColumnExpr("FALSE AS verified")
	}
	err := q.Join("JOIN identities AS i ON i.id = a.identity_id").Where("a.value IN (?)", bun.In(addresses)).OrderExpr("a.id").Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	out := make([]CodeTarget, len(rows))
	for i, r := range rows {
		out[i] = CodeTarget{IdentityID: r.IdentityID, Via: r.Via, Address: r.Value, Verified: r.Verified,
			State: stateFromDB(r.State), SchemaID: r.SchemaID, Traits: model.JSON(r.Traits), addressID: r.ID}
	}
	return out, nil
}

// loginCodeTargets lists, for each of addresses, the identity a login code
// for it goes to (of identityID only, unless it is uuid.Nil), by the rule
// of LoginCodeAddress: a `code` identifier equal to the address, or a login
// identifier equal to it that is also a verifiable or recovery address of
// the same identity. Identifiers are unique per type only, so two
// identities may qualify for one address (one by a `code` identifier, the
// other by a password identifier): the `code` identifier wins, as it is the
// mark made for this, then the older identity; one address gets one code.
func loginCodeTargets(ctx context.Context, idb bun.IDB, addresses []string, identityID uuid.UUID) ([]CodeTarget, error) {
	if len(addresses) == 0 {
		return nil, nil
	}
	var rows []struct {
		IdentityID    uuid.UUID      `bun:"identity_id"`
		Type          string         `bun:"type"`
		Value         string         `bun:"identifier"`
		State         string         `bun:"state"`
		SchemaID      string         `bun:"schema_id"`
		Traits        rawJSON        `bun:"traits"`
		VerifiableVia sql.NullString `bun:"verifiable_via"`
		RecoveryVia   sql.NullString `bun:"recovery_via"`
	}
	q := idb.NewSelect().TableExpr("identity_credential_identifiers AS ci").
		ColumnExpr("ci.identity_id, ci.type, ci.identifier, i.state, i.schema_id, i.traits").
		ColumnExpr("(SELECT MIN(a.via) FROM identity_verifiable_addresses AS a WHERE a.identity_id = ci.identity_id AND a.value = ci.identifier) AS verifiable_via").
		ColumnExpr("(SELECT MIN(a.via) FROM identity_recovery_addresses AS a WHERE a.identity_id = ci.identity_id AND a.value = ci.identifier) AS recovery_via").
		Join("JOIN identities AS i ON i.id = ci.identity_id").
		Where("ci.identifier IN (?) AND ci.type IN (?)", bun.In(addresses), bun.In(loginIdentifierTypes)).
		OrderExpr("ci.identity_id")
	if identityID != uuid.Nil {
		q = q.Where("ci.identity_id = ?", identityID)
	}
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, err
	}
	type pick struct {
		target CodeTarget
		byCode bool
	}
	best := map[string]pick{}
	for _, r := range rows {
		var via string
		switch {
		case r.Type == CredentialCode:
			via = codeVia(r.Value)
		case r.VerifiableVia.Valid:
			via = r.VerifiableVia.String
		case r.RecoveryVia.Valid:
			via = r.RecoveryVia.String
		default:
			continue // a login identifier that is no address
		}
		byCode := r.Type == CredentialCode
		if cur, ok := best[r.Value]; ok && (cur.byCode || !byCode) {
			continue // rows come oldest identity first
		}
		best[r.Value] = pick{byCode: byCode, target: CodeTarget{IdentityID: r.IdentityID, Via: via, Address: r.Value,
			State: stateFromDB(r.State), SchemaID: r.SchemaID, Traits: model.JSON(r.Traits)}}
	}
	var out []CodeTarget
	for _, a := range addresses {
		if p, ok := best[a]; ok {
			out = append(out, p.target)
		}
	}
	return out, nil
}

// PendingCodeRequests counts the requests not yet resolved (tests wait on it).
func (db *DB) PendingCodeRequests(ctx context.Context) (int, error) {
	n, err := db.bun.NewSelect().Model((*codeRequestRow)(nil)).Count(ctx)
	return int(n), wrap(err)
}
