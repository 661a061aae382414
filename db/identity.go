package db

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// Credential types as stored (Kratos's names).
const (
	CredentialPassword = "password"
	CredentialOIDC     = "oidc"
	// CredentialTOTP and CredentialLookupSecret are the second factors.
	CredentialTOTP         = "totp"
	CredentialLookupSecret = "lookup_secret"
)

// IdentityWrite is everything stored for one identity, worked out by the
// identity service: the identity's own fields and what its schema derives
// from its traits.
type IdentityWrite struct {
	// Identity carries the identity's own fields; its Credentials and
	// addresses are ignored (they come from the fields below).
	Identity *model.Identity
	// Identifiers are every credential identifier, normalised.
	Identifiers []Identifier
	// Password replaces the password hash when not nil.
	Password *PasswordSecret
	// OIDC replaces the OIDC providers when not nil.
	OIDC []OIDCProvider
	// SecondFactors replace those credentials (an import's TOTP key or
	// lookup secrets), their configs made by the service (the key sealed,
	// the codes hashed); the identity's available_aal follows.
	SecondFactors       []SecondFactor
	VerifiableAddresses []Address
	RecoveryAddresses   []Address
	// ExternalIDPath is the input path of Identity.ExternalID, where a
	// duplicate is reported (IDENTIFIER_TAKEN); "/externalId" when empty.
	ExternalIDPath string
	// EndSessions ends every session of the identity in the same
	// transaction (an admin password reset): UpdateIdentity only.
	EndSessions bool
	// Messages are queued in the courier's outbox in the same transaction
	// (a verification code for a new address): they go out only if the
	// write happens.
	Messages []*model.CourierMessage
	// Codes are the one-time codes those messages carry, stored in the same
	// transaction (as their hashes).
	Codes []*Code
	// Events are written in the same transaction (identity.created,
	// identity.imported, address.verified): made by the service, which
	// knows who acts. An update's own events (identity.updated,
	// identity.state_changed, credential.added/removed, password.changed,
	// session.revoked) are worked out by UpdateIdentity from what it read
	// and wrote, and follow these.
	Events []*model.Event
}

// Identifier is one normalised credential identifier and the input path it
// came from (for IDENTIFIER_TAKEN).
type Identifier struct{ Type, Value, Path string }

// Address is one verifiable or recovery address and its input path.
type Address struct {
	Via, Value, Path string
	// CodeSent marks a verifiable address that a verification code goes to
	// in the same write: its status becomes "sent" unless it is verified.
	CodeSent bool
	// State is the verification state an admin gave a verifiable address
	// (an import, an update, a patch): a new address is stored with it, a
	// kept one takes it. Nil makes a new address pending (sent with
	// CodeSent) and leaves a kept one as it is. Recovery addresses have
	// none.
	State *AddressState
}

// AddressState is a verifiable address's verification state, consistent
// (the service checks it): Status is completed exactly when Verified, and
// VerifiedAt is set exactly when Verified.
type AddressState struct {
	Verified   bool
	VerifiedAt *time.Time
	Status     string
}

// PasswordSecret is a password hash in one of the formats internal/password
// recognises. It only ever travels from the service into storage and back to
// be compared: no model type can hold it.
type PasswordSecret struct{ Hash string }

// OIDCProvider links an identity to an account at an OpenID Connect provider,
// as Kratos stores it in the credential's config.
type OIDCProvider struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
	// Organization is the organization the link belongs to (Kratos's B2B
	// SSO), a UUID in its text form; empty when none.
	Organization string `json:"organization,omitempty"`
}

type identityRow struct {
	bun.BaseModel `bun:"table:identities"`

	ID             uuid.UUID  `bun:"id,pk"`
	ExternalID     *string    `bun:"external_id"`
	SchemaID       string     `bun:"schema_id"`
	State          string     `bun:"state"`
	StateChangedAt *time.Time `bun:"state_changed_at"`
	Traits         rawJSON    `bun:"traits"`
	MetadataPublic rawJSON    `bun:"metadata_public"`
	MetadataAdmin  rawJSON    `bun:"metadata_admin"`
	AvailableAAL   string     `bun:"available_aal"`
	CreatedAt      time.Time  `bun:"created_at"`
	UpdatedAt      time.Time  `bun:"updated_at"`
}

