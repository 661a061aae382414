package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/identityd/identityd/model"
)

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

// loadCredentials reads credentials and their identifiers in one query;
// config (the secret) is never selected here.
func loadCredentials(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*model.Identity, keys []uuid.UUID) error {
	var creds []struct {
		ID         uuid.UUID      `bun:"id"`
		IdentityID uuid.UUID      `bun:"identity_id"`
		Type       string         `bun:"type"`
		CreatedAt  time.Time      `bun:"created_at"`
		UpdatedAt  time.Time      `bun:"updated_at"`
		Identifier sql.NullString `bun:"identifier"`
	}
	if err := idb.NewSelect().TableExpr("identity_credentials AS c").
		ColumnExpr("c.id, c.identity_id, c.type, c.created_at, c.updated_at, i.identifier").
		Join("LEFT JOIN identity_credential_identifiers AS i ON i.credential_id = c.id").
		Where("c.identity_id IN (?)", bun.In(keys)).
		OrderExpr("c.identity_id, c.type, i.identifier").
		Scan(ctx, &creds); err != nil {
		return fmt.Errorf("load credentials: %w", err)
	}
	var last *model.Credential
	var lastID uuid.UUID
	for _, c := range creds {
		if last == nil || lastID != c.ID {
			last = &model.Credential{Type: credentialType(c.Type), Identifiers: []string{}, CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
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
	var vas []*verifiableAddressRow
	if err := idb.NewSelect().Model(&vas).Where("identity_id IN (?)", bun.In(keys)).OrderExpr("identity_id, created_at, value").Scan(ctx); err != nil {
		return fmt.Errorf("load verifiable addresses: %w", err)
	}
	for _, a := range vas {
		byID[a.IdentityID].VerifiableAddresses = append(byID[a.IdentityID].VerifiableAddresses, &model.VerifiableAddress{
			ID: a.ID, Value: a.Value, Via: a.Via, Verified: a.Verified, Status: a.Status,
			VerifiedAt: utcPtr(a.VerifiedAt), CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		})
	}
	return nil
}

func loadRecovery(ctx context.Context, idb bun.IDB, byID map[uuid.UUID]*model.Identity, keys []uuid.UUID) error {
	var ras []*recoveryAddressRow
	if err := idb.NewSelect().Model(&ras).Where("identity_id IN (?)", bun.In(keys)).OrderExpr("identity_id, created_at, value").Scan(ctx); err != nil {
		return fmt.Errorf("load recovery addresses: %w", err)
	}
	for _, a := range ras {
		byID[a.IdentityID].RecoveryAddresses = append(byID[a.IdentityID].RecoveryAddresses, &model.RecoveryAddress{
			ID: a.ID, Value: a.Value, Via: a.Via, CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC(),
		})
	}
	return nil
}
