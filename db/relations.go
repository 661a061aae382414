package db

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/identityd/identityd/model"
)

// An identity's relations come back in one order on both engines, and in the
// same order from every path that produces them (a batched load, the JSON
// subqueries of a single read, or an identity built from the rows a write
// stored): credentials by type, each credential's identifiers by value,
// addresses by creation time, then value and via. Text is compared byte by
// byte everywhere: SQLite's BINARY collation, COLLATE "C" on PostgreSQL
// (whose default collation depends on the server's locale), and Go's string
// comparison when building from rows.

// Credentials returns an identity's credentials (types and identifiers,
// never secrets), for a caller that asked for them after loading the
// identity alone.
func (db *DB) Credentials(ctx context.Context, id uuid.UUID) ([]*model.Credential, error) {
	x := &model.Identity{ID: id}
	err := loadCredentials(ctx, db.bun, map[uuid.UUID]*model.Identity{id: x}, []uuid.UUID{id})
	return nonNil(x.Credentials), wrap(err)
}

// VerifiableAddresses returns an identity's verifiable addresses.
func (db *DB) VerifiableAddresses(ctx context.Context, id uuid.UUID) ([]*model.VerifiableAddress, error) {
	x := &model.Identity{ID: id}
	err := loadVerifiable(ctx, db.bun, map[uuid.UUID]*model.Identity{id: x}, []uuid.UUID{id})
	return nonNil(x.VerifiableAddresses), wrap(err)
}