type credentialRow struct {
	bun.BaseModel `bun:"table:identity_credentials"`

	ID         uuid.UUID `bun:"id,pk"`
	IdentityID uuid.UUID `bun:"identity_id"`
	Type       string    `bun:"type"`
	Config     rawJSON   `bun:"config"`
	Version    int       `bun:"version"`
	CreatedAt  time.Time `bun:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at"`
}

type identifierRow struct {
	bun.BaseModel `bun:"table:identity_credential_identifiers"`

	ID           uuid.UUID `bun:"id,pk"`
	IdentityID   uuid.UUID `bun:"identity_id"`
	CredentialID uuid.UUID `bun:"credential_id"`
	Type         string    `bun:"type"`
	Identifier   string    `bun:"identifier"`
	CreatedAt    time.Time `bun:"created_at"`
	UpdatedAt    time.Time `bun:"updated_at"`
}

type verifiableAddressRow struct {
	bun.BaseModel `bun:"table:identity_verifiable_addresses"`

	ID         uuid.UUID  `bun:"id,pk"`
	IdentityID uuid.UUID  `bun:"identity_id"`
	Via        string     `bun:"via"`
	Value      string     `bun:"value"`
	Verified   bool       `bun:"verified"`
	Status     string     `bun:"status"`
	VerifiedAt *time.Time `bun:"verified_at"`
	CreatedAt  time.Time  `bun:"created_at"`
	UpdatedAt  time.Time  `bun:"updated_at"`
}

type recoveryAddressRow struct {
	bun.BaseModel `bun:"table:identity_recovery_addresses"`

	ID         uuid.UUID `bun:"id,pk"`
	IdentityID uuid.UUID `bun:"identity_id"`
	Via        string    `bun:"via"`
	Value      string    `bun:"value"`
	CreatedAt  time.Time `bun:"created_at"`
	UpdatedAt  time.Time `bun:"updated_at"`
}

// stateToDB and stateFromDB translate the GraphQL enum to Kratos's words.
func stateToDB(s model.IdentityState) string {
	if s == model.IdentityStateInactive {
		return model.StateInactiveJSON
	}
	return model.StateActiveJSON
}

func stateFromDB(s string) model.IdentityState {
	if s == model.StateInactiveJSON {
		return model.IdentityStateInactive
	}
	return model.IdentityStateActive
}

func newIdentityRow(i *model.Identity) *identityRow {
	return &identityRow{
		ID:             i.ID,
		ExternalID:     i.ExternalID,
		SchemaID:       i.SchemaID,
		State:          stateToDB(i.State),
		StateChangedAt: utcPtr(i.StateChangedAt),
		Traits:         rawJSON(i.Traits),
		MetadataPublic: nullJSON(i.MetadataPublic),
		MetadataAdmin:  nullJSON(i.MetadataAdmin),
		AvailableAAL:   aalToDB(i.AvailableAAL),
		CreatedAt:      i.CreatedAt.UTC(),
		UpdatedAt:      i.UpdatedAt.UTC(),
	}
}

func (r *identityRow) model() *model.Identity {
	return &model.Identity{
		ID:                  r.ID,
		ExternalID:          r.ExternalID,
		SchemaID:            r.SchemaID,
		State:               stateFromDB(r.State),
		StateChangedAt:      utcPtr(r.StateChangedAt),
		Traits:              model.JSON(r.Traits),
		MetadataPublic:      model.JSON(r.MetadataPublic),
		MetadataAdmin:       model.JSON(r.MetadataAdmin),
		AvailableAAL:        aalFromDB(r.AvailableAAL),
		CreatedAt:           r.CreatedAt.UTC(),
		UpdatedAt:           r.UpdatedAt.UTC(),
		Credentials:         []*model.Credential{},
		VerifiableAddresses: []*model.VerifiableAddress{},
		RecoveryAddresses:   []*model.RecoveryAddress{},
	}
}

