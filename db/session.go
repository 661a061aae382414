package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

type sessionRow struct {
	bun.BaseModel `bun:"table:sessions"`

	ID                    uuid.UUID `bun:"id,pk"`
	TokenHash             []byte    `bun:"token_hash"`
	IdentityID            uuid.UUID `bun:"identity_id"`
	Active                bool      `bun:"active"`
	IssuedAt              time.Time `bun:"issued_at"`
	ExpiresAt             time.Time `bun:"expires_at"`
	AuthenticatedAt       time.Time `bun:"authenticated_at"`
	AuthenticationMethods rawJSON   `bun:"authentication_methods"`
	AAL                   string    `bun:"aal"`
	IPAddress             string    `bun:"ip_address,nullzero"`
	UserAgent             string    `bun:"user_agent,nullzero"`
	CreatedAt             time.Time `bun:"created_at"`
	UpdatedAt             time.Time `bun:"updated_at"`
}

// NewSession is a session to store. TokenHash is the SHA-256 of the token
// handed to the client: the token itself is never stored.
type NewSession struct {
	Session   *model.Session
	TokenHash []byte
	IPAddress string
	UserAgent string
}

func (r *sessionRow) model() *model.Session {
	return &model.Session{
		ID: r.ID, IdentityID: r.IdentityID, Active: r.Active,
		IssuedAt: r.IssuedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(), AuthenticatedAt: r.AuthenticatedAt.UTC(),
		AAL:                   aalFromDB(r.AAL),
		AuthenticationMethods: methodsFromDB(r.AuthenticationMethods, r.AuthenticatedAt.UTC()),
		IPAddress:             r.IPAddress, UserAgent: r.UserAgent,
	}
}

// storedMethod is an authentication method as Kratos stores it in a
// session's authentication_methods.
type storedMethod struct {
	Method      string    `json:"method"`
	AAL         string    `json:"aal"`
	CompletedAt time.Time `json:"completed_at"`
}

// methodsToDB is the stored form of a session's methods.
func methodsToDB(ms []*model.AuthenticationMethod) rawJSON {
	out := make([]storedMethod, len(ms))
	for i, m := range ms {
		out[i] = storedMethod{Method: credentialTypeToDB(m.Method), AAL: aalToDB(m.AAL), CompletedAt: m.CompletedAt.UTC()}
	}
	b, _ := json.Marshal(out)
	return b
}

// methodsFromDB reads a session's methods. Sessions made before MFA stored
// bare names (["password"], ["code_recovery"]): those read as one AAL1
// step completed when the session signed in.
func methodsFromDB(raw rawJSON, authenticatedAt time.Time) []*model.AuthenticationMethod {
	var objs []storedMethod
	if json.Unmarshal(raw, &objs) == nil {
		out := make([]*model.AuthenticationMethod, len(objs))
		for i, m := range objs {
			out[i] = &model.AuthenticationMethod{Method: credentialType(m.Method), AAL: aalFromDB(m.AAL), CompletedAt: m.CompletedAt.UTC()}
		}
		return out
	}
	var names []string
	_ = json.Unmarshal(raw, &names)
	out := make([]*model.AuthenticationMethod, len(names))
	for i, n := range names {
		out[i] = &model.AuthenticationMethod{Method: credentialType(n), AAL: model.AuthenticatorAssuranceLevelAal1, CompletedAt: authenticatedAt}
	}
	return out
}

// CreateSession stores a new session and its session.created event, in
// one transaction.
func (db *DB) CreateSession(ctx context.Context, s *NewSession) error {
	return wrap(db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return db.insertSession(ctx, tx, s)
	}))
}

// insertSession stores a new session, and its session.created event (by
// the identity itself, signing in), inside the caller's transaction (a
// recovery signs in in the same transaction as it uses its code up).
func (db *DB) insertSession(ctx context.Context, idb bun.IDB, s *NewSession) error {
	if err := insertSessionRow(ctx, idb, s); err != nil {
		return err
	}
	method := ""
	if ms := s.Session.AuthenticationMethods; len(ms) > 0 {
		method = credentialTypeToDB(ms[len(ms)-1].Method)
	}
	e := newEventData(ctx, model.EventSessionCreated, s.Session.IdentityID, true, s.Session.IssuedAt,
		map[string]any{"session_id": s.Session.ID, "method": method, "aal": aalToDB(s.Session.AAL)})
	return db.insertEvents(ctx, idb, []*model.Event{e})
}