// RecoveryAddresses returns an identity's recovery addresses.
func (db *DB) RecoveryAddresses(ctx context.Context, id uuid.UUID) ([]*model.RecoveryAddress, error) {
	x := &model.Identity{ID: id}
	err := loadRecovery(ctx, db.bun, map[uuid.UUID]*model.Identity{id: x}, []uuid.UUID{id})
	return nonNil(x.RecoveryAddresses), wrap(err)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// loadRelations fills the relations rels of ids with one query per relation
// whatever their number, so a page of 250 costs the same as a page of 1, and
// a page that shows no relation costs nothing here.
func loadRelations(ctx context.Context, idb bun.IDB, ids []*model.Identity, rels model.Relations) error {
	for _, x := range ids {
		x.Loaded |= rels
	}
	if len(ids) == 0 || rels == 0 {
		return nil
	}
	byID := make(map[uuid.UUID]*model.Identity, len(ids))
	keys := make([]uuid.UUID, len(ids))
	for i, x := range ids {
		byID[x.ID] = x
		keys[i] = x.ID
	}
	if rels.Has(model.RelationCredentials) {
		if err := loadCredentials(ctx, idb, byID, keys); err != nil {
			return err
		}
	}
	if rels.Has(model.RelationVerifiableAddresses) {
		if err := loadVerifiable(ctx, idb, byID, keys); err != nil {
			return err
		}
	}
	if rels.Has(model.RelationRecoveryAddresses) {
		return loadRecovery(ctx, idb, byID, keys)
	}
	return nil
}

// byteOrder is the collation clause that makes PostgreSQL compare text as
// SQLite and Go do; SQLite needs none.
func byteOrder(idb bun.IDB) string {
	if idb.Dialect().Name() == dialect.PG {
		return ` COLLATE "C"`
	}
	return ""
}

// credentialRelRow is a credential with one of its identifiers (none when
// Identifier is NULL), as the batched load reads them.
type credentialRelRow struct {
	ID         uuid.UUID      `bun:"id"`
	IdentityID uuid.UUID      `bun:"identity_id"`
	Type       string         `bun:"type"`
	Config     rawJSON        `bun:"config"`
	CreatedAt  time.Time      `bun:"created_at"`
	UpdatedAt  time.Time      `bun:"updated_at"`
	Identifier sql.NullString `bun:"identifier"`
}

// A credential row exists for every credential type an identity has
// identifiers of, secret or not: identifiers hang on a credential, and they
// are unique from the moment the identity is written, so that an identity
// created without a password (or signing in only through OIDC) keeps its
// email for itself until it sets one. Such a row is a placeholder, not a
// credential: nothing can sign in with it, so no read lists it. A credential
// is listed when it holds its secret: a password credential a non-empty
// hash, an OIDC credential at least one provider, any other type a config
// other than the empty object writes give placeholders. credentialListed is
// the rule in Go, for the rows a write holds; listedCredentialSQL is the same
// rule in each dialect's SQL, for reads, which never select the config.
// TestCredentialsListOnlyWhatExists holds them to the same answers.

// credentialListed tells whether a credential of type typ whose stored
// config is config is listed.
func credentialListed(typ string, config rawJSON) bool {
	switch typ {
	case CredentialPassword:
		var c map[string]json.RawMessage
		if json.Unmarshal(config, &c) != nil {
			return false
		}
		h, ok := c["hashed_password"]
		return ok && string(h) != `""` && string(h) != "null"
	case CredentialOIDC:
		var c struct {
			Providers []json.RawMessage `json:"providers"`
		}
		return json.Unmarshal(config, &c) == nil && len(c.Providers) > 0
	default:
		return string(config) != "{}"
	}
}

// listedCredentialSQL is credentialListed for the credential aliased c, by
// engine (PostgreSQL or not). PostgreSQL's json type keeps the text as
// written, so its comparison with '{}' is the byte comparison Go makes.
func listedCredentialSQL(pg bool) string {
	if pg {
		return `(CASE c.type WHEN '` + CredentialPassword + `' THEN COALESCE(c.config->>'hashed_password', '') <> ''
  WHEN '` + CredentialOIDC + `' THEN COALESCE(json_array_length(c.config->'providers'), 0) > 0
  ELSE c.config::text <> '{}' END)`
	}
	return `(CASE c.type WHEN '` + CredentialPassword + `' THEN COALESCE(json_extract(c.config, '$.hashed_password'), '') <> ''
  WHEN '` + CredentialOIDC + `' THEN COALESCE(json_array_length(c.config, '$.providers'), 0) > 0
  ELSE c.config <> '{}' END)`
}

// selectCredentials reads the credentials of keys joined to their
// identifiers, in the order every path returns them. forWrite reads what a
// write needs: every row, placeholders included, with its stored config (a
// secret, which writes never return); otherwise only listed credentials,
// without their config.
func selectCredentials(ctx context.Context, idb bun.IDB, keys []uuid.UUID, forWrite bool) ([]credentialRelRow, error) {
	cols := "c.id, c.identity_id, c.type, c.created_at, c.updated_at, i.identifier"
	if forWrite {
		cols += ", c.config"
	}
	var rows []credentialRelRow
	coll := byteOrder(idb)
	q := idb.NewSelect().TableExpr("identity_credentials AS c").
		ColumnExpr(cols).
		Join("LEFT JOIN identity_credential_identifiers AS i ON i.credential_id = c.id").
		Where("c.identity_id IN (?)", bun.In(keys)).
		OrderExpr("c.identity_id, c.type" + coll + ", i.identifier" + coll)
	if !forWrite {
		q = q.Where(listedCredentialSQL(idb.Dialect().Name() == dialect.PG))
	}
	err := q.Scan(ctx, &rows)
	return rows, err
}

// loadCredentials reads credentials and their identifiers in one query;
// config (the secret) is never selected here.
func loadCredentials(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*model.Identity, keys []uuid.UUID) error {
	rows, err := selectCredentials(ctx, idb, keys, false)
	if err != nil {
		return fmt.Errorf("load credentials: %w", err)
	}
	var last *model.Credential
	var lastID uuid.UUID
	for _, c := range rows {
		if last == nil || lastID != c.ID {
			last = credentialModel(c.Type, c.CreatedAt, c.UpdatedAt)
			lastID = c.ID
			byID[c.IdentityID].Credentials = append(byID[c.IdentityID].Credentials, last)
		}
		if c.Identifier.Valid {
			last.Identifiers = append(last.Identifiers, c.Identifier.String)
		}
	}
	return nil
}

func loadVerifiable(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*model.Identity, keys []uuid.UUID) error {
	vas, err := selectAddresses[*verifiableAddressRow](ctx, idb, keys)
	if err != nil {
		return fmt.Errorf("load verifiable addresses: %w", err)
	}
	for _, a := range vas {
		byID[a.IdentityID].VerifiableAddresses = append(byID[a.IdentityID].VerifiableAddresses, a.model())
	}
	return nil
}

func loadRecovery(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*model.Identity, keys []uuid.UUID) error {
	ras, err := selectAddresses[*recoveryAddressRow](ctx, idb, keys)
	if err != nil {
		return fmt.Errorf("load recovery addresses: %w", err)
	}
	for _, a := range ras {
		byID[a.IdentityID].RecoveryAddresses = append(byID[a.IdentityID].RecoveryAddresses, a.model())
	}
	return nil
}

// selectAddresses reads the whole rows of one address table (R is
// *verifiableAddressRow or *recoveryAddressRow) for keys, in the order every
// path returns them.
func selectAddresses[R any](ctx context.Context, idb bun.IDB, keys []uuid.UUID) ([]R, error) {
	var rows []R
	coll := byteOrder(idb)
	err := idb.NewSelect().Model(&rows).Where("identity_id IN (?)", bun.In(keys)).
		OrderExpr("identity_id, created_at, value" + coll + ", via" + coll).Scan(ctx)
	return rows, err
}

func credentialModel(typ string, created, updated time.Time) *model.Credential {
	return &model.Credential{Type: credentialType(typ), Identifiers: []string{}, CreatedAt: created.UTC(), UpdatedAt: updated.UTC()}
}

func (a *verifiableAddressRow) model() *model.VerifiableAddress {
	return &model.VerifiableAddress{
		ID: a.ID, Value: a.Value, Via: a.Via, Verified: a.Verified, Status: a.Status,
		VerifiedAt: utcPtr(a.VerifiedAt), CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
	}
}

func (a *recoveryAddressRow) model() *model.RecoveryAddress {
	return &model.RecoveryAddress{ID: a.ID, Value: a.Value, Via: a.Via, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
}

// sortAddresses puts addresses built in Go in the order the database returns
// them (created_at, value, via; byte order).
func sortAddresses[A any](as []A, key func(A) (time.Time, string, string)) {
	slices.SortFunc(as, func(a, b A) int {
		ta, va, wa := key(a)
		tb, vb, wb := key(b)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(va, vb), strings.Compare(wa, wb))
	})
}

func verifiableKey(a *model.VerifiableAddress) (time.Time, string, string) {
	return a.CreatedAt, a.Value, a.Via
}

func recoveryKey(a *model.RecoveryAddress) (time.Time, string, string) {
	return a.CreatedAt, a.Value, a.Via
}

// storedCredential is one credential as a write leaves it, for building the
// identity it returns. config is its stored config (the secret): it decides
// whether the credential is listed and never leaves this package.
type storedCredential struct {
	typ         string
	created     time.Time
	updated     time.Time
	identifiers []string
	config      rawJSON
}

// credentialModels turns credentials built in Go into the model, in the
// order the database returns them, leaving out placeholders as reads do.
func credentialModels(cs []storedCredential) []*model.Credential {
	slices.SortFunc(cs, func(a, b storedCredential) int { return strings.Compare(a.typ, b.typ) })
	out := make([]*model.Credential, 0, len(cs))
	for _, c := range cs {
		if !credentialListed(c.typ, c.config) {
			continue
		}
		m := credentialModel(c.typ, c.created, c.updated)
		m.Identifiers = append(m.Identifiers, c.identifiers...)
		slices.Sort(m.Identifiers)
		out = append(out, m)
	}
	return out
}

// The single-read form: an identity and the relations asked for, in one
// statement, each relation aggregated to a JSON array by a correlated
// subquery. A statement costs PostgreSQL a round trip, a parse and a plan
// (pgdriver sends arguments inline), and SQLite a compile: for one identity
// one statement is far cheaper than one per relation.

// identityColumns are the columns of identityRow, named: a statement
// prepared with them keeps its result type when a column is added.
const identityColumns = "i.id, i.external_id, i.schema_id, i.state, i.state_changed_at, i.traits, i.metadata_public, i.metadata_admin, i.available_aal, i.created_at, i.updated_at"

// getIdentitySQL is the statement GetIdentity prepares, by engine
// (PostgreSQL or not) and relations: sixteen fixed texts.
var getIdentitySQL = func() (out [2][model.AllRelations + 1]string) {
	for e, pg := range []bool{false, true} {
		param := "?"
		if pg {
			param = "$1"
		}
		for rels := range model.AllRelations + 1 {
			var b strings.Builder
			b.WriteString("SELECT " + identityColumns)
			for _, col := range relationColumns(pg, rels) {
				b.WriteString(",\n  " + col)
			}
			b.WriteString("\nFROM identities AS i WHERE i.id = " + param)
			out[e][rels] = b.String()
		}
	}
	return out
}()

// relationColumns are the subquery columns that read rels of the identity
// aliased i, named credentials_json, verifiable_json and recovery_json.
func relationColumns(pg bool, rels model.Relations) []string {
	var cols []string
	if rels.Has(model.RelationCredentials) {
		if pg {
			cols = append(cols, `(SELECT json_agg(json_build_object('type', c.type, 'created_at', c.created_at, 'updated_at', c.updated_at,
  'identifiers', (SELECT json_agg(ci.identifier ORDER BY ci.identifier COLLATE "C") FROM identity_credential_identifiers AS ci WHERE ci.credential_id = c.id))
  ORDER BY c.type COLLATE "C") FROM identity_credentials AS c WHERE c.identity_id = i.id AND `+listedCredentialSQL(true)+`) AS credentials_json`)
		} else {
			cols = append(cols, `(SELECT json_group_array(json_object('type', c.type, 'created_at', c.created_at, 'updated_at', c.updated_at,
  'identifiers', json((SELECT json_group_array(ci.identifier ORDER BY ci.identifier) FROM identity_credential_identifiers AS ci WHERE ci.credential_id = c.id)))
  ORDER BY c.type) FROM identity_credentials AS c WHERE c.identity_id = i.id AND `+listedCredentialSQL(false)+`) AS credentials_json`)
		}
	}
	address := func(table, fields, name string) string {
		if pg {
			return fmt.Sprintf(`(SELECT json_agg(json_build_object(%s) ORDER BY a.created_at, a.value COLLATE "C", a.via COLLATE "C")
  FROM %s AS a WHERE a.identity_id = i.id) AS %s`, fields, table, name)
		}
		return fmt.Sprintf(`(SELECT json_group_array(json_object(%s) ORDER BY a.created_at, a.value, a.via)
  FROM %s AS a WHERE a.identity_id = i.id) AS %s`, fields, table, name)
	}
	if rels.Has(model.RelationVerifiableAddresses) {
		cols = append(cols, address("identity_verifiable_addresses",
			`'id', a.id, 'via', a.via, 'value', a.value, 'verified', a.verified, 'status', a.status,
  'verified_at', a.verified_at, 'created_at', a.created_at, 'updated_at', a.updated_at`, "verifiable_json"))
	}
	if rels.Has(model.RelationRecoveryAddresses) {
		cols = append(cols, address("identity_recovery_addresses",
			`'id', a.id, 'via', a.via, 'value', a.value, 'created_at', a.created_at, 'updated_at', a.updated_at`, "recovery_json"))
	}
	return cols
}

// identityRelRow is an identity row with its relations as JSON arrays:
// absent when not asked for; when empty, SQL NULL from PostgreSQL (json_agg of
// no rows) and [] from SQLite.
type identityRelRow struct {
	identityRow `bun:",extend"`

	CredentialsJSON rawJSON `bun:"credentials_json,scanonly"`
	VerifiableJSON  rawJSON `bun:"verifiable_json,scanonly"`
	RecoveryJSON    rawJSON `bun:"recovery_json,scanonly"`
}

// jsonTime reads a timestamp as the JSON functions write it: RFC 3339 from
// PostgreSQL ("2026-01-02T03:04:05.123456+00:00"), and from SQLite the text
// bun stored ("2026-01-02 03:04:05.123456+00:00").
type jsonTime time.Time

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*t = jsonTime(v.UTC())
	return nil
}