// nullJSON stores JSON null as SQL NULL, so "no metadata" has one form.
func nullJSON(j model.JSON) rawJSON {
	if j.IsNull() {
		return nil
	}
	return rawJSON(j)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// CreateIdentity stores a new identity with its credentials, identifiers and
// addresses atomically, and returns it as stored, with every
// relation: it is built from the rows written, which is what a fresh read
// would return, so creating costs no read. A taken identifier or address
// fails the whole write with IDENTIFIER_TAKEN errors naming each taken field.
func (db *DB) CreateIdentity(ctx context.Context, w *IdentityWrite) (*model.Identity, error) {
	var rows []*newIdentityRows
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) (err error) {
		if rows, err = insertBulk(ctx, tx, []*IdentityWrite{w}); err != nil {
			return err
		}
		return db.insertOutbox(ctx, tx, []*IdentityWrite{w})
	})
	if err != nil {
		return nil, db.explainWriteError(ctx, err, w)
	}
	return rows[0].model(), nil
}

// UpdateIdentity reads the identity, lets change compute its new state, and
// writes it, all in one transaction holding the identity's row (PostgreSQL
// locks it; SQLite's write transaction holds the database), so concurrent
// updates cannot interleave. change sees the current identity with its
// admin metadata and every relation, and returns the write; its error aborts
// everything. The identity returned is built from what the transaction read
// and wrote (rows that stay keep their stored values), so it is what a fresh
// read would return, without that read.
func (db *DB) UpdateIdentity(ctx context.Context, id uuid.UUID, change func(cur *model.Identity) (*IdentityWrite, error)) (*model.Identity, error) {
	return db.UpdateIdentityWithOIDC(ctx, id, func(cur *model.Identity, _ []OIDCProvider) (*IdentityWrite, error) { return change(cur) })
}

// UpdateIdentityWithOIDC is UpdateIdentity for a change that also needs the
// identity's OIDC providers as stored (organizations included), read in the
// same transaction: an admin's update merges the providers it gives into
// them. links is empty when the identity has no OIDC credential. The write's
// OIDC field still replaces the stored list: the merge is the change's.
func (db *DB) UpdateIdentityWithOIDC(ctx context.Context, id uuid.UUID, change func(cur *model.Identity, links []OIDCProvider) (*IdentityWrite, error)) (*model.Identity, error) {
	var w *IdentityWrite
	var out *model.Identity
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := new(identityRow)
		q := tx.NewSelect().Model(row).Where("id = ?", id)
		if db.kind == Postgres {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			return notFound(err, "identity")
		}
		stored, err := loadStored(ctx, tx, id)
		if err != nil {
			return err
		}
		cur := row.model()
		stored.fill(cur)
		links, err := stored.oidcLinks()
		if err != nil {
			return err
		}
		if w, err = change(cur, links); err != nil {
			return err
		}
		w.Identity.ID = id
		next := newIdentityRow(w.Identity)
		if _, err := tx.NewUpdate().Model(next).WherePK().
			Column("external_id", "schema_id", "state", "state_changed_at", "traits", "metadata_public", "metadata_admin", "updated_at").
			Exec(ctx); err != nil {
			return err
		}
		revoked := 0
		if w.EndSessions || (cur.State == model.IdentityStateActive && w.Identity.State == model.IdentityStateInactive) {
			// A disabled identity loses its sessions at once, and for good:
			// enabling it again does not bring them back. So does one whose
			// password an admin reset: whoever held it is signed out.
			if revoked, err = revokeSessions(ctx, tx, id, uuid.Nil, w.Identity.UpdatedAt); err != nil {
				return err
			}
		}
		if stored, err = updateRelations(ctx, tx, w, stored); err != nil {
			return err
		}
		next.AvailableAAL = row.AvailableAAL
		if len(w.SecondFactors) > 0 {
			if next.AvailableAAL, err = refreshAvailableAAL(ctx, tx, id); err != nil {
				return err
			}
		}
		// Only the columns written change; created_at stays as read.
		next.CreatedAt = row.CreatedAt
		out = next.model()
		stored.fill(out)
		w.Events = append(w.Events, updateEvents(ctx, cur, out, w, revoked)...)
		return db.insertOutbox(ctx, tx, []*IdentityWrite{w})
	})
	if err != nil {
		return nil, db.explainWriteError(ctx, err, w)
	}
	// Cached sessions carry the identity (its state decides whether they
	// still count, whoami shows its traits): this process drops them now,
	// others when the triggers' notification arrives.
	db.changed(id)
	return out, nil
}