func insertSessionRow(ctx context.Context, idb bun.IDB, s *NewSession) error {
	now := s.Session.IssuedAt.UTC()
	row := &sessionRow{
		ID: s.Session.ID, TokenHash: s.TokenHash, IdentityID: s.Session.IdentityID, Active: true,
		IssuedAt: now, ExpiresAt: s.Session.ExpiresAt.UTC(), AuthenticatedAt: s.Session.AuthenticatedAt.UTC(),
		AuthenticationMethods: methodsToDB(s.Session.AuthenticationMethods), AAL: aalToDB(s.Session.AAL), IPAddress: s.IPAddress, UserAgent: s.UserAgent, CreatedAt: now, UpdatedAt: now,
	}
	_, err := idb.NewInsert().Model(row).Exec(ctx)
	return err
}

// ActiveSession finds the session whose token hashes to tokenHash, if it is
// active, unexpired at now, and its identity is active and has not changed
// state since the session was issued (a session is only issued to an active
// identity, so a later change means it was disabled meanwhile: enabling it
// again must not bring its old sessions back). One indexed read joining the
// identity. Anything else is UNAUTHENTICATED, whatever the reason, so a probe
// learns nothing. On PostgreSQL the answer usually comes from the session
// cache (sessioncache.go), which every change to the session or its identity,
// by any process, empties.
func (db *DB) ActiveSession(ctx context.Context, tokenHash []byte, now time.Time) (*model.Session, error) {
	var epoch uint64
	if db.cache != nil {
		if s, ok := db.cache.get(tokenHash, now); ok {
			return s, nil
		}
		epoch = db.cache.epoch.Load()
	}
	s, err := db.activeSession(ctx, tokenHash, now)
	if err == nil && db.cache != nil {
		cp, ident := *s, *s.Identity
		cp.Identity = &ident
		db.cache.put(tokenHash, &cp, epoch)
	}
	return s, err
}