// jsonBool reads a boolean as PostgreSQL (true, false) and SQLite (1, 0)
// write it.
type jsonBool bool

func (v *jsonBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "true", "1":
		*v = true
	case "false", "0":
		*v = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

// model is the identity with the relations rels, which it read.
func (r *identityRelRow) model(rels model.Relations) (*model.Identity, error) {
	out := r.identityRow.model()
	out.Loaded = rels
	if len(r.CredentialsJSON) > 0 {
		var cs []struct {
			Type        string   `json:"type"`
			CreatedAt   jsonTime `json:"created_at"`
			UpdatedAt   jsonTime `json:"updated_at"`
			Identifiers []string `json:"identifiers"`
		}
		if err := decodeRelation(r.CredentialsJSON, &cs); err != nil {
			return nil, fmt.Errorf("read credentials: %w", err)
		}
		for _, c := range cs {
			m := credentialModel(c.Type, time.Time(c.CreatedAt), time.Time(c.UpdatedAt))
			m.Identifiers = append(m.Identifiers, c.Identifiers...)
			out.Credentials = append(out.Credentials, m)
		}
	}
	if len(r.VerifiableJSON) > 0 {
		var as []struct {
			ID         uuid.UUID `json:"id"`
			Via        string    `json:"via"`
			Value      string    `json:"value"`
			Verified   jsonBool  `json:"verified"`
			Status     string    `json:"status"`
			VerifiedAt *jsonTime `json:"verified_at"`
			CreatedAt  jsonTime  `json:"created_at"`
			UpdatedAt  jsonTime  `json:"updated_at"`
		}
		if err := decodeRelation(r.VerifiableJSON, &as); err != nil {
			return nil, fmt.Errorf("read verifiable addresses: %w", err)
		}
		for _, a := range as {
			out.VerifiableAddresses = append(out.VerifiableAddresses, &model.VerifiableAddress{
				ID: a.ID, Via: a.Via, Value: a.Value, Verified: bool(a.Verified), Status: a.Status,
				VerifiedAt: (*time.Time)(a.VerifiedAt), CreatedAt: time.Time(a.CreatedAt), UpdatedAt: time.Time(a.UpdatedAt),
			})
		}
	}
	if len(r.RecoveryJSON) > 0 {
		var as []struct {
			ID        uuid.UUID `json:"id"`
			Via       string    `json:"via"`
			Value     string    `json:"value"`
			CreatedAt jsonTime  `json:"created_at"`
			UpdatedAt jsonTime  `json:"updated_at"`
		}
		if err := decodeRelation(r.RecoveryJSON, &as); err != nil {
			return nil, fmt.Errorf("read recovery addresses: %w", err)
		}
		for _, a := range as {
			out.RecoveryAddresses = append(out.RecoveryAddresses, &model.RecoveryAddress{
				ID: a.ID, Via: a.Via, Value: a.Value, CreatedAt: time.Time(a.CreatedAt), UpdatedAt: time.Time(a.UpdatedAt),
			})
		}
	}
	return out, nil
}

// decodeRelation reads one relation's JSON array; SQL NULL (PostgreSQL's
// json_agg of no rows) is an empty one.
func decodeRelation(b rawJSON, v any) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	return json.Unmarshal(b, v)
}