// DeleteIdentity removes an identity; its credentials, addresses and sessions
// go with it (ON DELETE CASCADE, in the same statement). Its
// identity.deleted event is written in the same transaction.
func (db *DB) DeleteIdentity(ctx context.Context, id uuid.UUID, now time.Time) error {
	var n int64
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*identityRow)(nil)).Where("id = ?", id).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return nil
		}
		return db.insertEvents(ctx, tx, []*model.Event{model.NewEvent(ctx, model.EventIdentityDeleted, id, false, now)})
	})
	db.changed(id)
	if err != nil {
		return wrap(err)
	}
	if n == 0 {
		return model.Errorf(model.CodeNotFound, "identity %s not found", id)
	}
	return nil
}

// GetIdentity returns one identity with the relations rels (credentials are
// types and identifiers, never secrets), in one statement: each relation
// asked for is a subquery of it. The statement is prepared, one per set of
// relations, so the database neither parses nor plans it again. The
// relations not asked for are left for the lazy loaders (Credentials,
// VerifiableAddresses, RecoveryAddresses).
func (db *DB) GetIdentity(ctx context.Context, id uuid.UUID, rels model.Relations) (*model.Identity, error) {
	rels &= model.AllRelations
	engine := 0
	if db.kind == Postgres {
		engine = 1
	}
	stmt, err := db.stmts.get(ctx, db.bun.DB, getIdentitySQL[engine][rels])
	if err != nil {
		return nil, wrap(fmt.Errorf("prepare identity read: %w", err))
	}
	db.counted()
	rows, err := stmt.QueryContext(ctx, id)
	if err != nil {
		return nil, wrap(fmt.Errorf("read identity: %w", err))
	}
	var found []identityRelRow
	if err := db.bun.ScanRows(ctx, rows, &found); err != nil {
		return nil, wrap(fmt.Errorf("read identity: %w", err))
	}
	if len(found) == 0 {
		return nil, model.Errorf(model.CodeNotFound, "identity not found")
	}
	out, err := found[0].model(rels)
	return out, wrap(err)
}

// storedRelations are an identity's credentials (with their config) and
// addresses as a write transaction reads them, then as it leaves them.
type storedRelations struct {
	credentials []storedCredentialRow
	verifiable  []*verifiableAddressRow
	recovery    []*recoveryAddressRow
}

// storedCredentialRow is a credential with its identifiers, its stored
// config (the secret, which only writes see) and its key.
type storedCredentialRow struct {
	storedCredential
	id uuid.UUID
}

// loadStored reads every relation of identity id, whole rows, in three
// queries.
func loadStored(ctx context.Context, idb bun.IDB, id uuid.UUID) (*storedRelations, error) {
	keys := []uuid.UUID{id}
	rows, err := selectCredentials(ctx, idb, keys, true)
	if err != nil {
		return nil, fmt.Errorf("load credentials: %w", err)
	}
	out := &storedRelations{}
	for _, r := range rows {
		if n := len(out.credentials); n == 0 || out.credentials[n-1].id != r.ID {
			out.credentials = append(out.credentials, storedCredentialRow{
				storedCredential: storedCredential{typ: r.Type, created: r.CreatedAt, updated: r.UpdatedAt, config: r.Config},
				id:               r.ID,
			})
		}
		if r.Identifier.Valid {
			c := &out.credentials[len(out.credentials)-1]
			c.identifiers = append(c.identifiers, r.Identifier.String)
		}
	}
	if out.verifiable, err = selectAddresses[*verifiableAddressRow](ctx, idb, keys); err != nil {
		return nil, fmt.Errorf("load verifiable addresses: %w", err)
	}
	if out.recovery, err = selectAddresses[*recoveryAddressRow](ctx, idb, keys); err != nil {
		return nil, fmt.Errorf("load recovery addresses: %w", err)
	}
	return out, nil
}