func (db *DB) activeSession(ctx context.Context, tokenHash []byte, now time.Time) (*model.Session, error) {
	stmt, err := db.sessionStmt(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	db.counted()
	rows, err := stmt.QueryContext(ctx, tokenHash)
	if err != nil {
		return nil, wrap(err)
	}
	var out []struct {
		sessionRow `bun:",extend"`
		Identity   identityRow `bun:"embed:i_"`
	}
	if err := db.bun.ScanRows(ctx, rows, &out); err != nil {
		return nil, wrap(err)
	}
	// The conditions are checked here rather than in SQL, so the statement
	// has no argument but the hash: prepared once per connection, it is
	// neither parsed nor planned again (SQLite compiles each new text).
	if len(out) != 1 {
		return nil, errUnauthenticated()
	}
	r := &out[0]
	ident := r.Identity.model()
	if !r.Active || !now.Before(r.ExpiresAt) || ident.State != model.IdentityStateActive ||
		(ident.StateChangedAt != nil && ident.StateChangedAt.After(r.IssuedAt)) {
		return nil, errUnauthenticated()
	}
	sess := r.sessionRow.model()
	sess.Identity = ident
	return sess, nil
}

func errUnauthenticated() error {
	return model.Errorf(model.CodeUnauthenticated, "the session is invalid, expired or revoked")
}

// activeSessionSQL reads a session by its token hash, with its identity.
const activeSessionSQL = `SELECT s.id, s.token_hash, s.identity_id, s.active, s.issued_at, s.expires_at,
	s.authenticated_at, s.authentication_methods, s.aal, s.ip_address, s.user_agent, s.created_at, s.updated_at,
	i.id AS i_id, i.external_id AS i_external_id, i.schema_id AS i_schema_id, i.state AS i_state, i.state_changed_at AS i_state_changed_at,
	i.traits AS i_traits, i.metadata_public AS i_metadata_public, i.metadata_admin AS i_metadata_admin,
	i.available_aal AS i_available_aal, i.created_at AS i_created_at, i.updated_at AS i_updated_at
FROM sessions AS s JOIN identities AS i ON i.id = s.identity_id
WHERE s.token_hash = `

// sessionStmt prepares activeSessionSQL once; database/sql prepares it again
// on each connection that runs it.
func (db *DB) sessionStmt(ctx context.Context) (*sql.Stmt, error) {
	if stmt := db.activeSessionStmt.Load(); stmt != nil {
		return stmt, nil
	}
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if stmt := db.activeSessionStmt.Load(); stmt != nil {
		return stmt, nil
	}
	param := "?"
	if db.kind == Postgres {
		param = "$1"
	}
	stmt, err := db.bun.DB.PrepareContext(ctx, activeSessionSQL+param)
	if err != nil {
		return nil, err
	}
	db.activeSessionStmt.Store(stmt)
	return stmt, nil
}

// RevokeSession ends one session of an identity (uuid.Nil: of anyone);
// NOT_FOUND when there is no such active session. Its session.revoked
// event (by the request's admin or signed-in identity) is written in the
// same transaction.
func (db *DB) RevokeSession(ctx context.Context, identityID, sessionID uuid.UUID, now time.Time) error {
	found := false
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var owners []uuid.UUID
		q := tx.NewUpdate().Model((*sessionRow)(nil)).
			Set("active = ?", false).Set("updated_at = ?", now.UTC()).
			Where("id = ? AND active = ?", sessionID, true).Returning("identity_id")
		if identityID != uuid.Nil {
			q = q.Where("identity_id = ?", identityID)
		}
		if err := q.Scan(ctx, &owners); err != nil {
			return err
		}
		if len(owners) == 0 {
			return nil
		}
		found = true
		return db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventSessionRevoked, owners[0], false, now,
			map[string]any{"session_id": sessionID})})
	})
	if err != nil {
		return wrap(err)
	}
	db.changed(identityID)
	if !found {
		return model.Errorf(model.CodeNotFound, "no active session %s", sessionID)
	}
	return nil
}

// RevokeSessions ends every active session of an identity except keep
// (uuid.Nil: all), returning how many ended, with a session.revoked event
// ({count}) when any did, in one transaction.
func (db *DB) RevokeSessions(ctx context.Context, identityID, keep uuid.UUID, now time.Time) (int, error) {
	var n int
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) (err error) {
		n, err = db.revokeSessionsEvent(ctx, tx, identityID, keep, now, false)
		return err
	})
	db.changed(identityID)
	return n, wrap(err)
}

// revokeSessionsEvent is revokeSessions that also writes a session.revoked
// event ({count}) when any session ended; self when the identity itself
// (signed in or recovering) ended them.
func (db *DB) revokeSessionsEvent(ctx context.Context, idb bun.IDB, identityID, keep uuid.UUID, now time.Time, self bool) (int, error) {
	n, err := revokeSessions(ctx, idb, identityID, keep, now)
	if err != nil || n == 0 {
		return n, err
	}
	return n, db.insertEvents(ctx, idb, []*model.Event{newEventData(ctx, model.EventSessionRevoked, identityID, self, now,
		map[string]any{"count": n})})
}

func revokeSessions(ctx context.Context, idb bun.IDB, identityID, keep uuid.UUID, now time.Time) (int, error) {
	res, err := idb.NewUpdate().Model((*sessionRow)(nil)).
		Set("active = ?", false).Set("updated_at = ?", now.UTC()).
		Where("identity_id = ? AND active = ? AND id <> ?", identityID, true, keep).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// ExtendSession moves an active session's expiry, with its
// session.extended event in the same transaction.
func (db *DB) ExtendSession(ctx context.Context, sessionID uuid.UUID, expiresAt, now time.Time) (*model.Session, error) {
	row := new(sessionRow)
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewUpdate().Model(row).
			Set("expires_at = ?", expiresAt.UTC()).Set("updated_at = ?", now.UTC()).
			Where("id = ? AND active = ?", sessionID, true).Returning("*").Exec(ctx)
		if err != nil || row.ID == uuid.Nil {
			return err
		}
		return db.insertEvents(ctx, tx, []*model.Event{newEventData(ctx, model.EventSessionExtended, row.IdentityID, false, now,
			map[string]any{"session_id": sessionID, "expires_at": expiresAt.UTC()})})
	})
	if err != nil {
		return nil, wrap(notFound(err, "session"))
	}
	if row.ID == uuid.Nil {
		return nil, model.Errorf(model.CodeNotFound, "no active session %s", sessionID)
	}
	db.changed(row.IdentityID)
	return row.model(), nil
}

