package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

// ExportedIdentity is one identity as an export writes it: the identity with
// every relation, and its listed credentials with their stored configs.
type ExportedIdentity struct {
	Identity    *model.Identity
	Credentials []ExportedCredential
}

// ExportedCredential is a credential as stored. Config is its secret (a
// password hash, a sealed TOTP key, hashed lookup secrets…): it is set only
// when the export asked for secrets, and only the identity service, which
// decides what an export may show, reads it.
type ExportedCredential struct {
	Type        string
	Identifiers []string
	Config      []byte
	Version     int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// exportCredentialRow is a credential with one of its identifiers (none when
// Identifier is NULL) and its config.
type exportCredentialRow struct {
	ID         uuid.UUID      `bun:"id"`
	IdentityID uuid.UUID      `bun:"identity_id"`
	Type       string         `bun:"type"`
	Config     rawJSON        `bun:"config"`
	Version    int            `bun:"version"`
	CreatedAt  time.Time      `bun:"created_at"`
	UpdatedAt  time.Time      `bun:"updated_at"`
	Identifier sql.NullString `bun:"identifier"`
}

// ExportIdentities returns up to limit identities that f matches whose id
// sorts after the keyset cursor after (uuid.Nil: from the start), in id
// order, each with its addresses and listed credentials (configs only when
// secrets is true), and the cursor of the next page (uuid.Nil at the end).
// A page costs four queries whatever limit is (the three relations read
// concurrently), and a walk of every page
// holds one page in memory at a time: ids are UUIDv7, so identities created
// during the walk come after it and none is seen twice or skipped.
func (db *DB) ExportIdentities(ctx context.Context, f IdentityFilter, after uuid.UUID, limit int, secrets bool) ([]ExportedIdentity, uuid.UUID, error) {
	var rows []*identityRow
	q, ok := db.filterIdentities(db.bun.NewSelect().Model(&rows), f)
	if !ok {
		return nil, uuid.Nil, nil
	}
	q = q.OrderExpr("id ASC").Limit(int64(limit))
	if after != uuid.Nil {
		q = q.Where("id > ?", after)
	}
	if err := q.Scan(ctx); err != nil {
		return nil, uuid.Nil, wrap(fmt.Errorf("export identities: %w", err))
	}
	if len(rows) == 0 {
		return nil, uuid.Nil, nil
	}
	out := make([]ExportedIdentity, len(rows))
	byID := make(map[uuid.UUID]*ExportedIdentity, len(rows))
	idents := make([]*model.Identity, len(rows))
	keys := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		out[i].Identity = r.model()
		out[i].Identity.Loaded = model.AllRelations
		byID[r.ID] = &out[i]
		idents[i] = out[i].Identity
		keys[i] = r.ID
	}
	// The three relations are read at once, on three connections: each
	// fills its own fields of the page's identities.
	models := make(map[uuid.UUID]*model.Identity, len(rows))
	for _, x := range idents {
		models[x.ID] = x
	}
	var wg sync.WaitGroup
	var errs [3]error
	wg.Go(func() { errs[0] = loadExportCredentials(ctx, db.bun, byID, keys, secrets) })
	wg.Go(func() { errs[1] = loadVerifiable(ctx, db.bun, models, keys) })
	wg.Go(func() { errs[2] = loadRecovery(ctx, db.bun, models, keys) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, uuid.Nil, wrap(err)
	}
	next := uuid.Nil
	if len(rows) == limit {
		next = rows[len(rows)-1].ID
	}
	return out, next, nil
}

// loadExportCredentials fills the credentials of the identities byID (keys
// are their ids) in one query: the listed ones (see credentialListed), with
// their identifiers, in the order every read returns them. Each
// credential's model goes on the identity too, so the identity reads as a
// fresh read would return it.
func loadExportCredentials(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*ExportedIdentity, keys []uuid.UUID, secrets bool) error {
	var rows []exportCredentialRow
	coll := byteOrder(idb)
	err := idb.NewSelect().TableExpr("identity_credentials AS c").
		ColumnExpr("c.id, c.identity_id, c.type, c.config, c.version, c.created_at, c.updated_at, i.identifier").
		Join("LEFT JOIN identity_credential_identifiers AS i ON i.credential_id = c.id").
		Where("c.identity_id IN (?)", bun.In(keys)).
		OrderExpr("c.identity_id, c.type"+coll+", i.identifier"+coll).
		Scan(ctx, &rows)
	if err != nil {
		return fmt.Errorf("export credentials: %w", err)
	}
	var last *ExportedCredential
	var lastID uuid.UUID
	for _, r := range rows {
		x := byID[r.IdentityID]
		if last == nil || lastID != r.ID {
			lastID = r.ID
			if !credentialListed(r.Type, r.Config) {
				last = &ExportedCredential{} // a placeholder: its identifiers go nowhere
				continue
			}
			c := ExportedCredential{Type: r.Type, Identifiers: []string{}, Version: r.Version,
				CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
			if secrets {
				c.Config = r.Config
			}
			x.Credentials = append(x.Credentials, c)
			last = &x.Credentials[len(x.Credentials)-1]
			x.Identity.Credentials = append(x.Identity.Credentials, credentialModel(r.Type, r.CreatedAt, r.UpdatedAt))
		}
		if r.Identifier.Valid && last.Type != "" {
			last.Identifiers = append(last.Identifiers, r.Identifier.String)
			m := x.Identity.Credentials[len(x.Identity.Credentials)-1]
			m.Identifiers = append(m.Identifiers, r.Identifier.String)
		}
	}
	return nil
}

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run: rolled back")

// TryCreateIdentities is CreateIdentities without the commit: it writes ws
// in a transaction exactly as CreateIdentities does (each item inside a
// savepoint of its own, so a taken identifier fails only that item and is
// reported at its path) and then rolls everything back. It is what an
// import's dry run checks: every rule the database enforces, identifiers
// and addresses taken by stored identities or by an earlier item of the
// same batch included, with nothing written.
func (db *DB) TryCreateIdentities(ctx context.Context, ws []*IdentityWrite) ([]Created, error) {
	out := make([]Created, len(ws))
	err := db.bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := db.createEach(ctx, tx, ws, out, false); err != nil {
			return err
		}
		return errDryRun
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return nil, wrap(err)
	}
	return out, nil
}