// oidcLinks reads the providers of the OIDC credential in s, in the order
// they were linked; none when there is no such credential.
func (s *storedRelations) oidcLinks() ([]OIDCProvider, error) {
	for _, c := range s.credentials {
		if c.typ != CredentialOIDC {
			continue
		}
		var cfg struct {
			Providers []OIDCProvider `json:"providers"`
		}
		if err := json.Unmarshal(c.config, &cfg); err != nil {
			return nil, fmt.Errorf("oidc credential: %w", err)
		}
		return cfg.Providers, nil
	}
	return nil, nil
}

// fill sets ident's relations to s, in the order a read returns them.
func (s *storedRelations) fill(ident *model.Identity) {
	cs := make([]storedCredential, len(s.credentials))
	for i, c := range s.credentials {
		cs[i] = c.storedCredential
	}
	ident.Credentials = credentialModels(cs)
	ident.VerifiableAddresses = make([]*model.VerifiableAddress, len(s.verifiable))
	for i, a := range s.verifiable {
		ident.VerifiableAddresses[i] = a.model()
	}
	sortAddresses(ident.VerifiableAddresses, verifiableKey)
	ident.RecoveryAddresses = make([]*model.RecoveryAddress, len(s.recovery))
	for i, a := range s.recovery {
		ident.RecoveryAddresses[i] = a.model()
	}
	sortAddresses(ident.RecoveryAddresses, recoveryKey)
	ident.Loaded = model.AllRelations
}