// Sessions lists an identity's sessions, newest first; active only when
// activeOnly.
func (db *DB) Sessions(ctx context.Context, identityID uuid.UUID, activeOnly bool, now time.Time) ([]*model.Session, error) {
	var rows []*sessionRow
	q := db.bun.NewSelect().Model(&rows).Where("identity_id = ?", identityID).OrderExpr("issued_at DESC, id DESC")
	if activeOnly {
		q = q.Where("active = ? AND expires_at > ?", true, now.UTC())
	}
	if err := q.Scan(ctx); err != nil {
		return nil, wrap(err)
	}
	out := make([]*model.Session, len(rows))
	for i, r := range rows {
		out[i] = r.model()
	}
	return out, nil
}

// SessionFilter narrows a session listing; zero fields do not filter.
type SessionFilter struct {
	// IdentityID keeps one identity's sessions.
	IdentityID *uuid.UUID
	// Active, when set, keeps the sessions that still work at Now (not
	// revoked and not expired: what Sessions' activeOnly keeps), or, when
	// false, the others.
	Active *bool
	Now    time.Time
}

// Session returns one session by id, whatever its state; NOT_FOUND when
// there is none.
func (db *DB) Session(ctx context.Context, id uuid.UUID) (*model.Session, error) {
	row := new(sessionRow)
	if err := db.bun.NewSelect().Model(row).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, wrap(notFound(err, "session"))
	}
	return row.model(), nil
}

// ListSessions returns up to limit sessions f matches, newest first (in
// descending id order: ids are UUIDv7, so creation order), that come after
// the keyset cursor after in that order (uuid.Nil: from the newest), and
// whether more follow. A session made meanwhile sorts before every cursor,
// so it never shifts a page another client is walking.
func (db *DB) ListSessions(ctx context.Context, f SessionFilter, after uuid.UUID, limit int) ([]*model.Session, bool, error) {
	var rows []*sessionRow
	return newestPage(ctx, filterSessions(db.bun.NewSelect().Model(&rows), f), &rows, after, limit, "sessions", (*sessionRow).model)
}

// CountSessions counts the sessions f matches, reading at most limit of
// them: the answer is limit when at least that many match.
func (db *DB) CountSessions(ctx context.Context, f SessionFilter, limit int) (int, error) {
	n, err := db.countUpTo(ctx, filterSessions(db.bun.NewSelect().Model((*sessionRow)(nil)), f), limit)
	return n, wrap(err)
}

// SessionsBefore tells whether f matches a session at or before the keyset
// cursor in listing order (the cursor's or a newer one): one that a page
// starting after it does not show.
func (db *DB) SessionsBefore(ctx context.Context, f SessionFilter, cursor uuid.UUID) (bool, error) {
	if cursor == uuid.Nil {
		return false, nil
	}
	found, err := filterSessions(db.bun.NewSelect().Model((*sessionRow)(nil)), f).
		ColumnExpr("1").Where("id >= ?", cursor).Limit(1).Exists(ctx)
	return found, wrap(err)
}

// filterSessions narrows q, a query on sessions, to what f matches.
func filterSessions(q *bun.SelectQuery, f SessionFilter) *bun.SelectQuery {
	if f.IdentityID != nil {
		q = q.Where("identity_id = ?", *f.IdentityID)
	}
	if f.Active != nil {
		if *f.Active {
			q = q.Where("active = ? AND expires_at > ?", true, f.Now.UTC())
		} else {
			q = q.Where("(active = ? OR expires_at <= ?)", false, f.Now.UTC())
		}
	}
	return q
}