// updateRelations brings an existing identity's credentials, identifiers
// and addresses (cur, as read in the transaction) in line with w, and
// returns them as it left them. Addresses that stay keep their rows, so a
// verified address stays verified when other traits change. (New identities
// go through insertBulk.)
func updateRelations(ctx context.Context, idb bun.IDB, w *IdentityWrite, cur *storedRelations) (*storedRelations, error) {
	id := w.Identity.ID
	now := w.Identity.UpdatedAt.UTC()
	out := &storedRelations{}

	existing := map[string]*storedCredentialRow{}
	for i := range cur.credentials {
		existing[cur.credentials[i].typ] = &cur.credentials[i]
	}
	if _, err := idb.NewDelete().Model((*identifierRow)(nil)).Where("identity_id = ?", id).Exec(ctx); err != nil {
		return nil, err
	}

	types, configs := credentialConfigs(w)
	credIDs := map[string]uuid.UUID{}
	identifiers := map[string][]string{}
	for _, ident := range w.Identifiers {
		identifiers[ident.Type] = append(identifiers[ident.Type], ident.Value)
	}
	for _, typ := range types {
		cfg := configs[typ]
		if c, ok := existing[typ]; ok {
			credIDs[typ] = c.id
			kept := *c
			kept.identifiers = identifiers[typ]
			if cfg != nil {
				// The version moves with every new secret: a second factor's
				// use is a compare-and-set on it (UseSecondFactor).
				if _, err := idb.NewUpdate().Model((*credentialRow)(nil)).
					Set("config = ?", cfg).Set("version = version + 1").Set("updated_at = ?", now).
					Where("id = ?", c.id).Exec(ctx); err != nil {
					return nil, err
				}
				kept.config, kept.updated = cfg, now
			}
			out.credentials = append(out.credentials, kept)
			continue
		}
		if cfg == nil {
			cfg = rawJSON("{}")
		}
		row := &credentialRow{ID: newID(), IdentityID: id, Type: typ, Config: cfg, CreatedAt: now, UpdatedAt: now}
		if _, err := idb.NewInsert().Model(row).Exec(ctx); err != nil {
			return nil, err
		}
		credIDs[typ] = row.ID
		out.credentials = append(out.credentials, storedCredentialRow{
			storedCredential: storedCredential{typ: typ, created: now, updated: now, identifiers: identifiers[typ], config: cfg},
			id:               row.ID,
		})
	}
	// A credential left with neither identifiers nor a secret is dropped;
	// one that keeps a secret stays, without identifiers.
	for _, c := range cur.credentials {
		if _, needed := configs[c.typ]; needed {
			continue
		}
		if string(c.config) == "{}" {
			if _, err := idb.NewDelete().Model((*credentialRow)(nil)).Where("id = ?", c.id).Exec(ctx); err != nil {
				return nil, err
			}
			continue
		}
		c.identifiers = nil
		out.credentials = append(out.credentials, c)
	}

	if len(w.Identifiers) > 0 {
		rows := make([]*identifierRow, len(w.Identifiers))
		for i, ident := range w.Identifiers {
			rows[i] = &identifierRow{ID: newID(), IdentityID: id, CredentialID: credIDs[ident.Type],
				Type: ident.Type, Identifier: ident.Value, CreatedAt: now, UpdatedAt: now}
		}
		if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return nil, err
		}
	}
	var err error
	if out.verifiable, err = syncAddresses(ctx, idb, cur.verifiable, w.VerifiableAddresses,
		func(r *verifiableAddressRow) (uuid.UUID, string, string) { return r.ID, r.Via, r.Value },
		func(a Address) *verifiableAddressRow { return newVerifiableRow(id, a, now) }); err != nil {
		return nil, err
	}
	// Addresses that stay take the verification state an admin gave them.
	for _, r := range out.verifiable {
		i := slices.IndexFunc(w.VerifiableAddresses, func(a Address) bool { return a.State != nil && a.Via == r.Via && a.Value == r.Value })
		if i < 0 {
			continue
		}
		st := w.VerifiableAddresses[i].State
		if r.Verified == st.Verified && r.Status == st.Status && timePtrEqual(r.VerifiedAt, st.VerifiedAt) {
			continue
		}
		r.Verified, r.VerifiedAt, r.Status, r.UpdatedAt = st.Verified, utcPtr(st.VerifiedAt), st.Status, now
		if _, err := idb.NewUpdate().Model((*verifiableAddressRow)(nil)).Set("verified = ?", r.Verified).
			Set("verified_at = ?", r.VerifiedAt).Set("status = ?", r.Status).Set("updated_at = ?", now).
			Where("id = ?", r.ID).Exec(ctx); err != nil {
			return nil, err
		}
	}
	// Addresses that stay and get a code now (an admin's sendVerification)
	// are marked sent, unless verified already.
	var sent []uuid.UUID
	for _, r := range out.verifiable {
		if r.Status == model.VerificationPending && slices.ContainsFunc(w.VerifiableAddresses, func(a Address) bool {
			return a.CodeSent && a.Via == r.Via && a.Value == r.Value
		}) {
			r.Status, r.UpdatedAt = model.VerificationSent, now
			sent = append(sent, r.ID)
		}
	}
	if len(sent) > 0 {
		if _, err := idb.NewUpdate().Model((*verifiableAddressRow)(nil)).Set("status = ?", model.VerificationSent).
			Set("updated_at = ?", now).Where("id IN (?)", bun.In(sent)).Exec(ctx); err != nil {
			return nil, err
		}
	}
	if out.recovery, err = syncAddresses(ctx, idb, cur.recovery, w.RecoveryAddresses,
		func(r *recoveryAddressRow) (uuid.UUID, string, string) { return r.ID, r.Via, r.Value },
		func(a Address) *recoveryAddressRow {
			return &recoveryAddressRow{ID: newID(), IdentityID: id, Via: a.Via, Value: a.Value, CreatedAt: now, UpdatedAt: now}
		}); err != nil {
		return nil, err
	}
	return out, nil
}

// syncAddresses brings one address table of an identity, whose rows are cur,
// in line with want, and returns the rows it left. Addresses that stay keep
// their rows (and so a verified address stays verified); the others are
// deleted or inserted. R is the row type (*verifiableAddressRow or
// *recoveryAddressRow); key reads a row's id, via and value; fresh makes a
// new row.
func syncAddresses[R any](ctx context.Context, idb bun.IDB, cur []R, want []Address,
	key func(R) (uuid.UUID, string, string), fresh func(Address) R) ([]R, error) {
	keep := map[[2]string]bool{}
	var drop []uuid.UUID
	var out []R
	for _, c := range cur {
		rowID, via, value := key(c)
		if slices.ContainsFunc(want, func(a Address) bool { return a.Via == via && a.Value == value }) {
			keep[[2]string{via, value}] = true
			out = append(out, c)
		} else {
			drop = append(drop, rowID)
		}
	}
	if len(drop) > 0 {
		var table R // a nil row pointer names the table
		if _, err := idb.NewDelete().Model(table).Where("id IN (?)", bun.In(drop)).Exec(ctx); err != nil {
			return nil, err
		}
	}
	var rows []R
	for _, a := range want {
		if !keep[[2]string{a.Via, a.Value}] {
			rows = append(rows, fresh(a))
		}
	}
	if len(rows) == 0 {
		return out, nil
	}
	if _, err := idb.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return nil, err
	}
	return append(out, rows...), nil
}

// credentialType is the GraphQL name of a stored credential type (or
// authentication method). Kratos's recovery method "code_recovery", which
// sessions made before MFA stored, reads as CODE.
func credentialType(t string) model.CredentialType {
	switch t {
	case CredentialLookupSecret:
		return model.CredentialTypeLookupSecret
	case "code_recovery":
		return model.CredentialTypeCode
	default:
		return model.CredentialType(strings.ToUpper(t))
	}
}

// credentialTypeToDB is the stored name of a credential type, as Kratos
// names them ("password", "lookup_secret").
func credentialTypeToDB(t model.CredentialType) string {
	return strings.ToLower(string(t))
}

// aalToDB and aalFromDB translate the GraphQL enum to Kratos's words
// ("aal1", "aal2"); anything but AAL2 is AAL1.
func aalToDB(a model.AuthenticatorAssuranceLevel) string {
	if a == model.AuthenticatorAssuranceLevelAal2 {
		return AAL2
	}
	return AAL1
}

func aalFromDB(s string) model.AuthenticatorAssuranceLevel {
	if s == AAL2 {
		return model.AuthenticatorAssuranceLevelAal2
	}
	return model.AuthenticatorAssuranceLevelAal1
}

// explainWriteError turns a unique violation into IDENTIFIER_TAKEN errors
// that name each taken field. The failed transaction is gone, so it looks the
// owners up afresh; if the competing write has since vanished, the error
// still says the identifier was taken.
func (db *DB) explainWriteError(ctx context.Context, err error, w *IdentityWrite) error {
	if err == nil || w == nil || !isUniqueViolation(err) {
		return wrap(err)
	}
	taken, lerr := takenBy(ctx, db.bun, w)
	if lerr != nil {
		return wrap(lerr)
	}
	if len(taken) == 0 {
		return model.Errorf(model.CodeIdentifierTaken, "an identity with the same identifier exists already")
	}
	return taken
}

// takenBy lists the identifiers and addresses of w that other identities
// hold, each as an IDENTIFIER_TAKEN error at its input path.
func takenBy(ctx context.Context, idb bun.IDB, w *IdentityWrite) (model.Errors, error) {
	var out model.Errors
	id := w.Identity.ID
	for _, ident := range w.Identifiers {
		n, err := idb.NewSelect().Model((*identifierRow)(nil)).
			Where("type = ? AND identifier = ? AND identity_id <> ?", ident.Type, ident.Value, id).Count(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			out = append(out, &model.Error{Code: model.CodeIdentifierTaken, Path: ident.Path,
				Message: fmt.Sprintf("an identity with this %s identifier exists already", ident.Type)})
		}
	}
	if x := w.Identity.ExternalID; x != nil {
		n, err := idb.NewSelect().Model((*identityRow)(nil)).Where("external_id = ? AND id <> ?", *x, id).Count(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			path := w.ExternalIDPath
			if path == "" {
				path = "/externalId"
			}
			out = append(out, &model.Error{Code: model.CodeIdentifierTaken, Path: path,
				Message: "another identity has this external id"})
		}
	}
	check := func(table, via, value, path string) error {
		n, err := idb.NewSelect().TableExpr(table).Where("via = ? AND value = ? AND identity_id <> ?", via, value, id).Count(ctx)
		if err != nil {
			return err
		}
		if n > 0 && !slices.ContainsFunc(out, func(e *model.Error) bool { return e.Path == path }) {
			out = append(out, &model.Error{Code: model.CodeIdentifierTaken, Path: path,
				Message: fmt.Sprintf("another identity uses this %s address", via)})
		}
		return nil
	}
	for _, a := range w.VerifiableAddresses {
		if err := check("identity_verifiable_addresses", a.Via, a.Value, a.Path); err != nil {
			return nil, err
		}
	}
	for _, a := range w.RecoveryAddresses {
		if err := check("identity_recovery_addresses", a.Via, a.Value, a.Path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newID makes row keys: UUIDv7, ordered by creation time.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// Created is the outcome of one identity of CreateIdentities: the identity
// as stored (with every relation, as a fresh read would return it), or why
// it was refused.
type Created struct {
	Identity *model.Identity
	Err      error
}

// CreateIdentities stores many identities in one transaction, each inside a
// savepoint of its own: an item that fails (a taken identifier, say) is
// rolled back alone and reported at its index, the others are kept. The
// identities are built from the rows written, so an import reads nothing
// back.
func (db *DB) CreateIdentities(ctx context.Context, ws []*IdentityWrite) ([]Created, error) {
	out := make([]Created, len(ws))
	err := db.runInTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return db.createEach(ctx, tx, ws, out, true)
	})
	if err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// createEach writes ws inside tx, each item inside a savepoint of its own,
// and sets out's items: the whole batch in one multi-row insert per table
// first (the common case, every item fine), item by item only when that
// fails with a taken identifier. With outbox, each item's codes, messages
// and events are written with it (a dry run leaves them out).
func (db *DB) createEach(ctx context.Context, tx bun.Tx, ws []*IdentityWrite, out []Created, outbox bool) error {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT import_batch"); err != nil {
		return err
	}
	rows, err := insertBulk(ctx, tx, ws)
	if err == nil && outbox {
		err = db.insertOutbox(ctx, tx, ws)
	}
	if err == nil {
		for i, r := range rows {
			out[i].Identity = r.model()
		}
		_, err = tx.ExecContext(ctx, "RELEASE SAVEPOINT import_batch")
		return err
	}
	if !isUniqueViolation(err) {
		return err
	}
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT import_batch"); err != nil {
		return err
	}
	for i, w := range ws {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT import_item"); err != nil {
			return err
		}
		rows, err := insertBulk(ctx, tx, []*IdentityWrite{w})
		if err == nil {
			if outbox {
				if err := db.insertOutbox(ctx, tx, []*IdentityWrite{w}); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT import_item"); err != nil {
				return err
			}
			out[i].Identity = rows[0].model()
			continue
		}
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT import_item"); rerr != nil {
			return rerr
		}
		if !isUniqueViolation(err) {
			return err
		}
		taken, lerr := takenBy(ctx, tx, w)
		if lerr != nil {
			return lerr
		}
		if len(taken) == 0 {
			out[i].Err = model.Errorf(model.CodeIdentifierTaken, "an identity with the same identifier exists already")
		} else {
			out[i].Err = taken
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT import_item"); err != nil {
			return err
		}
	}
	return nil
}

// insertOutbox stores the codes, messages and events of ws inside the
// caller's transaction, after the identities they belong to.
func (db *DB) insertOutbox(ctx context.Context, idb bun.IDB, ws []*IdentityWrite) error {
	var codes []*Code
	var msgs []*model.CourierMessage
	var events []*model.Event
	for _, w := range ws {
		codes = append(codes, w.Codes...)
		msgs = append(msgs, w.Messages...)
		events = append(events, w.Events...)
	}
	if err := insertCodes(ctx, idb, codes); err != nil {
		return err
	}
	if err := insertMessages(ctx, idb, msgs); err != nil {
		return err
	}
	return db.insertEvents(ctx, idb, events)
}

// newVerifiableRow is the row of a new verifiable address of identity id:
// with the state given, else pending; sent rather than pending when a code
// goes to it in the same write.
func newVerifiableRow(id uuid.UUID, a Address, now time.Time) *verifiableAddressRow {
	r := &verifiableAddressRow{ID: newID(), IdentityID: id, Via: a.Via, Value: a.Value,
		Status: model.VerificationPending, CreatedAt: now, UpdatedAt: now}
	if a.State != nil {
		r.Verified, r.VerifiedAt, r.Status = a.State.Verified, utcPtr(a.State.VerifiedAt), a.State.Status
	}
	if a.CodeSent && !r.Verified && r.Status == model.VerificationPending {
		r.Status = model.VerificationSent
	}
	return r
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
